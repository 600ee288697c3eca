"""MaskedAccuracy and Perplexity against hand computation, alone and inside compile/evaluate."""

import json
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from keras_mlm.losses import MaskedLMLoss
from keras_mlm.metrics import MaskedAccuracy, Perplexity
from keras_mlm.models import EncoderConfig, build_masked_lm

sys.path.insert(0, str(Path(__file__).resolve().parent))  # masked_slots.py beside this file (importlib mode)
from masked_slots import LABELS, LOGITS, WEIGHTS  # noqa: E402


def test_masked_accuracy_by_hand_across_batches():
    metric = MaskedAccuracy()
    # batch 1: argmax [0, 1, 0 | 1, 2, 0] vs labels [1, 1, 2 | 0, 0, 0]: only slot (0, 1) right, weight 0.5
    metric.update_state(LABELS, LOGITS, sample_weight=WEIGHTS)
    np.testing.assert_allclose(float(metric.result()), 0.5 / 1.5)
    # batch 2: two slots, one right, weights 1 and 3 (the wrong one heavier)
    metric.update_state(np.array([[2, 0]]), np.array([[[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]]), sample_weight=np.array([[1.0, 3.0]]))
    np.testing.assert_allclose(float(metric.result()), (0.5 + 1.0) / (1.5 + 4.0))
    metric.reset_state()
    assert float(metric.result()) == 0.0


def test_perplexity_by_hand():
    metric = Perplexity()
    metric.update_state(LABELS, LOGITS, sample_weight=WEIGHTS)
    np.testing.assert_allclose(float(metric.result()), np.exp((np.log(3.0) + 0.5 * np.log(2.0)) / 1.5), rtol=1e-6)
    metric.update_state(np.array([[1]]), np.array([[[0.0, 0.0]]]), sample_weight=np.array([[2.0]]))  # ce ln 2, w 2
    expected = np.exp((np.log(3.0) + 0.5 * np.log(2.0) + 2.0 * np.log(2.0)) / 3.5)
    np.testing.assert_allclose(float(metric.result()), expected, rtol=1e-6)


def test_metrics_serializable():
    for metric in (MaskedAccuracy(name="acc"), Perplexity(name="ppl")):
        clone = keras.metrics.deserialize(json.loads(json.dumps(keras.metrics.serialize(metric))))
        assert type(clone) is type(metric) and clone.name == metric.name


def test_compiled_as_weighted_metrics_they_use_the_mask_weights():
    keras.utils.set_random_seed(0)
    model = build_masked_lm(EncoderConfig(vocabulary_size=20, num_layers=1, hidden_dim=16, num_heads=2,
                                          intermediate_dim=32, max_sequence_length=8, dropout=0.0))
    model.compile(optimizer="sgd", loss=MaskedLMLoss(), weighted_metrics=[MaskedAccuracy(), Perplexity()])
    rng = np.random.default_rng(1)
    x = {
        "token_ids": rng.integers(5, 20, (4, 8)).astype("int32"),
        "segment_ids": np.zeros((4, 8), "int32"),
        "padding_mask": np.ones((4, 8), "int32"),
        "mask_positions": np.tile(np.array([1, 3, 5], "int32"), (4, 1)),
    }
    labels = rng.integers(5, 20, (4, 3)).astype("int32")
    weights = np.array([[1, 1, 0], [1, 0, 0], [1, 1, 1], [0, 0, 0]], "float32")
    logits = model.predict(x, verbose=0)
    labels[0, 0] = logits[0, 0].argmax()  # at least one hit
    result = model.evaluate(tf.data.Dataset.from_tensors((x, labels, weights)), verbose=0, return_dict=True)

    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits).numpy()
    hits = (logits.argmax(-1) == labels).astype("float32")
    np.testing.assert_allclose(result["masked_accuracy"], (hits * weights).sum() / weights.sum(), rtol=1e-6)
    np.testing.assert_allclose(result["perplexity"], np.exp((ce * weights).sum() / weights.sum()), rtol=1e-5)
    np.testing.assert_allclose(result["loss"], (ce * weights).sum() / weights.sum(), rtol=1e-5)
