"""Bad input through the `keras-mlm` command: one line naming the problem, exit code 2, nothing half-written."""

import json

import pytest

from keras_mlm.cli.main import main
from keras_mlm.tokenizers import SPECIAL_TOKENS, write_vocabulary

WORDS = "the cat dog sat on a mat".split()


@pytest.fixture
def files(tmp_path):
    write_vocabulary(list(SPECIAL_TOKENS) + WORDS, tmp_path / "vocab.txt")
    write_vocabulary(["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + WORDS, tmp_path / "no_mask.txt")
    (tmp_path / "corpus.txt").write_text("the cat sat on a mat\n\nthe dog sat\n")
    (tmp_path / "empty.txt").write_text("\n\n")
    (tmp_path / "latin1.txt").write_bytes("the caf\xe9 cat\n".encode("latin-1"))
    return tmp_path


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["prepare", "{d}/missing.txt", "--vocab", "{d}/vocab.txt", "--out", "{d}/out"], "missing.txt: no such file or folder"),
        (["prepare", "{d}/empty.txt", "--vocab", "{d}/vocab.txt", "--out", "{d}/out"], "empty corpus"),
        (["prepare", "{d}/latin1.txt", "--vocab", "{d}/vocab.txt", "--out", "{d}/out"], "latin1.txt:1: bytes that are not UTF-8 at byte offset 7"),
        (["prepare", "{d}/corpus.txt", "--vocab", "{d}/no_mask.txt", "--out", "{d}/out"], r"lacks required special token(s) [MASK]"),
        (["prepare", "{d}/corpus.txt", "--vocab", "{d}/vocab.txt", "--out", "{d}/out", "--seq-len", "4"], "seq_len must be an integer >= 8"),
        (["vocab", "{d}/empty.txt", "--vocab-size", "100", "--out", "{d}/v.txt"], "empty corpus"),
        (["pretrain", "--data", "{d}/corpus.txt", "--vocab", "{d}/vocab.txt", "--out", "{d}/run", "--selection-rate", "1.5"], "selection_rate"),
        (["pretrain", "--data", "{d}/corpus.txt", "--vocab", "{d}/vocab.txt", "--out", "{d}/run", "--mask-token-rate", "0.8", "--random-token-rate", "0.3"], "random"),
        (["pretrain", "--data", "{d}/corpus.txt", "--vocab", "{d}/vocab.txt", "--out", "{d}/run", "--preset", "huge"], "unknown preset 'huge' (allowed: tiny, mini"),
        (["pretrain", "--data", "{d}/corpus.txt", "--vocab", "{d}/vocab.txt", "--out", "{d}/run", "--config", "{d}/missing.yaml"], "missing.yaml: config file not found"),
        (["fill-mask", "{d}/norun", "the [MASK]"], "norun: no such run directory"),
        (["inspect", "{d}"], "not a prepared shards directory"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(files, capsys, argv, message):
    code, out, err = run(capsys, *[a.format(d=files) for a in argv])
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("keras-mlm ") and "error:" in lines[0], err
    assert message in lines[0], lines[0]
    assert "Traceback" not in err
    for folder in ("out", "run"):
        target = files / folder
        assert not target.exists() or not [p for p in target.rglob("*") if p.is_file() and p.name != "vocab.txt"]


def test_config_file_errors_name_the_file_and_key(files, capsys):
    (files / "bad.yaml").write_text("training:\n  stepz: 10\n")
    code, _, err = run(capsys, "pretrain", "--data", files / "corpus.txt", "--vocab", files / "vocab.txt", "--out", files / "run", "--config", files / "bad.yaml")
    assert code == 2 and "bad.yaml: unknown key(s) stepz in 'training' (allowed: " in err
    (files / "broken.yaml").write_text("training: [unclosed\n")
    code, _, err = run(capsys, "pretrain", "--data", files / "corpus.txt", "--vocab", files / "vocab.txt", "--out", files / "run", "--config", files / "broken.yaml")
    assert code == 2 and "broken.yaml: not valid YAML" in err


def test_flags_override_the_config_file(files):
    import argparse

    from keras_mlm.cli.model_commands import add_training_arguments, run_config_from_args

    (files / "run.yaml").write_text("preset: mini\ntraining:\n  steps: 10\n  batch_size: 8\nmasking:\n  selection_rate: 0.2\n")
    parser = argparse.ArgumentParser()
    add_training_arguments(parser)
    config = run_config_from_args(parser.parse_args(["--config", str(files / "run.yaml"), "--steps", "20", "--model", "dropout=0.0"]))
    assert (config.preset, config.training.steps, config.training.batch_size) == ("mini", 20, 8)
    assert config.masking.selection_rate == 0.2 and config.model == {"dropout": 0.0}
    # --masking (what is selected) and --strategy (distribution) are different settings.
    both = run_config_from_args(parser.parse_args(["--strategy", "mirrored", "--masking", "span"]))
    assert (both.training.strategy, both.masking.strategy) == ("mirrored", "span")


def test_vocab_prepare_inspect_json(files, capsys):
    (files / "text.txt").write_text("\n\n".join("the cat sat on a mat and the dog sat on a log" for _ in range(300)))
    code, out, _ = run(capsys, "vocab", files / "text.txt", "--vocab-size", "60", "--out", files / "v.txt")
    assert code == 0 and "wrote" in out
    tokens = (files / "v.txt").read_text().split("\n")
    assert tokens[:5] == list(SPECIAL_TOKENS)
    code, out, _ = run(capsys, "prepare", files / "text.txt", "--vocab", files / "v.txt", "--seq-len", "32", "--out", files / "shards", "--quiet")
    assert code == 0
    code, out, _ = run(capsys, "inspect", files / "shards", "--json", "--sample-tokens", "2000")
    stats = json.loads(out)
    for field in ("documents", "source_tokens", "sequences", "seq_len", "padding_fraction", "selected_fraction", "mask_fraction", "random_fraction", "keep_fraction", "specials_selected", "masks_per_row"):
        assert field in stats
    assert stats["specials_selected"] == 0 and stats["documents"] == 300
    assert abs(stats["selected_fraction"] - 0.15) < 0.02
    code, out, _ = run(capsys, "inspect", files / "shards", "--sample-tokens", "500")
    assert "->" in out and "selected_fraction" in out
