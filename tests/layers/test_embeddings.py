"""Token, position and encoder embeddings."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_mlm.layers import EncoderEmbeddings, PositionEmbedding, TokenEmbedding


def test_token_embedding_lookup_and_tied_projection_by_hand():
    layer = TokenEmbedding(3, 2)
    layer.build()
    layer.embeddings.assign([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    np.testing.assert_array_equal(layer(np.array([[2, 0]])), [[[1.0, 1.0], [1.0, 0.0]]])
    # project: x @ table^T, any leading shape
    np.testing.assert_array_equal(layer.project(tf.constant([[[2.0, 3.0]]])), [[[2.0, 3.0, 5.0]]])


def test_token_embedding_table_stays_float32_under_mixed_precision():
    layer = TokenEmbedding(5, 4, dtype="mixed_bfloat16")
    layer.build()
    assert layer.embeddings.dtype == "float32"
    assert layer(np.array([[1, 2]])).dtype == tf.bfloat16


def test_position_embedding_returns_the_first_rows():
    layer = PositionEmbedding(8, 3)
    layer.build()
    out = layer(tf.zeros((2, 5, 3)))
    assert out.shape == (1, 5, 3)
    np.testing.assert_array_equal(out[0], layer.embeddings.numpy()[:5])
    with pytest.raises(ValueError, match="max_sequence_length"):
        layer(tf.zeros((1, 9, 3)))


def test_encoder_embeddings_is_norm_of_the_sum():
    keras.utils.set_random_seed(0)
    layer = EncoderEmbeddings(10, 4, max_sequence_length=6, num_segments=2, layer_norm_epsilon=1e-6)
    ids, segments = np.array([[2, 5, 7]]), np.array([[0, 0, 1]])
    out = layer(ids, segments)
    total = (
        layer.token_embedding.embeddings.numpy()[ids[0]]
        + layer.position_embedding.embeddings.numpy()[:3]
        + layer.segment_embedding.embeddings.numpy()[segments[0]]
    )
    expected = (total - total.mean(-1, keepdims=True)) / np.sqrt(total.var(-1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(out[0], expected, rtol=1e-5, atol=1e-5)


def test_encoder_embeddings_dropout_only_in_training():
    keras.utils.set_random_seed(0)
    layer = EncoderEmbeddings(10, 64, dropout=0.5)
    ids, segments = np.array([[2, 5, 7]]), np.zeros((1, 3), "int32")
    np.testing.assert_array_equal(layer(ids, segments), layer(ids, segments))
    dropped = np.mean(layer(ids, segments, training=True).numpy() == 0.0)
    assert 0.35 < dropped < 0.65  # 192 draws at rate 0.5
