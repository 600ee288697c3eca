"""Relative positions of Transformer-XL and XLNet: a sinusoid per distance, and its scores read per (query, key).

Attention between a query at position i and a key at position j gets a term that depends only on the
distance i - j: (q_i + b) . W_r R[i - j], with R the sinusoid table below. Computing it for every
distance at once costs one (queries, 2L) matmul per head; `gather_relative` then reads, for every
query and key, the column of their distance. The query positions are an input, so it serves XLNet's
query stream, computed only at the prediction targets (queries at `mask_positions`); for the content
stream (queries at 0 .. L-1) `relative_shift` reads the same columns without a gather.
"""

import tensorflow as tf


def relative_position_encoding(sequence_length, hidden_dim):
    """(2 * sequence_length, hidden_dim) float32: row k encodes the distance L - k (L, L-1, ..., -L+1).

    [sin(d * f) | cos(d * f)] with f = 10000^(-2i / hidden_dim), as Transformer-XL and XLNet (and
    keras-hub's ContentAndQueryEmbedding, whose row order this is). Built in float32 whatever the
    compute dtype: in bfloat16 the distances above 256 are not even representable (8-bit mantissa),
    which is what keras-hub's version, computed in the compute dtype, gives under mixed_bfloat16.
    """
    if hidden_dim % 2:
        raise ValueError(f"hidden_dim must be even for the sinusoid encoding, got {hidden_dim}")
    length = tf.cast(sequence_length, tf.float32)
    distances = length - tf.range(2 * sequence_length, dtype=tf.float32)  # (2L,): L, L-1, ..., -L+1
    inverse_frequency = 1.0 / (10000.0 ** (tf.range(0, hidden_dim, 2, dtype=tf.float32) / hidden_dim))  # (hidden/2,)
    angles = distances[:, None] * inverse_frequency[None, :]  # (2L, hidden/2)
    return tf.concat([tf.sin(angles), tf.cos(angles)], axis=-1)  # (2L, hidden)


def relative_indices(query_positions, key_length):
    """(batch | 1, queries) positions -> (batch | 1, queries, key_length) int32 rows of the encoding table:
    L - (i - j) for query position i and key position j, in [1, 2L - 1]."""
    query_positions = tf.cast(query_positions, tf.int32)
    keys = tf.range(key_length, dtype=tf.int32)
    return key_length - query_positions[:, :, None] + keys[None, None, :]


def gather_relative(by_distance, query_positions):
    """Scores per distance (batch, heads, queries, 2L) and query positions (batch | 1, queries) -> scores
    per key (batch, heads, queries, L).

    out[b, h, q, j] = by_distance[b, h, q, L - (query_positions[b, q] - j)]: queries may sit anywhere
    (XLNet's query stream at its targets). For queries at 0 .. L-1 (the content stream) this is
    Transformer-XL's "relative shift", which `relative_shift` computes faster, bitwise the same.
    """
    batch, heads = tf.shape(by_distance)[0], tf.shape(by_distance)[1]
    queries, width = tf.shape(by_distance)[2], tf.shape(by_distance)[3]
    key_length = width // 2
    indices = relative_indices(query_positions, key_length)  # (batch | 1, queries, L)
    indices = tf.broadcast_to(indices[:, None], tf.stack([batch, heads, queries, key_length]))  # (b, h, q, L)
    return tf.gather(by_distance, indices, axis=3, batch_dims=3)


def relative_shift(by_distance):
    """`gather_relative` for queries at positions 0 .. L-1 (the content stream), without a gather.

    Transformer-XL's shift, as keras-hub's `_rel_shift` does it: with (queries, distances) the leading
    axes, a reshape that moves each row one column left of the row before, and two slices of leading
    axes. Bitwise the same result as the gather, about 3x faster forward + backward on CPU ((32, 2,
    128, 256) scores, 2 busy cores: 6.4 ms against 17.8 ms, best of 5).
    """
    batch, heads = tf.shape(by_distance)[0], tf.shape(by_distance)[1]
    queries, width = tf.shape(by_distance)[2], tf.shape(by_distance)[3]
    x = tf.transpose(by_distance, (2, 3, 0, 1))  # (q, 2L, batch, heads)
    x = tf.reshape(x, tf.stack([width, queries, batch, heads]))[1:]  # (2L - 1, q, batch, heads)
    x = tf.reshape(x, tf.stack([queries, width - 1, batch, heads]))[:, : width // 2]  # (q, L, batch, heads)
    return tf.transpose(x, (2, 3, 0, 1))  # (batch, heads, q, L)
