"""Rotary position embeddings: hand-computed rotations, keras-hub's values, relative positions only."""

import json

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from keras_mlm.layers import RotarySelfAttention, apply_rotary
from keras_mlm.layers.rotary import rotary_angles


def test_two_dimensional_vector_is_rotated_by_its_position():
    # head_dim 2: one pair, angle = position * max_wavelength ** 0 = position (radians).
    a, b = 0.6, -1.3
    x = np.tile(np.array([a, b], "float32"), (1, 1, 5, 1))  # (batch, heads, seq=5, 2)
    y = apply_rotary(tf.constant(x), max_wavelength=10000.0).numpy()[0, 0]
    p = np.arange(5)
    expected = np.stack([a * np.cos(p) - b * np.sin(p), b * np.cos(p) + a * np.sin(p)], axis=-1)
    np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-6)


def test_four_dimensional_pairs_and_frequencies_by_hand():
    # head_dim 4: pairs (x0, x2) at angle p * 1 and (x1, x3) at angle p * 100 ** (-1/2) = p / 10.
    x = np.array([1.0, 2.0, 3.0, 4.0], "float32")
    y = apply_rotary(tf.constant(np.tile(x, (1, 1, 4, 1))), max_wavelength=100.0).numpy()[0, 0, 3]  # position 3
    t0, t1 = 3.0, 0.3
    expected = [
        1 * np.cos(t0) - 3 * np.sin(t0),
        2 * np.cos(t1) - 4 * np.sin(t1),
        3 * np.cos(t0) + 1 * np.sin(t0),
        4 * np.cos(t1) + 2 * np.sin(t1),
    ]
    np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(rotary_angles(4, 4, 100.0)[3], [t0, t1, t0, t1], rtol=1e-6)


def test_equals_keras_hub_rotary_embedding():
    x = np.random.default_rng(0).normal(size=(2, 3, 7, 8)).astype("float32")  # (batch, heads, seq, head_dim)
    hub = keras_hub.layers.RotaryEmbedding(max_wavelength=10000, sequence_axis=2, feature_axis=3)
    np.testing.assert_allclose(apply_rotary(tf.constant(x), 10000.0), hub(x), rtol=1e-5, atol=1e-5)


def test_scores_depend_only_on_the_relative_position():
    rng = np.random.default_rng(1)
    q, k = rng.normal(size=(2, 8)).astype("float32")
    seq = 6
    rq = apply_rotary(tf.constant(np.tile(q, (1, 1, seq, 1))), 10000.0).numpy()[0, 0]  # (seq, 8)
    rk = apply_rotary(tf.constant(np.tile(k, (1, 1, seq, 1))), 10000.0).numpy()[0, 0]
    scores = rq @ rk.T  # (seq, seq): scores[i, j] a function of i - j alone
    for offset in range(-seq + 1, seq):
        diagonal = np.diagonal(scores, offset)
        np.testing.assert_allclose(diagonal, np.full_like(diagonal, diagonal[0]), rtol=1e-4, atol=1e-5)
    assert np.ptp([np.diagonal(scores, o)[0] for o in range(seq)]) > 1e-2  # ... and does depend on it


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_fused_training_path_equals_plain_path_in_value_and_gradient(dtype):
    x = tf.constant(np.random.default_rng(2).normal(size=(2, 2, 9, 8)), dtype)
    upstream = tf.constant(np.random.default_rng(3).normal(size=(2, 2, 9, 8)), dtype)

    def value_and_gradient(training):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = apply_rotary(x, 500.0, training=training)
        return y, tape.gradient(y, x, output_gradients=upstream)

    (y_fused, g_fused), (y_plain, g_plain) = value_and_gradient(True), value_and_gradient(False)
    tolerance = 1e-6 if dtype == "float32" else 1e-2
    np.testing.assert_allclose(tf.cast(y_fused, "float32"), tf.cast(y_plain, "float32"), atol=tolerance)
    np.testing.assert_allclose(tf.cast(g_fused, "float32"), tf.cast(g_plain, "float32"), atol=tolerance)


def test_rotary_attention_is_the_base_attention_on_rotated_query_and_key():
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(4).normal(size=(2, 5, 8)).astype("float32")
    rotary = RotarySelfAttention(2, max_wavelength=50.0, use_bias=False)
    rotary.build(x.shape)
    q, k, v = np.split(rotary.qkv_kernel.numpy(), 3, axis=1)

    def heads(t):  # (batch, seq, 8) -> (batch, 2, seq, 4)
        return t.reshape(2, 5, 2, 4).transpose(0, 2, 1, 3)

    query = apply_rotary(tf.constant(heads(x @ q)), 50.0).numpy() / 2.0  # scaled by head_dim ** -0.5
    key = apply_rotary(tf.constant(heads(x @ k)), 50.0).numpy()
    scores = query @ key.transpose(0, 1, 3, 2)
    probabilities = np.exp(scores - scores.max(-1, keepdims=True))
    probabilities /= probabilities.sum(-1, keepdims=True)
    context = (probabilities @ heads(x @ v)).transpose(0, 2, 1, 3).reshape(2, 5, 8)
    np.testing.assert_allclose(rotary(x), context @ rotary.output_kernel.numpy(), rtol=1e-4, atol=1e-5)


def test_odd_head_size_is_rejected():
    with pytest.raises(ValueError, match="even head size"):
        RotarySelfAttention(2).build((1, 4, 6))  # head_dim 3


def test_json_config_round_trip_gives_identical_outputs():
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(5).normal(size=(2, 5, 8)).astype("float32")
    layer = RotarySelfAttention(2, max_wavelength=160000.0, use_bias=False, dropout=0.1, seed=3)
    expected = layer(x)
    config = json.loads(json.dumps(keras.layers.serialize(layer)))
    assert config["registered_name"] == "keras_mlm>RotarySelfAttention"
    clone = keras.layers.deserialize(config)
    assert clone.get_config() == layer.get_config()
    clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(clone(x), expected)
