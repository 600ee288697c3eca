"""The selector building blocks, checked against hand-computed results and sequential references."""

import numpy as np
import tensorflow as tf

from keras_mlm.masking import hashing
from keras_mlm.masking.selectors import (
    greedy_fill,
    sample_span_lengths,
    select_groups_cut_last,
    span_length_probabilities,
    word_ids,
)


def greedy_reference(lengths, budget):
    """Google create_pretraining_data's loop: skip a group that does not fit, go on with the next."""
    taken, remaining = [], budget
    for length in lengths:
        fits = 0 < length <= remaining
        taken.append(fits)
        remaining -= length if fits else 0
    return taken


def test_greedy_fill_by_hand():
    lengths = tf.constant([[3, 1, 1, 0], [1, 3, 1, 2], [2, 2, 2, 2], [4, 1, 3, 1]])
    budget = tf.constant([2, 4, 3, 4])
    expected = [
        [False, True, True, False],  # 3 skipped, then 1 + 1
        [True, True, False, False],  # 1 + 3 = 4: full
        [True, False, False, False],  # 2, then nothing fits in 1
        [True, False, False, False],  # 4 = budget
    ]
    np.testing.assert_array_equal(greedy_fill(lengths, budget), expected)


def test_greedy_fill_equals_sequential_loop():
    rng = np.random.default_rng(0)
    lengths = rng.integers(0, 6, size=(500, 24)).astype(np.int32)
    budget = rng.integers(0, 30, size=500).astype(np.int32)
    expected = [greedy_reference(row, b) for row, b in zip(lengths.tolist(), budget.tolist())]
    np.testing.assert_array_equal(greedy_fill(tf.constant(lengths), tf.constant(budget)), expected)


def test_word_ids_by_hand():
    # [CLS] ran ##s the ##ed [SEP] ##s cat [PAD]: '##ed' after 'the' continues it; '##s' after [SEP]
    # starts a word of its own (its predecessor is not a candidate).
    candidate = tf.constant([[False, True, True, True, True, False, True, True, False]])
    continuation = tf.constant([[False, False, True, False, True, False, True, False, False]])
    ids = word_ids(candidate, continuation).numpy()[0]
    np.testing.assert_array_equal(ids[candidate.numpy()[0]], [0, 0, 1, 1, 2, 3])


def test_groups_cut_last_by_hand():
    # Two rows of 6 candidates in groups [0 0 0 1 1 2]. The order noise ranks groups 2 > 0 > 1 in row 0
    # and 1 > 0 > 2 in row 1 (largest first).
    candidate = tf.ones([2, 6], tf.bool)
    group_id = tf.constant([[0, 0, 0, 1, 1, 2]] * 2)
    noise = tf.constant([[20, 10, 30, 0, 0, 0], [20, 30, 10, 0, 0, 0]], tf.uint32)
    selected = select_groups_cut_last(candidate, group_id, tf.constant([3, 4]), noise).numpy()
    np.testing.assert_array_equal(
        selected,
        [
            [True, True, False, False, False, True],  # group 2 (1 token), then 2 of group 0's 3
            [True, True, False, True, True, False],  # group 1 (2 tokens), then 2 of group 0's 3
        ],
    )


def test_span_length_sampler_follows_truncated_geometric():
    # 2**17 draws from the noise: each probability within 0.5 points (largest sd is 0.12 points)
    # and the mean within 1% of 3.797 (sd of the mean 0.2%).
    probabilities = span_length_probabilities(0.2, 10)
    mean = float((np.arange(1, 11) * probabilities).sum())
    assert abs(mean - 3.797) < 1e-3  # SpanBERT's reported mean span length, 3.8
    keys = hashing.training_row_keys(hashing.seed_key(0, False), 0, 1024)
    noise = hashing.PositionNoise(keys, hashing.position_keys(128)).dense(hashing.SPAN_LENGTH)
    lengths = sample_span_lengths(noise, 0.2, 10).numpy().ravel()
    assert lengths.min() == 1 and lengths.max() == 10
    np.testing.assert_allclose(np.bincount(lengths, minlength=11)[1:] / lengths.size, probabilities, atol=0.005)
    assert abs(lengths.mean() - mean) < 0.01 * mean


def test_span_length_sampler_edge_parameters():
    noise = tf.constant([0, 2**31, 2**32 - 1], tf.uint32)
    np.testing.assert_array_equal(sample_span_lengths(noise, 1.0, 10), [1, 1, 1])  # p = 1: always one word
    np.testing.assert_array_equal(sample_span_lengths(noise, 0.2, 1), [1, 1, 1])  # max length 1
    np.testing.assert_array_equal(sample_span_lengths(noise, 0.2, 10), [1, 3, 10])  # inverse CDF ends
