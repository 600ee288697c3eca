"""MaskedLMLoss: weighted cross-entropy over mask slots divided by the total weight."""

import json

import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from keras_mlm.losses import MaskedLMLoss, masked_cross_entropy

sys.path.insert(0, str(Path(__file__).resolve().parent))  # masked_slots.py beside this file (importlib mode)
from masked_slots import LABELS, LOGITS, WEIGHTS  # noqa: E402


def test_by_hand_with_padded_slots():
    expected = (np.log(3.0) * 1.0 + np.log(2.0) * 0.5) / 1.5  # = 0.963457
    loss = MaskedLMLoss()(LABELS, LOGITS, sample_weight=WEIGHTS)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-6)
    np.testing.assert_allclose(float(loss), 0.963457, rtol=1e-6)


def test_without_weights_is_the_mean_over_slots():
    ce = masked_cross_entropy(LABELS, LOGITS).numpy()
    np.testing.assert_allclose(float(MaskedLMLoss()(LABELS, LOGITS)), ce.mean(), rtol=1e-6)


def test_zero_total_weight_gives_zero_not_nan():
    logits = tf.Variable(LOGITS)
    with tf.GradientTape() as tape:
        loss = MaskedLMLoss()(LABELS, logits, sample_weight=np.zeros_like(WEIGHTS))
    assert float(loss) == 0.0
    assert np.all(np.isfinite(tape.gradient(loss, logits)))


def test_cross_entropy_matches_tensorflow_in_value_and_gradient_including_extremes():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 5, 50)).astype("float32") * 4
    logits[0, 0] = -300.0
    logits[0, 0, 7] = 300.0  # a confident wrong prediction: ce ~ 600, no under/overflow
    labels = rng.integers(0, 50, (4, 5)).astype("int32")
    labels[0, 0] = 3
    upstream = rng.random((4, 5)).astype("float32")
    logits = tf.constant(logits)

    def value_and_grad(fn):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            ce = fn(labels, logits)
            total = tf.reduce_sum(ce * upstream)
        return ce, tape.gradient(total, logits)

    ours, our_grad = value_and_grad(masked_cross_entropy)
    ref, ref_grad = value_and_grad(lambda y, x: tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=x))
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(float(ours[0, 0]), 600.0, rtol=1e-6)
    np.testing.assert_allclose(our_grad, ref_grad, atol=1e-6)


def test_serializable():
    loss = MaskedLMLoss(name="mlm")
    clone = keras.losses.deserialize(json.loads(json.dumps(keras.losses.serialize(loss))))
    assert type(clone) is MaskedLMLoss and clone.name == "mlm"
    np.testing.assert_allclose(float(clone(LABELS, LOGITS, WEIGHTS)), float(loss(LABELS, LOGITS, WEIGHTS)))
