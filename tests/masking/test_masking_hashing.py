"""The counter-based randomness: exact 32-bit arithmetic, purity in (seed, step, row) / (seed, content)."""

import numpy as np
import tensorflow as tf

from keras_mlm.masking import hashing


def mix32_python(x):
    """lowbias32 written with Python integers, independent of numpy's and TensorFlow's wrapping."""
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    return x ^ (x >> 16)


def test_mix32_matches_python_reference_exactly():
    edges = [0, 1, 2, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF]
    values = edges + np.random.default_rng(0).integers(0, 2**32, size=5000).tolist()
    expected = [mix32_python(v) for v in values]
    assert hashing.mix32_numpy(values).tolist() == expected
    assert hashing.mix32(tf.constant(values, tf.uint32)).numpy().tolist() == expected
    # Pinned values: a change of the mixer would silently change every mask of a resumed run.
    assert hashing.mix32(tf.constant([1, 0x12345678], tf.uint32)).numpy().tolist() == [0x688990C0, 0xF5E71C96]


def test_mix32_is_a_bijection_on_a_sample():
    values = np.arange(200_000, dtype=np.uint32)
    assert len(np.unique(hashing.mix32_numpy(values))) == len(values)


def test_training_row_keys_depend_on_seed_step_row_only():
    key = hashing.seed_key(3, deterministic=False)
    eight = hashing.training_row_keys(key, 5, 8).numpy()
    three = hashing.training_row_keys(key, 5, 3).numpy()
    np.testing.assert_array_equal(three, eight[:3])  # row i's key does not depend on the batch size
    assert len(set(eight.tolist())) == 8  # rows differ
    assert not np.array_equal(hashing.training_row_keys(key, 6, 8).numpy(), eight)  # steps differ
    # Both halves of a 64-bit step count.
    assert not np.array_equal(hashing.training_row_keys(key, 5 + 2**32, 8).numpy(), eight)
    other_seed = hashing.seed_key(4, deterministic=False)
    assert not np.array_equal(hashing.training_row_keys(other_seed, 5, 8).numpy(), eight)


def test_seed_keys_use_all_64_bits_and_mode():
    keys = {hashing.seed_key(s, False) for s in (0, 1, 2**32, 2**63 - 1, -1)}
    assert len(keys) == 5
    assert hashing.seed_key(7, True) != hashing.seed_key(7, False)


def test_content_row_keys_depend_on_content_only():
    key = hashing.seed_key(0, deterministic=True)
    rows = np.array([[2, 5, 6, 7, 3], [2, 7, 6, 5, 3], [2, 5, 6, 8, 3]], np.int64)
    keys = hashing.content_row_keys(key, tf.constant(rows)).numpy()
    assert len(set(keys.tolist())) == 3  # a permutation or one changed token gives another key
    # The same row in another batch, at another index, gets the same key.
    shuffled = hashing.content_row_keys(key, tf.constant(rows[[2, 0, 1, 0]])).numpy()
    np.testing.assert_array_equal(shuffled, keys[[2, 0, 1, 0]])


def test_noise_at_positions_equals_dense_noise_gathered():
    keys = hashing.training_row_keys(hashing.seed_key(1, False), 0, 4)
    noise = hashing.PositionNoise(keys, hashing.position_keys(16))
    positions = tf.constant([[0, 3, 15], [1, 1, 2], [7, 8, 9], [15, 0, 4]])
    streams = (hashing.REPLACEMENT, hashing.SELECTION, hashing.DECISION)
    at = noise.at(streams, positions).numpy()  # (4, 3, 3)
    for index, stream in enumerate(streams):
        dense = noise.dense(stream).numpy()
        np.testing.assert_array_equal(at[..., index], np.take_along_axis(dense, positions.numpy(), 1))


def test_noise_is_uniform():
    # 1024 rows x 128 positions in 16 equal bins of [0, 2**32): chi-square (15 degrees of freedom)
    # below 37.7, its 0.1% critical value; top and low bits alike.
    keys = hashing.training_row_keys(hashing.seed_key(0, False), 0, 1024)
    noise = hashing.PositionNoise(keys, hashing.position_keys(128))
    values = noise.dense(hashing.SELECTION).numpy().ravel()
    for bins in (values >> 28, values & 15):
        counts = np.bincount(bins, minlength=16)
        assert ((counts - counts.mean()) ** 2 / counts.mean()).sum() < 37.7
    # Streams are uncorrelated: correlation of two streams at the same positions is ~0 (sd 0.003).
    other = noise.dense(hashing.DECISION).numpy().ravel()
    assert abs(np.corrcoef(values.astype(float), other.astype(float))[0, 1]) < 0.01
    # Neighbouring positions and neighbouring rows too.
    grid = values.reshape(1024, 128).astype(float)
    assert abs(np.corrcoef(grid[:, :-1].ravel(), grid[:, 1:].ravel())[0, 1]) < 0.01
    assert abs(np.corrcoef(grid[:-1].ravel(), grid[1:].ravel())[0, 1]) < 0.01
