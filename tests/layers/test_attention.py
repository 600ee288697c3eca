"""MultiHeadSelfAttention: the same math as keras.layers.MultiHeadAttention, padded keys ignored."""

import keras
import numpy as np
import tensorflow as tf

from keras_mlm.layers import MultiHeadSelfAttention, padding_mask_to_attention_bias

BATCH, SEQ, HIDDEN, HEADS = 2, 5, 8, 2
PADDING = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], "int32")


def _inputs(seed=0):
    return np.random.default_rng(seed).normal(size=(BATCH, SEQ, HIDDEN)).astype("float32")


def _attention(dropout=0.0):
    keras.utils.set_random_seed(1)
    layer = MultiHeadSelfAttention(HEADS, dropout=dropout, kernel_initializer="glorot_uniform")
    layer.build((BATCH, SEQ, HIDDEN))
    rng = np.random.default_rng(2)  # non-zero biases so they are checked too
    layer.qkv_bias.assign(rng.normal(size=layer.qkv_bias.shape))
    layer.output_bias.assign(rng.normal(size=layer.output_bias.shape))
    return layer


def test_attention_bias_by_hand():
    bias = padding_mask_to_attention_bias(tf.constant([[1, 1, 0]]), "float32")
    assert bias.shape == (1, 1, 1, 3)
    np.testing.assert_array_equal(bias[0, 0, 0], [0.0, 0.0, -1e9])
    np.testing.assert_array_equal(padding_mask_to_attention_bias(tf.constant([[True, False]]), "float32")[0, 0, 0], [0, -1e9])


def test_matches_keras_multi_head_attention_with_the_same_weights():
    ours = _attention()
    head_dim = HIDDEN // HEADS
    reference = keras.layers.MultiHeadAttention(HEADS, key_dim=head_dim)
    reference.build((BATCH, SEQ, HIDDEN), (BATCH, SEQ, HIDDEN))
    q, k, v = np.split(ours.qkv_kernel.numpy(), 3, axis=1)
    qb, kb, vb = np.split(ours.qkv_bias.numpy(), 3)
    for dense, kernel, bias in [(reference.query_dense, q, qb), (reference.key_dense, k, kb), (reference.value_dense, v, vb)]:
        dense.kernel.assign(kernel.reshape(HIDDEN, HEADS, head_dim))
        dense.bias.assign(bias.reshape(HEADS, head_dim))
    reference.output_dense.kernel.assign(ours.output_kernel.numpy().reshape(HEADS, head_dim, HIDDEN))
    reference.output_dense.bias.assign(ours.output_bias.numpy())

    x = _inputs()
    mask = np.repeat(PADDING[:, None, :], SEQ, axis=1).astype(bool)  # (batch, query, key)
    expected = reference(x, x, attention_mask=mask)
    got = ours(x, attention_bias=padding_mask_to_attention_bias(PADDING, "float32"))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_padded_keys_do_not_reach_real_positions():
    layer = _attention()
    bias = padding_mask_to_attention_bias(PADDING, "float32")
    x = _inputs()
    changed = x.copy()
    changed[1, 3:] = 100.0  # overwrite the padded positions of row 1
    a, b = layer(x, attention_bias=bias), layer(changed, attention_bias=bias)
    np.testing.assert_array_equal(a[:, :3], b[:, :3])
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.allclose(a[1, 3:], b[1, 3:])  # the change did reach the padded rows themselves


def test_training_without_dropout_equals_inference():
    layer = _attention(dropout=0.0)
    x, bias = _inputs(), padding_mask_to_attention_bias(PADDING, "float32")
    np.testing.assert_allclose(layer(x, attention_bias=bias, training=True), layer(x, attention_bias=bias), atol=1e-6)


def test_dropout_is_random_in_training_only():
    layer = _attention(dropout=0.5)
    x, bias = _inputs(), padding_mask_to_attention_bias(PADDING, "float32")
    np.testing.assert_array_equal(layer(x, attention_bias=bias), layer(x, attention_bias=bias))
    assert not np.allclose(layer(x, attention_bias=bias, training=True), layer(x, attention_bias=bias, training=True))
