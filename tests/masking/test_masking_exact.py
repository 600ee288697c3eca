"""Hand-checked results on small rows, with determinism injected through the rates (1.0 / 0.0)."""

import numpy as np
import pytest
import tensorflow as tf

from keras_mlm.masking import MLMMasker
from keras_mlm.masking.selectors import selection_budget

PAD, UNK, CLS, SEP, MASK = range(5)
# Tiny vocabulary (conftest): 5 the, 6 cat, 7 sat, 8 on, 9 mat, 10 dog, 11 ran, 12 ##s, 13 ##ed, 14 ##ing,
# 15 a, 16 big, 17 red, 18 ##dy, 19 hat.
ROWS = np.array(
    [
        [CLS, 5, 6, 7, 8, 5, 9, SEP, PAD, PAD],  # [CLS] the cat sat on the mat [SEP] [PAD] [PAD]
        [CLS, 5, 10, 11, 12, SEP, 15, 17, 18, SEP],  # [CLS] the dog ran ##s [SEP] a red ##dy [SEP]
    ],
    np.int32,
)
CANDIDATE_POSITIONS = [[1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 6, 7, 8]]
STRATEGIES = ["token", "whole_word", "span"]


def make_masker(tiny_vocabulary, **kwargs):
    kwargs.setdefault("continuation_ids", [12, 13, 14, 18])
    return MLMMasker(
        vocabulary_size=len(tiny_vocabulary),
        mask_token_id=MASK,
        special_token_ids=[PAD, UNK, CLS, SEP, MASK],
        sequence_length=10,
        **kwargs,
    )


def padded(lists, width, fill=0):
    return np.array([row + [fill] * (width - len(row)) for row in lists])


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_select_everything_and_mask_everything(tiny_vocabulary, strategy):
    masker = make_masker(
        tiny_vocabulary, strategy=strategy, selection_rate=1.0, mask_token_rate=1.0, random_token_rate=0.0
    )
    assert masker.max_selections == 10
    x, y, sample_weight = masker(ROWS, step=0)
    np.testing.assert_array_equal(
        x["token_ids"],
        [
            [CLS, MASK, MASK, MASK, MASK, MASK, MASK, SEP, PAD, PAD],
            [CLS, MASK, MASK, MASK, MASK, SEP, MASK, MASK, MASK, SEP],
        ],
    )
    np.testing.assert_array_equal(x["mask_positions"], padded(CANDIDATE_POSITIONS, 10))
    np.testing.assert_array_equal(y, padded([[5, 6, 7, 8, 5, 9], [5, 10, 11, 12, 15, 17, 18]], 10))
    np.testing.assert_array_equal(sample_weight, padded([[1.0] * 6, [1.0] * 7], 10, 0.0))
    np.testing.assert_array_equal(x["segment_ids"], np.zeros((2, 10)))
    np.testing.assert_array_equal(x["padding_mask"], ROWS != PAD)


def test_output_types_and_shapes(tiny_vocabulary):
    x, y, sample_weight = make_masker(tiny_vocabulary)(ROWS, step=0)
    assert sorted(x) == ["mask_positions", "padding_mask", "segment_ids", "token_ids"]
    expected = {"token_ids": (tf.int32, (2, 10)), "segment_ids": (tf.int32, (2, 10)),
                "padding_mask": (tf.bool, (2, 10)), "mask_positions": (tf.int32, (2, 2))}  # fmt: skip
    for name, (dtype, shape) in expected.items():
        assert (x[name].dtype, tuple(x[name].shape)) == (dtype, shape), name
    assert (y.dtype, tuple(y.shape)) == (tf.int32, (2, 2))  # max_selections = ceil(10 * 0.15) = 2
    assert (sample_weight.dtype, tuple(sample_weight.shape)) == (tf.float32, (2, 2))


def test_keep_rate_one_leaves_ids_unchanged(tiny_vocabulary):
    masker = make_masker(tiny_vocabulary, selection_rate=1.0, mask_token_rate=0.0, random_token_rate=0.0)
    assert masker.masking_config.keep_rate == 1.0
    x, y, _ = masker(ROWS, step=3)
    np.testing.assert_array_equal(x["token_ids"], ROWS)
    np.testing.assert_array_equal(x["mask_positions"], padded(CANDIDATE_POSITIONS, 10))  # still predicted
    np.testing.assert_array_equal(y, padded([[5, 6, 7, 8, 5, 9], [5, 10, 11, 12, 15, 17, 18]], 10))


def test_random_rate_one_replaces_with_non_special_ids_uniformly(tiny_vocabulary):
    masker = make_masker(tiny_vocabulary, selection_rate=1.0, mask_token_rate=0.0, random_token_rate=1.0)
    rows = np.tile(ROWS, (300, 1))  # 600 rows: every row index draws afresh
    x, _, sample_weight = masker(rows, step=0)
    positions = x["mask_positions"].numpy()
    drawn = np.take_along_axis(x["token_ids"].numpy(), positions, 1)[sample_weight.numpy() > 0]
    # Positions outside the slots are untouched: [CLS], [SEP], [PAD] stay.
    np.testing.assert_array_equal(x["token_ids"].numpy()[rows <= SEP], rows[rows <= SEP])
    counts = np.bincount(drawn, minlength=20)
    assert counts.sum() == 300 * 13 and counts[:5].sum() == 0  # every candidate replaced, never by a special
    # 3900 draws over the 15 non-special ids: 260 expected each, sd 15.6; allow 5 sd.
    assert np.all(np.abs(counts[5:] - 260) < 78), counts


