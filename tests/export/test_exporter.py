"""export: version folders, atomic publishing, refusal, warm-up file, models.config, the CLI verb."""

import contextlib
import io
import os
import subprocess

import pytest

from keras_mlm.errors import UserInputError
from keras_mlm.export import export_model, export_run, serving_ops, signatures as signatures_lib, warmup
from keras_mlm.export.model_config import read_config, update_models_config

from .conftest import MODEL_NAME, SEQUENCE_LENGTH


def test_first_export_is_version_1_with_every_signature(exported, saved_models):
    assert exported.path == os.path.join(str(saved_models), MODEL_NAME, "1")
    assert exported.version == 1
    assert exported.signatures == ("fill_mask_text", "fill_mask", "encode")
    assert exported.serving_default == "fill_mask_text"
    files = set(os.listdir(exported.path))
    assert {"saved_model.pb", "variables", "assets.extra"} <= files
    assert not [n for n in os.listdir(os.path.dirname(exported.path)) if n.startswith(".tmp")]


def test_saved_model_cli_lists_the_signatures(exported):
    shown = subprocess.run(
        ["saved_model_cli", "show", "--dir", exported.path, "--all"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert shown.returncode == 0, shown.stderr[-2000:]
    out = shown.stdout
    for name in ("fill_mask_text", "fill_mask", "encode", "serving_default"):
        assert f"signature_def['{name}']:" in out
    assert "inputs['texts'] tensor_info:\n        dtype: DT_STRING\n        shape: (-1)" in out
    assert f"inputs['token_ids'] tensor_info:\n        dtype: DT_INT32\n        shape: (-1, {SEQUENCE_LENGTH})" in out
    assert "outputs['top_k_tokens'] tensor_info:\n        dtype: DT_STRING\n        shape: (-1, -1, 5)" in out


def test_warmup_file_holds_real_requests_for_every_signature(exported):
    requests = warmup.read_requests(exported.path)
    assert exported.warmup_requests == len(requests) == 6
    by_signature = {}
    for request in requests:
        assert request.model_spec.name == MODEL_NAME
        batch = request.inputs[next(iter(request.inputs))].tensor_shape.dim[0].size
        by_signature.setdefault(request.model_spec.signature_name, set()).add((tuple(sorted(request.inputs)), batch))
    assert by_signature == {
        "fill_mask_text": {(("texts",), 1), (("texts",), 4)},
        "fill_mask": {(("padding_mask", "token_ids"), 1), (("padding_mask", "token_ids"), 4)},
        "encode": {(("padding_mask", "segment_ids", "token_ids"), 1), (("padding_mask", "segment_ids", "token_ids"), 4)},
    }


OLD_RELEASE = serving_ops.ServingRelease("9.1", "9.1.0", serving_ops.TF_TEXT_OPS_2_12 - {"FastWordpieceTokenizeWithOffsets"})
"""A made-up TF Serving release whose tensorflow-text lacks the op our tokenizer uses."""


@pytest.fixture(scope="module")
def cli_export(exported, run_dir, saved_models):
    """`keras-mlm export` of the session's run again, without --version, against OLD_RELEASE, which
    cannot run the text signature: so the text signature is left out (--signatures)."""
    from keras_mlm.cli.main import main

    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out):
        patch.setitem(serving_ops.SERVING_RELEASES, OLD_RELEASE.version, OLD_RELEASE)
        code = main(["export", str(run_dir), "--name", MODEL_NAME, "--to", str(saved_models), "--signatures", "fill_mask,encode",
                     "--warmup-text", "the [MASK] sat", "--serving-version", OLD_RELEASE.version])
    return code, out.getvalue()


def test_versions_increment_and_are_immutable(exported, cli_export, loaded_run, saved_models):
    code, out = cli_export
    assert code == 0
    assert f"wrote {saved_models}/{MODEL_NAME}/2: model '{MODEL_NAME}' version 2\n" in out
    assert sorted(os.listdir(saved_models / MODEL_NAME)) == ["1", "2"]  # nothing temporary left behind
    run = loaded_run
    with pytest.raises(UserInputError, match=rf"{MODEL_NAME}/2 already exists: versions are immutable"):
        export_model(run.model, run.tokens, SEQUENCE_LENGTH, MODEL_NAME, to=str(saved_models), version=2)
    config = read_config(os.path.join(saved_models, "models.config"))
    assert [(c.name, c.base_path, c.model_platform) for c in config.model_config_list.config] == [(MODEL_NAME, f"/models/{MODEL_NAME}", "tensorflow")]


def test_without_the_text_signature_the_ids_one_is_served_by_default(cli_export, saved_models):
    code, out = cli_export
    assert "signatures: fill_mask, encode; serving_default -> fill_mask\n" in out
    assert "serving check against TF Serving 9.1 (tensorflow-text 9.1.0):\n  serving_default: core TensorFlow ops only" in out
    written = serving_ops.signature_custom_ops(str(saved_models / MODEL_NAME / "2"))
    assert written == {"serving_default": set(), "fill_mask": set(), "encode": set()}


def test_unservable_signature_is_refused_and_nothing_is_published(loaded_run, tmp_path, monkeypatch):
    monkeypatch.setitem(serving_ops.SERVING_RELEASES, OLD_RELEASE.version, OLD_RELEASE)
    run = loaded_run
    with pytest.raises(UserInputError, match=r"TF Serving 9\.1 \(tensorflow-text 9\.1\.0\) cannot run fill_mask_text needs "
                                             r"FastWordpieceTokenizeWithOffsets: serve with TF Serving 2\.12 or newer"):
        export_model(run.model, run.tokens, SEQUENCE_LENGTH, "old", to=str(tmp_path), serving_version="9.1")
    assert os.listdir(tmp_path) == []


def test_bad_arguments_are_user_errors(loaded_run, tmp_path):
    run = loaded_run
    cases = {
        "bad/name": r"--name 'bad/name': use letters, digits",
        ".hidden": r"--name '.hidden'",
    }
    for name, message in cases.items():
        with pytest.raises(UserInputError, match=message):
            export_model(run.model, run.tokens, SEQUENCE_LENGTH, name, to=str(tmp_path))
    with pytest.raises(UserInputError, match=r"--version must be a positive integer, got 0"):
        export_model(run.model, run.tokens, SEQUENCE_LENGTH, "m", to=str(tmp_path), version=0)
    with pytest.raises(UserInputError, match=r"--signatures fill_mask,classify: unknown classify \(allowed: fill_mask_text, fill_mask, encode\)"):
        export_model(run.model, run.tokens, SEQUENCE_LENGTH, "m", to=str(tmp_path), signatures=["fill_mask", "classify"])
    with pytest.raises(UserInputError, match=r"sequence length 65 exceeds the model's max_sequence_length 64"):
        export_model(run.model, run.tokens, 65, "m", to=str(tmp_path))
    with pytest.raises(UserInputError, match=r"warm-up texts: .*text has no \[MASK\]; rows:\] \[1\]"):
        export_model(run.model, run.tokens, SEQUENCE_LENGTH, "m", to=str(tmp_path), warmup_texts=["a [MASK]", "no mask"])
    with pytest.raises(UserInputError, match=r"no export signatures for a object model \(known model types: MaskedLM"):
        signatures_lib.signatures_for(object())
    with pytest.raises(UserInputError, match=r"no such run directory"):
        export_run(str(tmp_path / "missing"), "m", to=str(tmp_path))
    assert not os.path.exists(tmp_path / "m")


def test_task_models_register_their_own_signatures(monkeypatch):
    class Classifier:
        pass

    class BiggerClassifier(Classifier):
        pass

    builders = (signatures_lib.Encode(),)
    monkeypatch.setitem(signatures_lib.SIGNATURES, Classifier, builders)
    assert signatures_lib.signatures_for(BiggerClassifier()) is builders  # nearest registered base class
    with pytest.raises(ValueError, match="unique"):
        signatures_lib.register_signatures(Classifier, (signatures_lib.Encode(), signatures_lib.Encode()))


def test_models_config_keeps_entries_adds_models_and_refuses_garbage(tmp_path):
    root = tmp_path / "saved_models"
    (root / "a" / "3" / "variables").mkdir(parents=True)
    (root / "a" / "3" / "saved_model.pb").write_bytes(b"")
    (root / "half" / ".tmp-1-99").mkdir(parents=True)  # an unfinished export is not a model
    (root / "models.config").write_text(
        'model_config_list { config { name: "kept" base_path: "/srv/kept" model_platform: "tensorflow" '
        "model_version_policy { all {} } } }"
    )
    path, config = update_models_config(str(root), ["b"], base_path="/models/")
    assert [(c.name, c.base_path) for c in config.model_config_list.config] == [("kept", "/srv/kept"), ("a", "/models/a"), ("b", "/models/b")]
    reread = read_config(path)
    assert reread == config and reread.model_config_list.config[0].model_version_policy.HasField("all")
    assert sorted(os.listdir(root)) == [".models.config.lock", "a", "half", "models.config"]
    (root / "models.config").write_text("model_config_list { nonsense")
    with pytest.raises(UserInputError, match=r"models.config: not a ModelServerConfig text proto"):
        update_models_config(str(root), ["c"])


def test_cli_reports_user_errors(run_dir, tmp_path, capsys):
    from keras_mlm.cli.main import main

    assert main(["export", str(run_dir), "--name", "cli", "--to", str(tmp_path), "--serving-version", "1.15"]) == 2
    assert "keras-mlm export: error: --serving-version 1.15: unknown TF Serving release" in capsys.readouterr().err
    assert main(["export", str(run_dir), "--name", "cli", "--to", str(tmp_path), "--signatures", ","]) == 2
    assert "keras-mlm export: error: --signatures: give comma-separated names" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []
