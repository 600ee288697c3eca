"""Counter-based randomness: every random number is a hash of where it is used.

The masker holds no RNG state. Each row gets a 32-bit key: in training a hash of
(seed, step, row index in the batch), in evaluation a hash of (seed, row content). The random value
of stream s at position p of that row is `mix32(row_key ^ position_key[p, s])`. The same numbers
therefore come out eagerly, inside `tf.data`, after a restart at step k, and on any machine: they are
uint32 integer arithmetic (wrapping multiply, xor, shift — defined modulo 2**32) and nothing else.

The mixer is Chris Wellons' "lowbias32", a bijection on 32-bit integers with low bias.
`mix32_numpy` is the reference implementation (constants and tests); `mix32` the TensorFlow one.
"""

import numpy as np
import tensorflow as tf

TWO_POW_32 = 1 << 32
MASK32 = TWO_POW_32 - 1

_MULTIPLIER_1 = 0x7FEB352D
_MULTIPLIER_2 = 0x846CA68B
_GOLDEN = 0x9E3779B9  # odd: row * _GOLDEN is distinct modulo 2**32 for every row index

# Random streams: one 32-bit value per (row, position, stream).
SELECTION = 0  # order in which tokens / words / spans are chosen (indexed by token / group)
SPAN_LENGTH = 1  # span lengths (indexed by span number)
DECISION = 2  # [MASK] / random / keep
REPLACEMENT = 3  # which random token
NUM_STREAMS = 4

# Salts keep the hashes of different quantities apart (arbitrary 32-bit constants).
_SEED_HIGH_SALT = 0x85EBCA6B
_CONTENT_SALT = 0x27D4EB2F
_POSITION_SALT = 0x165667B1
_DETERMINISTIC_SALT = 0xD3A2646C


def mix32_numpy(x):
    """lowbias32 on uint32 numpy values (wrapping arithmetic); the reference for `mix32`."""
    x = (np.asarray(x).astype(np.uint64) & np.uint64(MASK32)).astype(np.uint32)
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint32(16))
        x = x * np.uint32(_MULTIPLIER_1)
        x = x ^ (x >> np.uint32(15))
        x = x * np.uint32(_MULTIPLIER_2)
        x = x ^ (x >> np.uint32(16))
    return x


def mix32(x):
    """lowbias32 on a uint32 tensor."""
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 16))
    x = x * _MULTIPLIER_1
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 15))
    x = x * _MULTIPLIER_2
    return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 16))


def seed_key(seed, deterministic):
    """A 32-bit key from an arbitrary Python integer seed (both halves of its low 64 bits count);
    training and evaluation keys differ for the same seed."""
    seed = int(seed) & ((1 << 64) - 1)
    key = mix32_numpy(seed & MASK32)
    key = mix32_numpy(key ^ mix32_numpy((seed >> 32) ^ _SEED_HIGH_SALT))
    if deterministic:
        key = mix32_numpy(key ^ np.uint32(_DETERMINISTIC_SALT))
    return int(key)


def position_keys(sequence_length):
    """(sequence_length, NUM_STREAMS) uint32 keys, distinct for every (position, stream)."""
    counters = np.arange(sequence_length * NUM_STREAMS, dtype=np.uint64).reshape(sequence_length, NUM_STREAMS)
    return mix32_numpy(mix32_numpy(counters) ^ np.uint32(_POSITION_SALT))


def training_row_keys(key, step, batch_size, first_row=0):
    """(batch,) uint32 keys that depend on (seed key, step, row index) only; step is any int64.
    `first_row` (an int or int32 tensor) numbers the rows from there: a replica's rows within the global batch."""
    step = tf.cast(step, tf.int64)
    step_low = tf.cast(step, tf.uint32)  # the cast wraps modulo 2**32
    step_high = tf.cast(tf.bitwise.right_shift(step, 32), tf.uint32)
    key = mix32(tf.bitwise.bitwise_xor(step_low, tf.constant(key, tf.uint32)))
    key = mix32(tf.bitwise.bitwise_xor(key, step_high))
    rows = tf.range(batch_size, dtype=tf.int32) + tf.cast(first_row, tf.int32)
    return mix32(key + tf.cast(rows, tf.uint32) * _GOLDEN)  # (batch,)


def content_row_keys(key, token_ids):
    """(batch,) uint32 keys that depend on (seed key, the row's token ids) only: same row, same key,
    in any batch and at any place in it.

    token_ids: (batch, seq_len) non-negative ints. Each (id, position) pair is hashed
    (`id * seq_len + position` is unique per pair while id * seq_len < 2**32); the row key mixes the sum
    (modulo 2**32) of those hashes.
    """
    sequence_length = token_ids.shape[-1]
    positions = tf.cast(tf.range(sequence_length), tf.uint32)
    pairs = tf.cast(token_ids, tf.uint32) * sequence_length + positions  # (batch, seq_len)
    pieces = mix32(tf.bitwise.bitwise_xor(pairs, _CONTENT_SALT))  # (batch, seq_len)
    total = tf.reduce_sum(pieces, axis=1)  # (batch,), wraps modulo 2**32
    return mix32(tf.bitwise.bitwise_xor(mix32(total), tf.constant(key, tf.uint32)))


class PositionNoise:
    """Uniform 32-bit values for (row, position, stream), from per-row keys.

    row_keys: (batch,) uint32 tensor; keys_by_position: (seq_len, NUM_STREAMS) uint32 numpy array.
    """

    def __init__(self, row_keys, keys_by_position):
        self.row_keys = row_keys
        self.keys_by_position = keys_by_position

    def dense(self, stream):
        """(batch, seq_len) uint32 for every position."""
        keys = tf.constant(self.keys_by_position[:, stream])  # (seq_len,)
        return mix32(tf.bitwise.bitwise_xor(self.row_keys[:, None], keys))

    def at(self, streams, positions):
        """(batch, n, len(streams)) uint32 at the given (batch, n) positions; [..., i] equals
        `dense(streams[i])` gathered there."""
        keys = tf.gather(tf.constant(self.keys_by_position[:, list(streams)]), positions)  # (batch, n, streams)
        return mix32(tf.bitwise.bitwise_xor(self.row_keys[:, None, None], keys))
