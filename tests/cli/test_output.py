"""What the command prints: plain log lines when stdout is not a terminal, defaults in --help, the user's casing."""

import argparse
import re
import sys
from pathlib import Path

import pytest

from keras_mlm.cli.main import build_parser, main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))  # tiny_run.py (importlib mode)
import tiny_run  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def test_a_non_terminal_run_prints_one_plain_line_per_log_interval(tmp_path, capsys):
    corpus, vocab = tiny_run.write_corpus(str(tmp_path))
    model = [f"--model={k}={v}" for k, v in tiny_run.TINY_MODEL.items()]
    argv = ["pretrain", "--data", corpus, "--vocab", vocab, "--out", str(tmp_path / "run"), "--seq-len", "16", *model,
            "--steps", "12", "--batch-size", "8", "--checkpoint-every", "6", "--log-every", "3", "--precision", "float32"]  # fmt: skip
    capsys.readouterr()
    assert main(argv) == 0  # under pytest's capture stdout is not a terminal, as in a log file
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out and "━" not in out  # no escape codes, no progress bar
    steps = [line for line in out.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in steps] == ["3/12", "6/12", "9/12", "12/12"]
    pattern = r"step \d+/12  loss \d\.\d{4}  accuracy \d\.\d{4}  [\d,]+ tokens/s  lr [\d.e-]+  ETA \d+m\d\ds"
    assert all(re.fullmatch(pattern, line) for line in steps), steps
    assert out.splitlines()[0] == "precision: float32 (as requested)" and out.splitlines()[-1].startswith("done: step 12, loss ")


def _verbs():
    parser = build_parser()
    (subparsers,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return subparsers.choices


@pytest.mark.parametrize("verb", sorted(_verbs()))
def test_help_shows_every_flags_default(verb):
    parser = _verbs()[verb]
    formatter = parser.formatter_class(prog=parser.prog)
    for action in parser._actions:
        if not action.option_strings or action.required or isinstance(action, argparse._HelpAction):
            continue
        assert "default" in formatter._get_help_string(action), f"keras-mlm {verb} {action.option_strings[0]}: no default in its help"
    assert "(default: " in parser.format_help()


def test_fill_mask_keeps_the_users_casing(tmp_path):
    from keras_mlm.inference.fill_mask import FillMask
    from keras_mlm.models import EncoderConfig, build_masked_lm
    from keras_mlm.tokenizers import SPECIAL_TOKENS

    # Whole words only, so the untrained model's top guess reads as a word whatever it is (a "##s" it
    # may pick would join "the"; that joining is checked below through fill_text).
    tokens = list(SPECIAL_TOKENS) + ["paris", "is", "the", "capital", "of", "france"]
    model = build_masked_lm(EncoderConfig(vocabulary_size=len(tokens), num_layers=1, hidden_dim=8, num_heads=1, intermediate_dim=16))
    fill = FillMask(model, tokens, sequence_length=16, lowercase=True)
    result = fill("Paris is the [MASK] of France", top_k=1)
    word = result["masks"][0]["predictions"][0]["token"]
    assert result["filled"] == f"Paris is the {word} of France"  # the text as written, the mask filled
    # A word piece joins the word before it; the spacing and punctuation are the user's.
    assert fill.fill_text("The capital [MASK]!  Of France.", ["##s"]) == "The capitals!  Of France."
    assert fill.fill_text("[MASK] is the [MASK]", ["Paris", "capital"]) == "Paris is the capital"


def test_the_library_does_not_import_the_command_line():
    offenders = []
    for path in (REPO / "keras_mlm").rglob("*.py"):
        if "cli" in path.relative_to(REPO / "keras_mlm").parts:
            continue
        if re.search(r"^\s*(from keras_mlm\.cli|import keras_mlm\.cli|from keras_mlm import cli)", path.read_text(), re.M):
            offenders.append(str(path.relative_to(REPO)))
    assert not offenders, f"the library imports keras_mlm.cli (nothing below the CLI may): {offenders}"


def test_the_worker_launch_file_carries_the_resolved_configuration(tmp_path):
    from keras_mlm.training.multi_worker import write_launch_file
    from keras_mlm.training.run_config import build_run_config

    config = build_run_config({"model": {"dropout": 0.0}, "masking": {"strategy": "span"}, "training": {"max_time": "20m", "num_workers": 2, "keep_best": True}})
    write_launch_file(tmp_path / "launch.json", config, ["a.txt"], "vocab.txt", "runs/x", eval_data="held_out/")
    import json

    launch = json.loads((tmp_path / "launch.json").read_text())
    assert build_run_config(launch["config"]) == config  # what each worker trains with, unparsed from argv
    assert (launch["data"], launch["eval_data"], launch["init_from"]) == (["a.txt"], ["held_out/"], None)


def test_the_default_recipe_is_documented_in_help_and_readme():
    from pathlib import Path

    help_text = " ".join(_verbs()["pretrain"].format_help().split())
    assert "default: modern" in help_text and "modern, the default architecture: 0.3" in help_text
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## The default recipe", 1)[1].split("\n## ", 1)[0]
    assert "benchmarks/bench_quality.py" in section and "| **modern, 30% selected (the default)** |" in section
