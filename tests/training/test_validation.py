"""Validation while pre-training (`--eval-data`): the numbers of `keras-mlm evaluate`, in TensorBoard and summary.json."""

import json
import sys
from pathlib import Path

import pytest

from keras_mlm.cli.main import main
from keras_mlm.training.pretrain import pretrain

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tiny_run.py beside this file (importlib mode)
import tiny_run  # noqa: E402

TRAINING = {"steps": 12, "batch_size": 16, "checkpoint_every": 4, "learning_rate": 2e-2, "eval_every": 4, "eval_tokens": 1200, "keep_best": True}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("validation")
    corpus, vocab = tiny_run.write_corpus(str(root))
    held_out = root / "held_out.txt"
    held_out.write_text("\n\n".join(tiny_run.SENTENCES[::-1] * 30) + "\n")
    run_dir = root / "run"
    summary = pretrain(tiny_run.tiny_config(**TRAINING), [corpus], vocab, str(run_dir), verbose=0, eval_data=[str(held_out)])
    return run_dir, held_out, summary


def _evaluate_cli(capsys, run_dir, checkpoint, data, max_tokens):
    code = main(["evaluate", str(run_dir), str(data), "--model-path", str(checkpoint), "--max-tokens", str(max_tokens), "--json"])
    assert code == 0
    return json.loads(capsys.readouterr().out)


def test_validation_equals_keras_mlm_evaluate_on_the_same_checkpoint(run, capsys):
    run_dir, held_out, summary = run
    history = json.loads((run_dir / "validation.json").read_text())["history"]
    assert [e["step"] for e in history] == [4, 8, 12]
    # 1200 tokens of 16-id rows: the first 75 rows; the numbers are evaluate's, to the last bit.
    for entry in history[1:]:  # steps 8 and 12: still among the 3 checkpoints kept
        expected = _evaluate_cli(capsys, run_dir, run_dir / "checkpoints" / f"ckpt-{entry['step']:08d}.keras", held_out, 1200)
        assert {k: entry[k] for k in expected} == expected
    assert summary["validation"] == history[-1]
    assert json.loads((run_dir / "summary.json").read_text())["validation"] == history[-1]
    assert history[-1]["tokens"] < 0.2 * 75 * 16  # about 15% of 75 rows' tokens are scored


def test_best_checkpoint_is_the_lowest_validation_loss(run, capsys):
    run_dir, held_out, summary = run
    history = json.loads((run_dir / "validation.json").read_text())["history"]
    best = min(history, key=lambda e: e["loss"])
    assert summary["best_validation"] == best
    assert _evaluate_cli(capsys, run_dir, run_dir / "best.keras", held_out, 1200)["loss"] == best["loss"]


def test_validation_curves_are_in_tensorboard_at_optimizer_steps(run):
    import tensorflow as tf
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, _, _ = run
    events = EventAccumulator(str(run_dir / "logs" / "validation"), size_guidance={"tensors": 0})
    events.Reload()
    assert {"loss", "masked_accuracy", "perplexity"} <= set(events.Tags()["tensors"])  # the training curves' names
    history = json.loads((run_dir / "validation.json").read_text())["history"]
    logged = [(e.step, float(tf.make_ndarray(e.tensor_proto))) for e in events.Tensors("loss")]
    assert logged == [(e["step"], pytest.approx(e["loss"], rel=1e-6)) for e in history]


def test_a_resumed_run_keeps_its_validation_history(run, tmp_path):
    import shutil

    run_dir, held_out, _ = run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    corpus, vocab = held_out.parent / "corpus.txt", held_out.parent / "vocab.txt"
    longer = pretrain(tiny_run.tiny_config(**{**TRAINING, "steps": 16}), [str(corpus)], str(vocab), str(copy), verbose=0, eval_data=[str(held_out)])
    assert longer["resumed_from_step"] == 12
    history = json.loads((copy / "validation.json").read_text())["history"]
    assert [e["step"] for e in history] == [4, 8, 12, 16]
