"""`keras-mlm illustrate`: writes the file and prints what it shows; bad input is one line, exit 2."""

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from keras_mlm.cli.main import main

sys.path.insert(0, str(Path(__file__).resolve().parent))  # illustrate_texts.py beside this file (importlib mode)
from illustrate_texts import LONG_SENTENCE, SENTENCE  # noqa: E402


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_illustrate_writes_the_picture_and_prints_the_predictions(trained_run, tmp_path, capsys):
    run_dir, _ = trained_run
    out_file = tmp_path / "cat.svg"
    code, out, err = run(capsys, "illustrate", run_dir, SENTENCE, "--out", out_file, "--seed", "0", "--top-k", "3")
    assert code == 0, err
    ET.parse(out_file)
    lines = out.strip().splitlines()
    assert lines[0] == f"wrote {out_file}: 9 tokens, 1 predicted"
    assert lines[1].startswith("  position ") and "loss" in lines[1] and lines[1].count(",") == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["{run}", SENTENCE, "--out", "{tmp}/x.jpg"], "unknown suffix '.jpg'"),
        (["{tmp}/no-run", SENTENCE, "--out", "{tmp}/x.svg"], "no-run: no such run directory"),
        (["{run}", LONG_SENTENCE + " " + LONG_SENTENCE, "--out", "{tmp}/x.svg"], "the model takes at most 48"),
        (["{run}", SENTENCE, "--out", "{tmp}/x.svg", "--layer", "2"], "--layer 2: the encoder has 1 layer"),
        (["{run}", SENTENCE, "--out", "{tmp}/missing/x.svg"], "no such folder"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(trained_run, tmp_path, capsys, args, message):
    run_dir, _ = trained_run
    code, out, err = run(capsys, "illustrate", *[a.format(run=run_dir, tmp=tmp_path) for a in args])
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("keras-mlm illustrate: error: ") and message in lines[0], err
    assert not (tmp_path / "x.svg").exists()
