"""Pre-training end to end on a tiny literal corpus: learning, outputs, resume, fill-mask, evaluate, score."""

import json
import math
import os

import numpy as np
import pytest

import sys
from pathlib import Path

from keras_mlm.errors import UserInputError
from keras_mlm.training.pretrain import pretrain
from keras_mlm.training.run_config import build_run_config

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tiny_run.py beside this file (importlib mode)
import tiny_run  # noqa: E402
from tiny_run import SENTENCES, TINY_MODEL  # noqa: E402


def tiny_config(**training):
    """The learning configuration: enough steps and rate for the tiny model to learn the six sentences."""
    defaults = dict(steps=600, batch_size=32, learning_rate=1e-2, checkpoint_every=300, log_every=100, sample_every=300, warmup_fraction=0.05)
    defaults.update(training)
    return tiny_run.tiny_config(**defaults)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    # Each sentence is a document: rows hold [CLS] sentence [SEP] sentence [SEP] ... in random order,
    # so a neighbouring sentence tells nothing and the model must use the sentence itself.
    root = tmp_path_factory.mktemp("corpus")
    tiny_run.write_corpus(str(root))
    return root


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    summary = pretrain(tiny_config(), [str(corpus / "corpus.txt")], str(corpus / "vocab.txt"), str(run_dir), verbose=0)
    return run_dir, summary


def test_tiny_model_learns_the_corpus(trained, corpus):
    from keras_mlm.evaluation.evaluate import evaluate
    from keras_mlm.inference.run import load_run

    run_dir, summary = trained
    assert summary["step"] == 600 and math.isfinite(summary["loss"])
    # Six sentences in random order: a masked word is predictable from its own sentence only.
    # Chance is 1/25; the most frequent word ("the") alone gets about 0.3.
    run = load_run(str(run_dir))
    result = evaluate(run.model, run.tokens, [str(corpus / "corpus.txt")], seq_len=16)
    assert result["accuracy"] > 0.7, result


def test_run_dir_holds_model_vocab_config_checkpoints_and_logs(trained):
    run_dir, _ = trained
    names = set(os.listdir(run_dir))
    assert {"model.keras", "vocab.txt", "config.yaml", "summary.json", "checkpoints", "backup", "logs", "data"} <= names
    assert sorted(os.listdir(run_dir / "checkpoints")) == ["ckpt-00000300.keras", "ckpt-00000600.keras"]
    assert not [n for n in os.listdir(run_dir) if ".tmp" in n]
    import yaml

    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["model"]["vocabulary_size"] == 5 + len(tiny_run.WORDS)
    assert config["training"]["steps"] == 600 and config["data"]["seq_len"] == 16


def tf_value(event):
    import tensorflow as tf

    return tf.make_ndarray(event.tensor_proto)


