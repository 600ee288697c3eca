"""MaskedLMHead: gathers the masked rows first, then dense + GELU + LayerNorm + tied projection + bias."""

import keras
import numpy as np
import tensorflow as tf

from keras_mlm.layers import MaskedLMHead, TokenEmbedding, gather_positions


def test_gather_positions_by_hand():
    sequence = tf.reshape(tf.range(2 * 4 * 1, dtype=tf.float32), (2, 4, 1))  # row b, position s -> 4b + s
    got = gather_positions(sequence, tf.constant([[3, 0], [1, 1]]))
    np.testing.assert_array_equal(got[..., 0], [[3.0, 0.0], [5.0, 5.0]])


def _head(vocabulary_size=7, hidden=4, dtype=None):
    keras.utils.set_random_seed(0)
    embedding = TokenEmbedding(vocabulary_size, hidden, "glorot_uniform", dtype=dtype)
    embedding.build()
    head = MaskedLMHead(embedding, activation="gelu", layer_norm_epsilon=1e-6, dtype=dtype)
    head.build((None, None, hidden), (None, None))
    head.output_bias.assign(np.arange(vocabulary_size, dtype="float32") / 10)
    head.transform_bias.assign(np.full((hidden,), 0.1, "float32"))
    return embedding, head


def test_logits_by_hand_only_at_mask_positions():
    embedding, head = _head()
    sequence = np.random.default_rng(0).normal(size=(2, 5, 4)).astype("float32")
    positions = np.array([[4, 1, 1], [0, 2, 3]], "int32")
    logits = head(sequence, positions)
    assert logits.shape == (2, 3, 7) and logits.dtype == tf.float32

    rows = np.stack([sequence[b, positions[b]] for b in range(2)])  # (2, 3, 4)
    h = rows @ head.transform_kernel.numpy() + 0.1
    h = keras.activations.gelu(h, approximate=False).numpy()
    h = (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + 1e-6)
    expected = h @ embedding.embeddings.numpy().T + np.arange(7) / 10
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)


def test_head_owns_no_copy_of_the_vocabulary_projection():
    embedding, head = _head(vocabulary_size=50, hidden=4)
    own = [w for w in head.weights if w is not embedding.embeddings]
    # transform kernel + bias, LayerNorm gamma + beta, output bias: no (hidden, vocab) kernel
    assert sorted(tuple(w.shape) for w in own) == [(4,), (4,), (4,), (4, 4), (50,)]


def test_logits_are_float32_under_mixed_bfloat16():
    _, head = _head(dtype="mixed_bfloat16")
    logits = head(np.ones((1, 3, 4), "float32"), np.array([[0, 2]], "int32"), training=True)
    assert logits.dtype == tf.float32
