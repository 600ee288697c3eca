"""The elementwise kernels: hand-checked values, and the XLA-fused call equal to the plain call."""

import numpy as np
import pytest
import tensorflow as tf

from keras_mlm.layers import fused as F


def test_apply_dropout_scales_kept_and_zeroes_dropped():
    x = tf.constant([1.0, 2.0, 3.0, 4.0])
    keep = tf.constant([True, False, True, False])
    np.testing.assert_allclose(F.apply_dropout(x, keep, rate=0.5), [2.0, 0.0, 6.0, 0.0])
    np.testing.assert_allclose(F.apply_dropout(x, None, rate=0.5), x)


def test_layer_norm_by_hand():
    # mean 2, variance 2/3 -> (x - 2) / sqrt(2/3) = [-1.2247, 0, 1.2247]; then * gamma + beta.
    y = F.layer_norm(tf.constant([[1.0, 2.0, 3.0]]), tf.constant([1.0, 2.0, 1.0]), tf.constant([0.0, 0.0, 1.0]), 1e-12)
    np.testing.assert_allclose(y, [[-1.2247449, 0.0, 2.2247449]], rtol=1e-6)


def test_layer_norm_keeps_bfloat16_and_computes_in_float32():
    x = tf.constant([[10.0, 11.0, 12.0]], tf.bfloat16)  # exact in bfloat16
    y = F.layer_norm(x, tf.ones(3), tf.zeros(3), 1e-12)
    assert y.dtype == tf.bfloat16
    np.testing.assert_allclose(tf.cast(y, tf.float32), [[-1.2247449, 0.0, 1.2247449]], atol=1e-2)


def test_attention_probabilities_by_hand():
    scores = tf.constant([[[[0.0, 1.0, 2.0]]]])  # (1, 1, 1, 3)
    bias = tf.constant([[[[0.0, 0.0, -1e9]]]])
    p = F.attention_probabilities(scores, bias, rate=0.0)  # softmax([0, 1, -inf])
    np.testing.assert_allclose(p[0, 0, 0], [1 / (1 + np.e), np.e / (1 + np.e), 0.0], rtol=1e-6)


def test_dropout_keep_mask_rate_is_statistically_right():
    import keras

    keep = F.dropout_keep_mask((200, 500), 0.25, keras.random.SeedGenerator(7))
    fraction = float(tf.reduce_mean(tf.cast(keep, tf.float32)))
    assert abs(fraction - 0.75) < 0.005  # 100k Bernoulli draws: std 0.0014


def _kernel_cases():
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(2, 5, 8)), tf.float32)
    residual = tf.constant(rng.normal(size=(2, 5, 8)), tf.float32)
    gamma = tf.constant(rng.normal(size=(8,)), tf.float32)
    beta = tf.constant(rng.normal(size=(8,)), tf.float32)
    keep = tf.constant(rng.random((2, 5, 8)) > 0.3)
    positions = tf.constant(rng.normal(size=(1, 5, 8)), tf.float32)
    return [
        ("add_norm", F.add_norm, (x, residual, gamma, beta, keep), {"rate": 0.3, "epsilon": 1e-12}),
        ("add_norm_no_dropout", F.add_norm, (x, residual, gamma, beta, None), {"rate": 0.0, "epsilon": 1e-6}),
        ("embeddings_norm", F.embeddings_norm, (x, positions, residual, gamma, beta, keep), {"rate": 0.3, "epsilon": 1e-12}),
        ("gelu", F.activation, (x,), {"name": "gelu"}),
        ("gelu_approximate", F.activation, (x,), {"name": "gelu_approximate"}),
        ("relu", F.activation, (x,), {"name": "relu"}),
        ("layer_norm_without_beta", F.layer_norm, (x, gamma, None), {"epsilon": 1e-5}),
        ("embeddings_norm_no_positions", F.embeddings_norm, (x, tf.zeros(()), residual, gamma, None, keep),
         {"rate": 0.3, "epsilon": 1e-5}),
        ("gated_gelu", F.gated_activation, (x,), {"name": "gelu"}),
    ]


@pytest.mark.parametrize("name,kernel,args,constants", _kernel_cases(), ids=lambda v: v if isinstance(v, str) else "")
def test_fused_equals_plain_in_value_and_gradient(name, kernel, args, constants):
    rng = np.random.default_rng(1)

    @tf.function
    def value_and_grads(fn, *tensors):
        floats = [t for t in tensors if t is not None and t.dtype.is_floating]
        with tf.GradientTape() as tape:
            tape.watch(floats)
            y = fn(*tensors, **constants)
            loss = tf.reduce_sum(y * tf.constant(rng.normal(size=y.shape), tf.float32))
        return y, tape.gradient(loss, floats)

    y_plain, g_plain = value_and_grads(kernel, *args)
    y_fused, g_fused = value_and_grads(F.fused(kernel), *args)
    np.testing.assert_allclose(y_fused, y_plain, rtol=1e-5, atol=1e-5)
    assert len(g_fused) == len(g_plain)
    for a, b in zip(g_fused, g_plain):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_fused_is_memoised_per_kernel():
    assert F.fused(F.add_norm) is F.fused(F.add_norm)


def test_fused_with_unknown_batch_dimension():
    """Keras traces with (None, ...) shapes when a dataset's last batch may be short."""
    rng = np.random.default_rng(2)
    x, residual = (tf.constant(rng.normal(size=(3, 4, 8)), tf.float32) for _ in range(2))
    gamma, beta = tf.constant(rng.normal(size=(8,)), tf.float32), tf.zeros(8)
    spec = tf.TensorSpec((None, 4, 8), tf.float32)

    def grads(fn):
        @tf.function(input_signature=[spec, spec])
        def run(x, residual):
            with tf.GradientTape() as tape:
                tape.watch([x, residual, gamma])
                loss = tf.reduce_sum(fn(x, residual, gamma, beta, None, rate=0.0, epsilon=1e-12) ** 2 * x)
            return tape.gradient(loss, [x, residual, gamma])

        return run(x, residual)

    for a, b in zip(grads(F.fused(F.add_norm)), grads(F.add_norm)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