def test_tensorboard_has_scalars_and_fill_mask_text(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, _ = trained
    events = EventAccumulator(str(run_dir / "logs" / "train"), size_guidance={"tensors": 0})
    events.Reload()
    tags = set(events.Tags()["tensors"])
    assert {"loss", "masked_accuracy", "perplexity", "learning_rate", "tokens_per_second", "fill_mask"} <= tags
    # The illustration of the first sample sentence, and accuracy by corruption kind, every sample_every steps.
    by_kind = {f"masked_accuracy_by_kind/{k}" for k in ("mask", "random", "kept")}
    assert {"illustration", "illustration/predictions"} | by_kind <= tags
    assert [e.step for e in events.Tensors("illustration")] == [300, 600]
    assert all(0 <= float(tf_value(e)) <= 1 for k in by_kind for e in events.Tensors(k))
    assert [e.step for e in events.Tensors("loss")] == [100, 200, 300, 400, 500, 600]
    import tensorflow as tf

    lr = [float(tf.make_ndarray(e.tensor_proto)) for e in events.Tensors("learning_rate")]
    assert lr[0] > lr[-1] >= 0  # decays after warm-up


def test_fill_mask_ranks_the_learned_token_first(trained):
    from keras_mlm.inference.fill_mask import fill_mask

    run_dir, _ = trained
    result = fill_mask(str(run_dir), "the cat sat on a [MASK]", top_k=5)
    (mask,) = result["masks"]
    probabilities = [p["probability"] for p in mask["predictions"]]
    assert probabilities == sorted(probabilities, reverse=True)
    assert all(0.0 <= p <= 1.0 for p in probabilities)
    assert mask["predictions"][0]["token"] in ("mat", "log")
    assert mask["position"] == 6  # [CLS] the cat sat on a [MASK]
    assert result["filled"].startswith("the cat sat on a ")
    assert not any(p["token"].startswith("[") for p in mask["predictions"])


def test_fill_mask_several_masks_and_iterative(trained):
    from keras_mlm.inference.fill_mask import fill_mask

    run_dir, _ = trained
    both = fill_mask(str(run_dir), ["the [MASK] sang in a [MASK]", "the dog ran to the [MASK]"], top_k=3)
    assert [len(r["masks"]) for r in both] == [2, 1]
    assert both[0]["masks"][0]["predictions"][0]["token"] == "bird"
    assert both[1]["masks"][0]["predictions"][0]["token"] == "park"
    iterative = fill_mask(str(run_dir), "the [MASK] sang in a [MASK]", top_k=3, iterative=True)
    assert iterative["filled"] == "the bird sang in a tree"


@pytest.mark.parametrize(
    "text, message",
    [("the cat sat", "has no \\[MASK\\]"), ("", "empty text"), (" ".join(["cat"] * 20) + " [MASK]", "the model takes at most 16")],
)
def test_fill_mask_bad_text(trained, text, message):
    from keras_mlm.inference.fill_mask import fill_mask

    with pytest.raises(UserInputError, match=message):
        fill_mask(str(trained[0]), text)


def test_evaluate_is_repeatable_and_better_than_chance(trained, corpus):
    from keras_mlm.evaluation.evaluate import evaluate
    from keras_mlm.inference.run import load_run

    run = load_run(str(trained[0]))
    first = evaluate(run.model, run.tokens, [str(corpus / "corpus.txt")], seq_len=16)
    second = evaluate(run.model, run.tokens, str(trained[0] / "data"))  # the same text, as shards
    assert first == second
    assert set(first) == {"loss", "accuracy", "perplexity", "tokens"}
    assert first["accuracy"] > 0.7 and first["perplexity"] == pytest.approx(math.exp(first["loss"]))
    assert first["tokens"] > 200  # about 15% of the 1,571 tokens


def test_pseudo_log_likelihood_matches_one_mask_at_a_time_and_prefers_real_word_order(trained):
    import tensorflow as tf

    from keras_mlm.evaluation.evaluate import score
    from keras_mlm.inference.run import load_run

    run = load_run(str(trained[0]))
    ids = {t: i for i, t in enumerate(run.tokens)}
    # Batched scoring (batch_size 4 splits the 6 copies) == masking each token alone, by hand.
    (result,) = score(run.model, run.tokens, ["the cat sat on a mat"], sequence_length=16, batch_size=4)
    row = [ids["[CLS]"]] + [ids[w] for w in "the cat sat on a mat".split()] + [ids["[SEP]"]] + [0] * 8
    expected = 0.0
    for position in range(1, 7):
        masked = list(row)
        masked[position] = ids["[MASK]"]
        x = {
            "token_ids": tf.constant([masked]),
            "segment_ids": tf.zeros((1, 16), tf.int32),
            "padding_mask": tf.constant([[t != 0 for t in masked]]),
            "mask_positions": tf.constant([[position]]),
        }
        expected += float(tf.nn.log_softmax(run.model(x)[0, 0])[row[position]])
    assert result["tokens"] == 6 and result["pll"] == pytest.approx(expected, abs=1e-4)
    assert result["pseudo_perplexity"] == pytest.approx(math.exp(-expected / 6), rel=1e-4)
    # The trained sentences score higher than the same words reversed, on average over all six.
    real = score(run.model, run.tokens, SENTENCES, sequence_length=16)
    reversed_ = score(run.model, run.tokens, [" ".join(s.split()[::-1]) for s in SENTENCES], sequence_length=16)
    gaps = [a["pll"] - b["pll"] for a, b in zip(real, reversed_)]
    assert np.mean(gaps) > 1.0 and sum(g > 0 for g in gaps) >= 5, gaps


def test_rerun_resumes_from_the_backup_and_extends_to_the_new_step_count(corpus, tmp_path):
    data, vocab = [str(corpus / "corpus.txt")], str(corpus / "vocab.txt")
    first = pretrain(tiny_config(steps=20, checkpoint_every=10), data, vocab, str(tmp_path), verbose=0)
    assert first["step"] == 20 and first["resumed_from_step"] == 0
    again = pretrain(tiny_config(steps=20, checkpoint_every=10), data, vocab, str(tmp_path), verbose=0)
    assert again["step"] == 20 and again["resumed_from_step"] == 20  # finished: nothing retrained
    longer = pretrain(tiny_config(steps=30, checkpoint_every=10), data, vocab, str(tmp_path), verbose=0)
    assert longer["step"] == 30 and longer["resumed_from_step"] == 20 and math.isfinite(longer["loss"])
    assert json.loads((tmp_path / "backup" / "state.json").read_text())["step"] == 30


def test_rerun_with_another_model_is_refused(corpus, tmp_path):
    data, vocab = [str(corpus / "corpus.txt")], str(corpus / "vocab.txt")
    pretrain(tiny_config(steps=2, checkpoint_every=2), data, vocab, str(tmp_path), verbose=0)
    other = build_run_config({"preset": "tiny", "model": {**TINY_MODEL, "hidden_dim": 64}, "data": {"seq_len": tiny_run.SEQ_LEN}, "training": {"steps": 2}})
    with pytest.raises(UserInputError, match="different model config \\(hidden_dim"):
        pretrain(other, data, vocab, str(tmp_path), verbose=0)


def test_weight_decay_skips_layer_norm_and_biases():
    from keras_mlm.models import EncoderConfig, build_masked_lm
    from keras_mlm.training.config import TrainingConfig
    from keras_mlm.training.optimizer import make_optimizer

    model = build_masked_lm(EncoderConfig(vocabulary_size=30, num_layers=1, hidden_dim=16, num_heads=2, intermediate_dim=32))
    optimizer = make_optimizer(TrainingConfig())
    optimizer.build(model.trainable_variables)
    decayed = {v.name for v in model.trainable_variables if optimizer._use_weight_decay(v)}
    kept = {v.name for v in model.trainable_variables if not optimizer._use_weight_decay(v)}
    assert kept and all(name in ("gamma", "beta") or name.endswith("bias") for name in kept)
    assert any(n.endswith("kernel") for n in decayed) and "embeddings" in decayed
