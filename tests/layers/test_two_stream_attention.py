"""Two-stream relative attention: keras-hub's math, relative positions read exactly, hidden keys invisible."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_mlm.layers.relative_position import (
    gather_relative,
    relative_indices,
    relative_position_encoding,
    relative_shift,
)
from keras_mlm.layers.two_stream_attention import (
    TwoStreamRelativeAttention,
    TwoStreamTransformer,
    TwoStreamTransformerBlock,
    visibility_to_bias,
)

B, L, HIDDEN, HEADS, N = 2, 6, 8, 2, 3
RNG = np.random.default_rng(0)


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    content = rng.normal(size=(B, L, HIDDEN)).astype("float32")
    segments = np.array([[0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 1, 1]], "int32")
    different = (segments[:, :, None] != segments[:, None, :])[:, None].astype("float32")  # (B, 1, L, L)
    return content, segments, different


def _attention(seed=3):
    keras.utils.set_random_seed(seed)
    layer = TwoStreamRelativeAttention(HEADS, kernel_initializer=keras.initializers.RandomNormal(stddev=0.5))
    layer.build((None, None, HIDDEN))
    for weight in (layer.content_bias, layer.position_bias, layer.segment_bias):  # non-zero, to be checked too
        weight.assign(np.random.default_rng(seed).normal(size=weight.shape).astype("float32"))
    return layer


def test_relative_indices_read_the_distance_row():
    # Row k of the table encodes the distance L - k; query i and key j need the row of i - j.
    indices = relative_indices(np.array([[0, 2]]), 3).numpy()
    np.testing.assert_array_equal(indices, [[[3, 4, 5], [1, 2, 3]]])  # i=0: distances 0, -1, -2; i=2: 2, 1, 0


def test_relative_shift_is_the_gather_at_every_position():
    by_distance = tf.constant(RNG.normal(size=(B, HEADS, L, 2 * L)).astype("float32"))
    everywhere = tf.range(L)[None]
    np.testing.assert_array_equal(relative_shift(by_distance), gather_relative(by_distance, everywhere))
    # And the gather reads exactly by_distance[..., L - (i - j)].
    expected = np.empty((B, HEADS, L, L), np.float32)
    for i in range(L):
        for j in range(L):
            expected[:, :, i, j] = by_distance.numpy()[:, :, i, L - (i - j)]
    np.testing.assert_array_equal(gather_relative(by_distance, everywhere), expected)


def test_sinusoid_matches_keras_hub_in_float32_and_is_float32_under_bfloat16():
    from keras_hub.src.models.xlnet.xlnet_content_and_query_embedding import ContentAndQueryEmbedding

    hub = ContentAndQueryEmbedding(vocabulary_size=10, hidden_dim=HIDDEN, dropout=0.0, dtype="float32")
    expected = hub.relative_positional_encoding(L, L, bsz=1).numpy()[:, 0]  # (2L, hidden)
    np.testing.assert_allclose(relative_position_encoding(L, HIDDEN), expected, rtol=1e-6, atol=1e-6)
    # Distances up to 512 stay exact: row k is distance L - k, whatever the compute dtype.
    table = relative_position_encoding(512, 4).numpy()
    np.testing.assert_allclose(table[:, 0], np.sin(512.0 - np.arange(1024)), atol=2e-4)


def test_attention_matches_keras_hubs_two_stream_relative_attention():
    from keras_hub.src.models.xlnet.relative_attention import TwoStreamRelativeAttention as HubAttention

    layer = _attention()
    hub = HubAttention(num_heads=HEADS, key_dim=HIDDEN // HEADS)
    hub.build((None, None, HIDDEN))
    shaped = lambda w: w.numpy().reshape(HIDDEN, HEADS, HIDDEN // HEADS)  # noqa: E731
    query, key_value = layer.query_kernel.numpy(), layer.key_value_kernel.numpy()
    hub._query_dense.kernel.assign(query.reshape(HIDDEN, HEADS, -1))
    hub._key_dense.kernel.assign(key_value[:, :HIDDEN].reshape(HIDDEN, HEADS, -1))
    hub._value_dense.kernel.assign(key_value[:, HIDDEN:].reshape(HIDDEN, HEADS, -1))
    hub._encoding_dense.kernel.assign(shaped(layer.position_kernel))
    hub._output_dense.kernel.assign(layer.output_kernel.numpy().T.reshape(HIDDEN, HEADS, -1))

    content, segments, different = _inputs()
    query_stream = np.random.default_rng(1).normal(size=(B, L, HIDDEN)).astype("float32")
    content_visible = np.random.default_rng(2).random((B, L, L)) < 0.6
    query_visible = np.random.default_rng(3).random((B, L, L)) < 0.6
    content_visible[:, np.arange(L), np.arange(L)] = True
    query_visible[:, np.arange(L), (np.arange(L) + 1) % L] = True  # every query row sees a key
    positions = relative_position_encoding(L, HIDDEN)
    ours_content, ours_query = layer(
        content, positions, visibility_to_bias(content_visible, "float32"), different,
        query=query_stream, query_positions=np.tile(np.arange(L), (B, 1)),
        query_attention_bias=visibility_to_bias(query_visible, "float32"), query_different_segment=different,
    )
    theirs_content, theirs_query = hub(
        content_stream=content, query_stream=query_stream,
        content_attention_bias=layer.content_bias, positional_attention_bias=layer.position_bias,
        segment_attention_bias=layer.segment_bias, segment_encoding=layer.segment_embedding,
        relative_position_encoding=tf.tile(positions[None], (B, 1, 1)), segment_matrix=different[:, 0] > 0,
        content_attention_mask=content_visible.astype("float32"), query_attention_mask=query_visible.astype("float32"),
    )
    assert np.abs(ours_content).mean() > 0.1 and np.abs(ours_query).mean() > 0.1  # not trivially equal
    np.testing.assert_allclose(ours_content, theirs_content, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours_query, theirs_query, rtol=1e-5, atol=1e-5)


def test_query_stream_at_targets_equals_those_rows_of_a_full_length_query_stream():
    layer = _attention()
    content, _, different = _inputs()
    positions = relative_position_encoding(L, HIDDEN)
    bias = visibility_to_bias(np.ones((B, 1, L), bool), "float32")
    full_query = np.random.default_rng(4).normal(size=(B, L, HIDDEN)).astype("float32")
    full_visible = np.random.default_rng(5).random((B, L, L)) < 0.5
    full_visible[:, np.arange(L), 0] = True
    targets = np.array([[4, 1, 5], [2, 3, 0]], "int32")
    rows = np.arange(B)[:, None]
    _, full = layer(content, positions, bias, different, query=full_query, query_positions=np.tile(np.arange(L), (B, 1)),
                    query_attention_bias=visibility_to_bias(full_visible, "float32"), query_different_segment=different)
    _, at_targets = layer(
        content, positions, bias, different, query=full_query[rows, targets], query_positions=targets,
        query_attention_bias=visibility_to_bias(full_visible[rows, targets], "float32"),
        query_different_segment=different[:, :, targets][np.arange(B), :, np.arange(B)],
    )
    np.testing.assert_allclose(at_targets, full.numpy()[rows, targets], rtol=1e-5, atol=1e-6)


def test_hidden_keys_change_nothing_and_a_query_seeing_nothing_outputs_zero():
    layer = _attention()
    content, _, different = _inputs()
    positions = relative_position_encoding(L, HIDDEN)
    content_visible = np.tril(np.ones((L, L), bool))[None].repeat(B, 0)  # causal: position i sees j <= i
    query_visible = np.zeros((B, N, L), bool)
    query_visible[:, 0, :2] = True  # slot 0 sees positions 0 and 1; slot 1 sees 0 only; slot 2 nothing
    query_visible[:, 1, 0] = True

    def run(content):
        return layer(content, positions, visibility_to_bias(content_visible, "float32"), different,
                     query=np.ones((B, N, HIDDEN), "float32"), query_positions=np.array([[2, 3, 5]] * B),
                     query_attention_bias=visibility_to_bias(query_visible, "float32"),
                     query_different_segment=different[:, :, :N])

    content_out, query_out = run(content)
    changed = content.copy()
    changed[:, -1] += 5.0  # the last position: hidden from every other content row and from every query
    content_changed, query_changed = run(changed)
    np.testing.assert_array_equal(content_changed[:, :-1], content_out[:, :-1])  # exactly
    np.testing.assert_array_equal(query_changed, query_out)
    assert np.abs(content_changed[:, -1] - content_out[:, -1]).max() > 1e-3  # it sees itself
    np.testing.assert_array_equal(query_out[:, 2], 0.0)  # slot 2 sees no key


def _stack(dtype=None):
    keras.utils.set_random_seed(0)
    stack = TwoStreamTransformer(2, HEADS, 16, kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.2),
                                 max_sequence_length=L, dtype=dtype)
    stack.build((None, None, HIDDEN))
    return stack


def test_stack_runs_both_streams_and_mixed_bfloat16_stays_finite():
    content, segments, _ = _inputs()
    padding = np.array([[1] * L, [1] * (L - 2) + [0, 0]], "int32")
    stack = _stack("mixed_bfloat16")
    out = stack(content, segments, padding)
    assert out.dtype == tf.bfloat16 and out.shape == (B, L, HIDDEN)
    content_out, query_out = stack(content, segments, padding, content_visible=np.ones((B, L, L), bool),
                                   query=np.ones((B, N, HIDDEN), "float32"), query_positions=np.array([[1, 2, 0]] * B),
                                   query_visible=np.ones((B, N, L), bool))
    assert query_out.shape == (B, N, HIDDEN) and np.isfinite(tf.cast(query_out, "float32").numpy()).all()
    with pytest.raises(ValueError, match="max_sequence_length"):
        _stack()(np.zeros((1, L + 1, HIDDEN), "float32"), np.zeros((1, L + 1), "int32"), np.ones((1, L + 1), "int32"))


@pytest.mark.parametrize("layer", [
    TwoStreamRelativeAttention(2, dropout=0.1, seed=4),
    TwoStreamTransformerBlock(2, 16, dropout=0.1, activation="gelu_approximate", seed=1),
    TwoStreamTransformer(3, 2, 16, dropout=0.1, max_sequence_length=64, seed=2),
])
def test_config_round_trips_through_json(layer):
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(layer)))
    clone = keras.saving.deserialize_keras_object(config)
    assert type(clone) is type(layer) and clone.get_config() == layer.get_config()


def test_stack_weights_round_trip_through_keras_file(tmp_path):
    stack = _stack()
    content, segments, _ = _inputs()
    padding = np.ones((B, L), "int32")
    inputs = [keras.Input((L, HIDDEN)), keras.Input((L,), dtype="int32"), keras.Input((L,), dtype="int32")]
    model = keras.Model(inputs, stack(*inputs))
    model.save(tmp_path / "stack.keras")
    loaded = keras.saving.load_model(tmp_path / "stack.keras")
    np.testing.assert_array_equal(loaded([content, segments, padding]), model([content, segments, padding]))
