"""`keras-mlm import` and `keras-mlm export-weights`: what they print, exit codes, and later verbs on the result."""

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # checkpoint_sources.py (pytest uses importlib mode)

import checkpoint_sources as sources  # noqa: E402
from keras_mlm.cli.main import EXIT_USER_ERROR, main  # noqa: E402


def test_import_then_fill_mask_then_export_weights(google_source, tmp_path, capsys):
    run = str(tmp_path / "run")
    assert main(["import", google_source[0], "--out", run, "--seq-len", "12"]) == 0
    out = capsys.readouterr().out
    assert "imported google-research checkpoint" in out and "MLM head: imported" in out

    assert main(["fill-mask", run, "the cat [MASK] on the mat", "--json", "--top-k", "3"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["masks"][0]["position"] == 3 and len(result["masks"][0]["predictions"]) == 3
    assert all(p["token"] not in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]") for p in result["masks"][0]["predictions"])

    assert main(["export-weights", run, "--format", "hf", "--out", str(tmp_path / "hf")]) == 0
    out = capsys.readouterr().out
    assert "wrote hf folder" in out and "pooler: newly initialised" in out and "check: keras_hub" in out
    assert os.path.isfile(tmp_path / "hf" / "model.safetensors")


def test_import_without_a_head_says_so(tmp_path, capsys):
    sources.write_google(str(tmp_path / "src"), sources.google_tensors(head=False))
    assert main(["import", str(tmp_path / "src"), "--out", str(tmp_path / "run")]) == 0
    assert "MLM head: initialised (the source has none)" in capsys.readouterr().out


def test_errors_are_one_line_with_exit_code_2(hf_source, tmp_path, capsys):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "pytorch_model.bin").write_bytes(b"x")
    assert main(["import", str(tmp_path / "bin"), "--out", str(tmp_path / "run")]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.startswith("keras-mlm import: error: ") and "pytorch_model.bin" in err and err.count("\n") == 1
    assert main(["import", hf_source[0], "--out", str(tmp_path / "run"), "--seq-len", "64"]) == EXIT_USER_ERROR
    assert "--seq-len 64 exceeds the model's max_sequence_length 16" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
