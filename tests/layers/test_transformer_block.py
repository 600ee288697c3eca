"""TransformerBlock: keras-hub's TransformerEncoder math, fused training path equal to plain path."""

import keras
import keras_hub
import numpy as np
import tensorflow as tf

from keras_mlm.layers import TransformerBlock, padding_mask_to_attention_bias

BATCH, SEQ, HIDDEN, HEADS, INTERMEDIATE = 2, 6, 16, 2, 32
PADDING = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]], "int32")


def _block(**kwargs):
    keras.utils.set_random_seed(3)
    block = TransformerBlock(HEADS, INTERMEDIATE, layer_norm_epsilon=1e-12, **kwargs)
    block.build((BATCH, SEQ, HIDDEN))
    rng = np.random.default_rng(4)
    for w in block.weights:  # random biases and norms, so every weight is checked
        if "bias" in w.path or "gamma" in w.path or "beta" in w.path:
            w.assign(rng.normal(size=w.shape) * 0.5 + (1.0 if "gamma" in w.path else 0.0))
    return block


def _inputs():
    return np.random.default_rng(5).normal(size=(BATCH, SEQ, HIDDEN)).astype("float32")


def test_matches_keras_hub_transformer_encoder_with_the_same_weights():
    ours = _block(activation="gelu")
    hub = keras_hub.layers.TransformerEncoder(INTERMEDIATE, HEADS, activation="gelu", layer_norm_epsilon=1e-12)
    hub.build((BATCH, SEQ, HIDDEN))
    head_dim = HIDDEN // HEADS
    mha = hub._self_attention_layer
    q, k, v = np.split(ours.attention.qkv_kernel.numpy(), 3, axis=1)
    qb, kb, vb = np.split(ours.attention.qkv_bias.numpy(), 3)
    for dense, kernel, bias in [(mha.query_dense, q, qb), (mha.key_dense, k, kb), (mha.value_dense, v, vb)]:
        dense.kernel.assign(kernel.reshape(HIDDEN, HEADS, head_dim))
        dense.bias.assign(bias.reshape(HEADS, head_dim))
    mha.output_dense.kernel.assign(ours.attention.output_kernel.numpy().reshape(HEADS, head_dim, HIDDEN))
    mha.output_dense.bias.assign(ours.attention.output_bias.numpy())
    for hub_norm, our_norm in [(hub._self_attention_layer_norm, ours.attention_norm),
                               (hub._feedforward_layer_norm, ours.feed_forward_norm)]:
        hub_norm.gamma.assign(our_norm.gamma.numpy())
        hub_norm.beta.assign(our_norm.beta.numpy())
    ff = ours.feed_forward
    hub._feedforward_intermediate_dense.kernel.assign(ff.intermediate_kernel.numpy())
    hub._feedforward_intermediate_dense.bias.assign(ff.intermediate_bias.numpy())
    hub._feedforward_output_dense.kernel.assign(ff.output_kernel.numpy())
    hub._feedforward_output_dense.bias.assign(ff.output_bias.numpy())

    x = _inputs()
    expected = hub(x, padding_mask=PADDING)
    got = ours(x, attention_bias=padding_mask_to_attention_bias(PADDING, "float32"))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_fused_training_path_equals_plain_path_in_value_and_gradient():
    block = _block(dropout=0.0)  # no dropout: training differs from inference only by the fused kernels
    x = tf.constant(_inputs())
    bias = padding_mask_to_attention_bias(PADDING, "float32")
    target = tf.constant(np.random.default_rng(6).normal(size=(BATCH, SEQ, HIDDEN)), tf.float32)

    @tf.function
    def value_and_grads(training):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = block(x, attention_bias=bias, training=training)
            loss = tf.reduce_sum(y * target)
        return y, tape.gradient(loss, [x] + block.trainable_weights)

    y_train, g_train = value_and_grads(True)
    y_infer, g_infer = value_and_grads(False)
    np.testing.assert_allclose(y_train, y_infer, rtol=1e-5, atol=1e-5)
    for a, b in zip(g_train, g_infer):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_dropout_in_training_only():
    block = _block(dropout=0.3)
    x, bias = _inputs(), padding_mask_to_attention_bias(PADDING, "float32")
    np.testing.assert_array_equal(block(x, attention_bias=bias), block(x, attention_bias=bias))
    assert not np.allclose(block(x, attention_bias=bias, training=True), block(x, attention_bias=bias))


def test_pre_norm_order_by_composition():
    block = _block(normalize_first=True)
    x, bias = _inputs(), padding_mask_to_attention_bias(PADDING, "float32")
    h = x + block.attention(block.attention_norm(x), attention_bias=bias)
    expected = h + block.feed_forward(block.feed_forward_norm(h))
    np.testing.assert_allclose(block(x, attention_bias=bias), expected, rtol=1e-5, atol=1e-5)
