"""Continued (domain-adaptive) pre-training: `pretrain(..., init_from=RUN_DIR)` starts from another run's model."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from keras_mlm.errors import UserInputError
from keras_mlm.training.pretrain import pretrain

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tiny_run.py beside this file (importlib mode)
import tiny_run  # noqa: E402

# A source that has learnt something: 40 steps take the loss from chance, ln(25) = 3.22, to about 2.75.
SOURCE = {"steps": 40, "batch_size": 16, "checkpoint_every": 20, "learning_rate": 2e-2, "warmup_fraction": 0.1}
CONTINUED = {"steps": 4, "batch_size": 16, "checkpoint_every": 2, "log_every": 1, "learning_rate": 1e-3, "seed": 7}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    tiny_run.write_corpus(str(root))
    # The "domain" text: other sentences over the same words (so the same vocabulary covers it).
    (root / "domain.txt").write_text("\n\n".join(["the blue bird sat on the big tree", "a small red dog ran in the sun"] * 60) + "\n")
    return root


@pytest.fixture(scope="module")
def source(corpus, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("source")
    pretrain(tiny_run.tiny_config("bert", **SOURCE), [str(corpus / "corpus.txt")], str(corpus / "vocab.txt"), str(run_dir), verbose=0)
    return run_dir


def _logged(run_dir, tag):
    import tensorflow as tf
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "logs" / "train"), size_guidance={"tensors": 0})
    events.Reload()
    return {e.step: float(tf.make_ndarray(e.tensor_proto)) for e in events.Tensors(tag)}


def _first_batch_loss(model, run_dir, config):
    """The masked-LM loss of `model` on the first batch the run at `run_dir` trained on (rebuilt from its data)."""
    from keras_mlm.data.dataset import pretraining_dataset
    from keras_mlm.losses import MaskedLMLoss
    from keras_mlm.masking import MLMMasker
    from keras_mlm.tokenizers import load_vocabulary

    tokens = load_vocabulary(str(run_dir / "vocab.txt"))
    training = config.training
    masker = MLMMasker.from_vocabulary(tokens, tiny_run.SEQ_LEN, config.masking, seed=training.seed)
    dataset = pretraining_dataset(str(run_dir / "data"), training.batch_size, masker, seed=training.seed, shuffle_buffer=training.shuffle_buffer)
    x, y, w = next(iter(dataset))
    return float(MaskedLMLoss()(y, model(x, training=False), sample_weight=w))


def test_continued_run_starts_at_the_source_models_loss(corpus, source, tmp_path):
    import keras

    config = tiny_run.tiny_config("bert", **CONTINUED)
    summary = pretrain(config, [str(corpus / "domain.txt")], str(corpus / "vocab.txt"), str(tmp_path), verbose=0, init_from=str(source))
    assert summary["step"] == 4 and summary["resumed_from_step"] == 0
    # Step 1's loss is computed before the first update: with the source's weights (dropout 0), on the
    # continued run's first batch of the domain text.
    source_model = keras.saving.load_model(str(source / "model.keras"), compile=False)
    expected = _first_batch_loss(source_model, tmp_path, config)
    assert _logged(tmp_path, "loss")[1] == pytest.approx(expected, abs=1e-5)
    # ...not where a fresh model starts (near chance, ln(25) = 3.22; measured 3.20 against the source's 3.08).
    from keras_mlm.models import build_masked_lm

    keras.utils.set_random_seed(config.training.seed)
    fresh = build_masked_lm(config.encoder_config(len(tiny_run.WORDS) + 5))
    assert _first_batch_loss(fresh, tmp_path, config) > expected + 0.05

    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert saved["init_from"] == str(source)
    assert saved["model"] == yaml.safe_load((source / "config.yaml").read_text())["model"]
    assert saved["training"]["learning_rate"] == 1e-3  # its own training: a fresh optimizer and schedule
    assert json.loads((tmp_path / "summary.json").read_text())["step"] == 4  # its own step count, from 0


def test_a_different_vocabulary_is_refused_naming_both_files(corpus, source, tmp_path):
    from keras_mlm.tokenizers import SPECIAL_TOKENS, write_vocabulary

    other = tmp_path / "other_vocab.txt"
    write_vocabulary(list(SPECIAL_TOKENS) + tiny_run.WORDS[::-1], other)
    with pytest.raises(UserInputError) as error:
        pretrain(tiny_run.tiny_config("bert", **CONTINUED), [str(corpus / "domain.txt")], str(other), str(tmp_path / "run"), verbose=0, init_from=str(source))
    message = str(error.value)
    assert f"{source}/vocab.txt (sha256 " in message and f"--vocab {other} (sha256 " in message
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "model, preset, message",
    [
        ({"hidden_dim": 64}, None, r"--model hidden_dim=64 \(source 32\) conflicts with the model of --init-from"),
        ({}, "mini", r"--preset mini conflicts with the model of --init-from .*: num_layers 4 \(source 1\)"),
    ],
)
def test_conflicting_sizes_are_refused(corpus, source, tmp_path, model, preset, message):
    from keras_mlm.training.run_config import build_run_config

    config = build_run_config({"preset": preset, "model": model, "data": {"seq_len": tiny_run.SEQ_LEN}, "training": CONTINUED})
    with pytest.raises(UserInputError, match=message):
        pretrain(config, [str(corpus / "domain.txt")], str(corpus / "vocab.txt"), str(tmp_path / "run"), verbose=0, init_from=str(source))
    assert not (tmp_path / "run").exists()


def test_dropout_may_change_and_sizes_come_from_the_source(corpus, source, tmp_path):
    from keras_mlm.training.run_config import build_run_config

    # No preset (it would be tiny's 128 wide): the source's sizes; dropout is the run's own.
    config = build_run_config({"model": {"dropout": 0.2}, "data": {"seq_len": tiny_run.SEQ_LEN}, "training": {**CONTINUED, "steps": 2, "precision": "float32"}})
    summary = pretrain(config, [str(corpus / "domain.txt")], str(corpus / "vocab.txt"), str(tmp_path), verbose=0, init_from=str(source))
    encoder = summary["model"].encoder
    assert (encoder.hidden_dim, encoder.num_layers, encoder.dropout) == (32, 1, 0.2)
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert saved["model"]["dropout"] == 0.2 and saved["model"]["hidden_dim"] == 32


def test_a_killed_continued_run_resumes_from_its_own_backup(corpus, source, tmp_path):
    from keras_mlm.training import callbacks
    from tiny_run import max_difference, weights_of

    config = tiny_run.tiny_config("bert", **{**CONTINUED, "checkpoint_every": 3, "log_every": 2})
    data, vocab = [str(corpus / "domain.txt")], str(corpus / "vocab.txt")
    planned = callbacks.StopAtStep
    # Stopped after step 2, within the first checkpoint interval, as a --max-time run stops: Keras ends
    # the interval there, and the backup it writes records the 2 batches read.
    callbacks.StopAtStep = lambda steps: planned(2)
    try:
        pretrain(config, data, vocab, str(tmp_path / "killed"), verbose=0, init_from=str(source))
    finally:
        callbacks.StopAtStep = planned
    assert json.loads((tmp_path / "killed" / "backup" / "state.json").read_text())["batches"] == 2
    resumed = pretrain(config, data, vocab, str(tmp_path / "killed"), verbose=0, init_from=str(source))
    assert resumed["resumed_from_step"] == 2 and resumed["step"] == 4
    whole = pretrain(config, data, vocab, str(tmp_path / "whole"), verbose=0, init_from=str(source))
    # Not re-initialised from the source at the resume, and the data resumed at batch 3: the weights
    # are those of the uninterrupted run.
    assert max_difference(weights_of(resumed["model"]), weights_of(whole["model"])) < 1e-6
    # A rerun must name the same source (or none): the folder holds a run of that source.
    with pytest.raises(UserInputError, match="holds a run initialised from"):
        pretrain(config, data, vocab, str(tmp_path / "killed"), verbose=0)
    assert np.isfinite(resumed["loss"])


def _source_of(architecture):
    from types import SimpleNamespace

    from keras_mlm.training.init_from import Source

    sizes = {"num_layers": 1, "hidden_dim": 16, "num_heads": 2, "intermediate_dim": 32}
    return Source(directory="runs/src", run=SimpleNamespace(config={"preset": "tiny"}), encoder=sizes, architecture=architecture)


def test_a_config_naming_no_architecture_continues_with_the_sources_defaults():
    """Built without an architecture, a config carries the default architecture's masking (modern: 30%);
    continued from a BERT it takes BERT's 15%, from a RoBERTa RoBERTa's optimizer, from an XLNet its
    targets; what a file or flag set stays, and a config made in code keeps what differs from the dataclass."""
    import dataclasses

    from keras_mlm.masking import MaskingConfig
    from keras_mlm.models import RobertaConfig, XLNetConfig
    from keras_mlm.training.init_from import continued_config
    from keras_mlm.training.run_config import RunConfig, build_run_config

    assert build_run_config().masking.selection_rate == 0.3  # the default architecture, modern
    bert = continued_config(build_run_config(), _source_of("bert"))
    assert (bert.architecture, bert.masking.selection_rate) == ("bert", 0.15)
    assert bert.training == build_run_config({"architecture": "bert"}).training
    given = continued_config(build_run_config(overrides={"masking": {"selection_rate": 0.3}, "training": {"steps": 7}}), _source_of("bert"))
    assert (given.masking.selection_rate, given.training.steps) == (0.3, 7)
    from_file = continued_config(build_run_config({"masking": {"selection_rate": 0.25}}), _source_of("bert"))
    assert from_file.masking.selection_rate == 0.25

    roberta = continued_config(build_run_config(), _source_of("roberta"))
    for key, value in RobertaConfig.TRAINING_DEFAULTS.items():
        assert getattr(roberta.training, key) == value, key
    assert roberta.masking.selection_rate == 0.15
    xlnet = continued_config(build_run_config(), _source_of("xlnet"))
    for key, value in XLNetConfig.MASKING_DEFAULTS.items():
        assert getattr(xlnet.masking, key) == value, key

    in_code = continued_config(RunConfig(masking=MaskingConfig(selection_rate=0.2)), _source_of("bert"))
    assert in_code.masking.selection_rate == 0.2
    assert continued_config(RunConfig(), _source_of("bert")).masking == MaskingConfig()
    named = build_run_config(overrides={"architecture": "bert"})  # names one: nothing changes but the sizes
    assert dataclasses.replace(continued_config(named, _source_of("bert")), preset=None, model={}) == named


def test_a_config_made_in_code_trains_its_architectures_defaults_as_the_cli():
    """RunConfig() in code is what `keras-mlm pretrain` with no flags trains (modern at 30%), a section
    passed in is kept as it is, and naming an architecture gives its defaults (BERT 15%, RoBERTa's optimizer)."""
    from keras_mlm.masking import MaskingConfig
    from keras_mlm.training.run_config import RunConfig, build_run_config

    assert RunConfig().masking == build_run_config().masking and RunConfig().masking.selection_rate == 0.3
    assert RunConfig().training == build_run_config().training
    assert RunConfig(masking=MaskingConfig()).masking.selection_rate == 0.15
    assert RunConfig(architecture="bert").masking == MaskingConfig()
    roberta = build_run_config({"architecture": "roberta"})
    assert (RunConfig(architecture="roberta").training, RunConfig(architecture="roberta").masking) == (roberta.training, roberta.masking)
    assert RunConfig(masking=MaskingConfig(selection_rate=0.2, keep_rate=0.1)).given == {("masking", "selection_rate")}


def test_workers_continue_with_the_same_given_keys(tmp_path):
    """A multi-worker launch file carries which keys were given, so each worker's continued run takes the
    source's defaults exactly as a single process would."""
    import json

    from keras_mlm.training.init_from import continued_config
    from keras_mlm.training.multi_worker import launch_config, write_launch_file
    from keras_mlm.training.run_config import build_run_config

    config = build_run_config(overrides={"training": {"steps": 7}})
    write_launch_file(tmp_path / "launch.json", config, ["text.txt"], "vocab.txt", "runs/out", init_from="runs/src")
    worker = launch_config(json.loads((tmp_path / "launch.json").read_text()), "launch.json")
    assert worker.given == config.given
    assert continued_config(worker, _source_of("bert")) == continued_config(config, _source_of("bert"))
    assert continued_config(worker, _source_of("bert")).masking.selection_rate == 0.15