def test_budget_is_rounded_rate_at_least_one_and_capped():
    candidate = tf.constant(padded([[True] * 7, [True] * 10, [True] * 3, [], [True] * 30], 30, False), tf.bool)
    # round(1.05) = 1; round(1.5) = 2 (half to even, as Python); round(0.45) = 0 -> at least 1; no candidate -> 0;
    # round(4.5) = 4, then capped at max_selections = 3.
    np.testing.assert_array_equal(selection_budget(candidate, 0.15, max_selections=3), [1, 2, 1, 0, 3])
    np.testing.assert_array_equal(selection_budget(candidate, 0.0, max_selections=3), [0, 0, 0, 0, 0])


def test_max_selections_caps_the_count(tiny_vocabulary):
    masker = make_masker(tiny_vocabulary, selection_rate=1.0, max_selections=3)
    x, _, sample_weight = masker(ROWS, step=0)
    np.testing.assert_array_equal(sample_weight, np.ones((2, 3)))
    for row, positions in zip(range(2), x["mask_positions"].numpy()):
        assert set(positions) <= set(CANDIDATE_POSITIONS[row]) and list(positions) == sorted(set(positions))


def test_rows_without_candidates_get_empty_slots(tiny_vocabulary):
    rows = np.array([[CLS, SEP] + [PAD] * 8, [PAD] * 10], np.int32)
    x, y, sample_weight = make_masker(tiny_vocabulary, selection_rate=1.0)(rows, step=0)
    np.testing.assert_array_equal(x["token_ids"], rows)
    for output in (x["mask_positions"], y, sample_weight):
        np.testing.assert_array_equal(output, np.zeros((2, 10)))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_slots_agree_with_token_ids(tiny_vocabulary, strategy):
    masker = make_masker(tiny_vocabulary, strategy=strategy, selection_rate=0.5)
    for step in range(20):
        x, y, sample_weight = masker(ROWS, step=step)
        positions, used = x["mask_positions"].numpy(), sample_weight.numpy() > 0
        np.testing.assert_array_equal(y.numpy()[used], np.take_along_axis(ROWS, positions, 1)[used])
        np.testing.assert_array_equal(positions[~used], 0)
        np.testing.assert_array_equal(y.numpy()[~used], 0)
        for row in range(2):
            chosen = positions[row][used[row]]
            assert list(chosen) == sorted(set(chosen)) and set(chosen) <= set(CANDIDATE_POSITIONS[row])
            changed = np.flatnonzero(x["token_ids"].numpy()[row] != ROWS[row])
            assert set(changed) <= set(chosen)  # only selected positions change


def test_whole_word_never_splits_a_word(tiny_vocabulary):
    # [CLS] ran ##s ##ed [SEP]: a single word of three pieces. Budget round(0.5 * 3) = 2 < 3: nothing fits.
    rows = np.array([[CLS, 11, 12, 13, SEP] + [PAD] * 5], np.int32)
    masker = make_masker(tiny_vocabulary, strategy="whole_word", selection_rate=0.5, max_selections=3)
    for step in range(10):
        _, _, sample_weight = masker(rows, step=step)
        assert sample_weight.numpy().sum() == 0
    # [CLS] ran ##s ##ed the cat [SEP]: budget round(0.5 * 5) = 2 (half to even). Whatever the random order,
    # the three-piece word is skipped and both one-piece words are taken (Google's greedy rule).
    rows = np.array([[CLS, 11, 12, 13, 5, 6, SEP, PAD, PAD, PAD]], np.int32)
    for step in range(10):
        x, _, sample_weight = masker(rows, step=step)
        np.testing.assert_array_equal(x["mask_positions"], [[4, 5, 0]])
        np.testing.assert_array_equal(sample_weight, [[1, 1, 0]])


def test_span_masks_exactly_the_budget(tiny_vocabulary):
    # Spans are cut at the budget (SpanBERT), so each row masks exactly round(0.3 * candidates) tokens,
    # where whole-word masking may fall short when words do not fit.
    masker = make_masker(tiny_vocabulary, strategy="span", selection_rate=0.3, max_selections=3)
    for step in range(20):
        _, _, sample_weight = masker(ROWS, step=step)
        np.testing.assert_array_equal(sample_weight.numpy().sum(axis=1), [2, 2])  # round(1.8), round(2.1)


def test_unbatched_row_equals_first_row_of_batch(tiny_vocabulary):
    masker = make_masker(tiny_vocabulary, selection_rate=0.5)
    single = masker(ROWS[0], step=4)
    batched = masker(ROWS, step=4)
    for a, b in zip(tf.nest.flatten(single), tf.nest.flatten(batched)):
        assert a.shape == b.shape[1:]
        np.testing.assert_array_equal(a, b[0])
