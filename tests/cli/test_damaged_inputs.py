"""Damaged shards and run folders: one line naming the file and what is wrong, exit code 2, nothing written."""

import json
import shutil
import sys
from pathlib import Path

import pytest

from keras_mlm.cli.main import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))  # tiny_run.py (importlib mode)
import tiny_run  # noqa: E402


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A corpus, its shards (5 of 20 rows: 98 rows of 16 ids) and a trained 2-step run folder."""
    from keras_mlm.training.pretrain import pretrain

    root = tmp_path_factory.mktemp("made")
    corpus, vocab = tiny_run.write_corpus(str(root))
    assert main(["prepare", corpus, "--vocab", vocab, "--seq-len", str(tiny_run.SEQ_LEN), "--rows-per-shard", "20", "--out", str(root / "shards"), "--quiet"]) == 0
    pretrain(tiny_run.tiny_config(steps=2, checkpoint_every=2), [corpus], vocab, str(root / "run"), verbose=0)
    return root


def one_line_error(capsys, *argv):
    code = main([str(a) for a in argv])
    _, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "error:" in lines[0] and "Traceback" not in err, err
    return lines[0]


def pretrain_args(made, shards, out, *extra):
    model = [f"--model={k}={v}" for k, v in tiny_run.TINY_MODEL.items()]
    return ["pretrain", "--data", shards, "--vocab", made / "vocab.txt", "--out", out, "--steps", "2", "--batch-size", "8", *model, *extra]


@pytest.fixture
def shards(made, tmp_path):
    copy = tmp_path / "shards"
    shutil.copytree(made / "shards", copy)
    return copy


def test_a_truncated_shard_stops_pretrain_before_anything_is_written(made, shards, tmp_path, capsys):
    shard = shards / "shard-00002.tfrecord"
    size = shard.stat().st_size
    shard.write_bytes(shard.read_bytes()[:-100])
    line = one_line_error(capsys, *pretrain_args(made, shards, tmp_path / "run"))
    assert f"{shard}: truncated: {size - 100:,} bytes, the manifest records {size:,}" in line
    assert not (tmp_path / "run").exists()


def test_a_corrupted_shard_is_named_by_inspect_verify_and_pretrain(made, shards, tmp_path, capsys):
    shard = shards / "shard-00001.tfrecord"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only reading the records finds it
    shard.write_bytes(bytes(data))
    line = one_line_error(capsys, "inspect", shards, "--verify")
    assert f"{shard}: corrupt after " in line and "corrupted record at" in line
    line = one_line_error(capsys, *pretrain_args(made, shards, tmp_path / "run"))
    assert f"{shard}: corrupt after " in line
    assert not (tmp_path / "run").exists()


def test_inspect_verify_checks_records_against_the_manifest(made, shards, capsys):
    assert main(["inspect", str(shards), "--verify", "--sample-tokens", "100"]) == 0
    assert "every record matches the manifest's records_sha256" in capsys.readouterr().out
    manifest = json.loads((shards / "manifest.json").read_text())
    manifest["shards"][0]["records_sha256"] = "0" * 64  # other records than the manifest says
    (shards / "manifest.json").write_text(json.dumps(manifest))
    line = one_line_error(capsys, "inspect", shards, "--verify")
    assert f"{shards / 'shard-00000.tfrecord'}: records do not match the manifest's records_sha256" in line


def test_manifests_without_sizes_are_accepted(made, shards, capsys):
    from keras_mlm.data.verify import check_shards

    manifest = json.loads((shards / "manifest.json").read_text())
    for shard in manifest["shards"]:
        del shard["bytes"]  # written before sizes were recorded
    (shards / "manifest.json").write_text(json.dumps(manifest))
    assert check_shards(str(shards), records=True) > 0
    assert main(["inspect", str(shards), "--verify", "--sample-tokens", "100"]) == 0
    assert "older manifest records no sizes" in capsys.readouterr().out


def test_rows_longer_than_the_models_positions_are_refused(made, tmp_path, capsys):
    line = one_line_error(capsys, *pretrain_args(made, made / "shards", tmp_path / "run", "--model", "max_sequence_length=8"))
    assert "training shards hold rows of 16 ids, the model has 8 positions" in line
    assert not (tmp_path / "run").exists()


@pytest.fixture
def run_dir(made, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(made / "run", copy)
    return copy


def _truncate(path, keep):
    path.write_bytes(path.read_bytes()[:keep])


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: _truncate(d / "model.keras", 2000), "model.keras: not a readable Keras model"),
        (lambda d: (d / "model.keras").unlink(), "holds no model.keras"),
        (lambda d: (d / "config.yaml").unlink(), "holds no config.yaml"),
        (lambda d: (d / "config.yaml").write_text("model: {hidden_dim: 32\n"), "config.yaml: unreadable run configuration"),
        (lambda d: (d / "config.yaml").write_text((d / "config.yaml").read_text().replace("hidden_dim: 32", "hidden_dim: 64")),
         "config.yaml: says model hidden_dim 64, model.keras has 32"),
        (lambda d: (d / "vocab.txt").write_text("\n".join((d / "vocab.txt").read_text().split("\n")[:20]) + "\n"),
         "vocab.txt: holds 20 tokens, the model in model.keras has 25 embedding rows"),
        (lambda d: (d / "vocab.txt").unlink(), "vocab.txt: vocabulary file not found"),
    ],
)
def test_a_damaged_run_folder_is_named(made, run_dir, tmp_path, capsys, damage, message):
    damage(run_dir)
    assert message in one_line_error(capsys, "fill-mask", run_dir, "the cat sat on a [MASK]")
    assert message in one_line_error(capsys, "evaluate", run_dir, made / "shards")
    # Continuing from it: refused before the new run folder is made.
    assert message in one_line_error(capsys, *pretrain_args(made, made / "shards", tmp_path / "continued", "--init-from", run_dir))
    assert not (tmp_path / "continued").exists()
