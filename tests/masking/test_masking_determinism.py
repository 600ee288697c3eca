"""Same inputs, seed and step -> same masks, eagerly or in tf.data; evaluation masks follow the row."""

import numpy as np
import pytest
import tensorflow as tf

from keras_mlm.masking import MLMMasker

STRATEGIES = ["token", "whole_word", "span"]
SEQUENCE_LENGTH = 32


@pytest.fixture(scope="module")
def rows():
    """48 rows of 32 tokens over the tiny vocabulary: [CLS] words [SEP], some padded."""
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 20, size=(48, SEQUENCE_LENGTH)).astype(np.int32)
    ids[:, 0], ids[:, -1] = 2, 3
    for row, length in enumerate(rng.integers(8, SEQUENCE_LENGTH, size=48)):
        if row % 3 == 0:  # every third row padded after a [SEP]
            ids[row, length - 1], ids[row, length:] = 3, 0
    return ids


def make_masker(strategy="token", seed=0, deterministic=False):
    return MLMMasker(
        vocabulary_size=20,
        mask_token_id=4,
        special_token_ids=[0, 1, 2, 3, 4],
        sequence_length=SEQUENCE_LENGTH,
        continuation_ids=[12, 13, 14, 18],
        strategy=strategy,
        selection_rate=0.3,
        seed=seed,
        deterministic=deterministic,
    )


def flat(outputs):
    return [np.asarray(t) for t in tf.nest.flatten(outputs)]


def assert_same(a, b):
    for x, y in zip(flat(a), flat(b), strict=True):
        np.testing.assert_array_equal(x, y)


def differs(a, b):
    return any(not np.array_equal(x, y) for x, y in zip(flat(a), flat(b), strict=True))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_eager_equals_tf_data(rows, strategy):
    masker = make_masker(strategy, seed=3)
    dataset = tf.data.Dataset.from_tensor_slices(rows).batch(16).enumerate(start=100)
    dataset = dataset.map(lambda step, ids: masker(ids, step=step), num_parallel_calls=2, deterministic=True)
    for index, from_dataset in enumerate(dataset):
        assert_same(masker(rows[16 * index : 16 * (index + 1)], step=100 + index), from_dataset)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_same_seed_and_step_same_masks_else_different(rows, strategy):
    first = make_masker(strategy, seed=1)(rows, step=7)
    assert_same(make_masker(strategy, seed=1)(rows, step=7), first)  # a restarted run at step 7
    assert differs(make_masker(strategy, seed=1)(rows, step=8), first)
    assert differs(make_masker(strategy, seed=2)(rows, step=7), first)


def test_a_row_depends_on_its_index_not_on_its_neighbours(rows):
    masker = make_masker(seed=5)
    full = masker(rows, step=2)
    head = masker(rows[:5], step=2)  # a smaller batch
    changed = rows.copy()
    changed[1:] = rows[::-1][:-1]  # other rows after row 0
    for name in ("token_ids", "mask_positions"):
        np.testing.assert_array_equal(head[0][name], full[0][name][:5])
        np.testing.assert_array_equal(masker(changed, step=2)[0][name][0], full[0][name][0])


def test_internal_counter_when_no_step(rows):
    masker = make_masker(seed=9)
    first, second = masker(rows), masker(rows)
    assert differs(first, second)  # successive eager calls get fresh masks
    reference = make_masker(seed=9)
    assert_same(first, reference(rows, step=0))
    assert_same(second, reference(rows, step=1))


def test_tf_data_without_step_is_dynamic_across_epochs(rows):
    masker = make_masker(seed=9)
    dataset = tf.data.Dataset.from_tensor_slices(rows).batch(48).map(masker)
    first, second = next(iter(dataset)), next(iter(dataset))
    assert differs(first, second)  # the counter advances inside the graph too: no static masking


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_evaluation_mask_follows_the_row(rows, strategy):
    masker = make_masker(strategy, seed=4, deterministic=True)
    whole = masker(rows, step=0)
    assert np.asarray(whole[2]).sum() > len(rows)  # something is masked
    # The same rows in another order, in smaller batches, at other steps: each row gets its own mask.
    permutation = np.random.default_rng(1).permutation(len(rows))
    for start, step in ((0, 5), (20, 6), (40, 7)):
        part = permutation[start : start + 8]
        for got, expected in zip(flat(masker(rows[part], step=step)), flat(whole), strict=True):
            np.testing.assert_array_equal(got, expected[part])
    assert_same(masker(rows), whole)  # no step: still the same
    # Identical rows in one batch get identical masks; another seed gives other masks.
    twice = masker(np.stack([rows[0], rows[0]]))
    for output in flat(twice):
        np.testing.assert_array_equal(output[0], output[1])
    assert differs(make_masker(strategy, seed=5, deterministic=True)(rows), whole)
