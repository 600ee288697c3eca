"""The learning-rate schedule a run trains with is the one its config says, step by step."""

import sys
from pathlib import Path

import numpy as np
import pytest

from keras_mlm.errors import UserInputError
from keras_mlm.training.config import TrainingConfig
from keras_mlm.training.optimizer import WarmupDecay
from keras_mlm.training.pretrain import pretrain

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tiny_run.py beside this file (importlib mode)
import tiny_run  # noqa: E402


def test_warmup_then_linear_and_cosine_decay():
    linear = WarmupDecay(1.0, 10, 110, "linear")
    cosine = WarmupDecay(1.0, 10, 110, "cosine")
    got = [float(linear(s)) for s in (0, 5, 10, 60, 110, 200)]
    assert got == pytest.approx([0.0, 0.5, 1.0, 0.5, 0.0, 0.0])
    assert float(cosine(60)) == pytest.approx(0.5) and float(cosine(35)) == pytest.approx(0.5 + 0.5 * np.cos(np.pi / 4))


def test_warmup_stable_decay_holds_the_peak_then_decays_over_the_last_steps():
    # Warm-up 10, hold to step 90, linear (or cosine) down to `end` over the last 20 steps.
    wsd = WarmupDecay(2.0, 10, 110, "linear", end=0.5, decay_steps=20)
    got = [float(wsd(s)) for s in (0, 5, 10, 50, 90, 100, 110, 150)]
    assert got == pytest.approx([0.0, 1.0, 2.0, 2.0, 2.0, 1.25, 0.5, 0.5])
    assert float(WarmupDecay(1.0, 10, 110, "cosine", decay_steps=20)(95)) == pytest.approx(0.5 + 0.5 * np.cos(np.pi / 4))
    # A decay longer than the steps after warm-up starts at the end of warm-up: no hold.
    assert float(WarmupDecay(1.0, 10, 110, decay_steps=1000)(60)) == pytest.approx(0.5)
    restored = WarmupDecay(**wsd.get_config())
    assert [float(restored(s)) for s in (5, 100)] == pytest.approx([1.0, 1.25])


def test_decay_fraction_sizes_the_decay_and_is_checked():
    assert TrainingConfig().decay_steps_of(1000) is None  # 1: every step after warm-up, as BERT
    assert TrainingConfig(decay_fraction=0.2).decay_steps_of(1000) == 200
    assert TrainingConfig(decay_fraction=0.2).decay_steps_of(3) == 1  # never a zero-step decay
    for bad in (0, -0.1, 1.5):
        with pytest.raises(UserInputError, match=r"training.decay_fraction must be in \(0, 1\]"):
            TrainingConfig(decay_fraction=bad)


def test_the_run_trains_with_the_configured_schedule_step_by_step(tmp_path):
    """The learning rate logged at every 5th step equals the config's schedule there, exactly."""
    import tensorflow as tf
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    data, vocab = tiny_run.write_corpus(str(tmp_path / "corpus"))
    # 40 steps: warm-up 4 (0.1), hold at 3e-3 to step 30, linear to 0 over the last 10 (0.25).
    config = tiny_run.tiny_config(steps=40, warmup_fraction=0.1, decay_fraction=0.25, learning_rate=3e-3, log_every=5, checkpoint_every=40)
    summary = pretrain(config, [data], vocab, str(tmp_path / "run"), verbose=0)
    events = EventAccumulator(str(tmp_path / "run" / "logs" / "train"), size_guidance={"tensors": 0})
    events.Reload()
    logged = {e.step: float(tf.make_ndarray(e.tensor_proto)) for e in events.Tensors("learning_rate")}

    def expected(step):
        if step < 4:
            return 3e-3 * step / 4
        return 3e-3 if step <= 30 else 3e-3 * (1 - (step - 30) / 10)

    assert sorted(logged) == list(range(5, 41, 5))
    assert [logged[s] for s in sorted(logged)] == pytest.approx([expected(s) for s in sorted(logged)], rel=1e-6, abs=1e-12)
    schedule = summary["model"].optimizer.get_config()["learning_rate"]["config"]
    assert (schedule["warmup_steps"], schedule["total_steps"], schedule["decay_steps"]) == (4, 40, 10)
