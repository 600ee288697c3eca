"""Seeded masking statistics on real text (tinyshakespeare, about 400k candidate tokens per pass).

Tolerance: half a percentage point. Over two passes (two steps per batch) about 120k tokens are
selected, so the sd of the [MASK] share is 0.12 points and that of the random / keep shares 0.09.
"""

import numpy as np
import pytest
import tensorflow as tf

from keras_mlm.masking import MaskingConfig, MLMMasker, hashing
from keras_mlm.masking.selectors import span_ids

SPECIALS = [0, 1, 2, 3, 4]
MASK = 4
TOLERANCE = 0.005


def run(masker, rows, passes=2, batch_size=256):
    """Masks every row `passes` times (steps 0.. in tf.data, as in training); returns numpy outputs."""
    dataset = tf.data.Dataset.from_tensor_slices(rows).batch(batch_size).repeat(passes)
    dataset = dataset.enumerate().map(lambda step, ids: (ids, masker(ids, step=step)))
    outputs = [(ids.numpy(), x["token_ids"].numpy(), x["mask_positions"].numpy(), y.numpy(), w.numpy() > 0)
               for ids, (x, y, w) in dataset]  # fmt: skip
    return [np.concatenate(parts) for parts in zip(*outputs)]


def word_starts_reference(ids, is_continuation):
    """Numpy word segmentation: a '##' piece right after a candidate continues that candidate's word."""
    candidate = ~np.isin(ids, SPECIALS)
    previous = np.pad(candidate[:, :-1], [(0, 0), (1, 0)])
    return candidate & ~(is_continuation[ids] & previous), candidate


@pytest.fixture(scope="module", params=["token", "whole_word", "span"])
def masked(request, shakespeare):
    vocabulary, rows = shakespeare
    masker = MLMMasker.from_vocabulary(vocabulary, 128, MaskingConfig(strategy=request.param), seed=11)
    return request.param, masker, rows, run(masker, rows)


def test_rates_match_config(masked):
    strategy, _, _, (ids, token_ids, positions, mask_ids, used) = masked
    candidates = (~np.isin(ids, SPECIALS)).sum()
    assert candidates > 700_000  # two passes over 350k tokens of text
    assert abs(used.sum() / candidates - 0.15) < TOLERANCE, strategy
    new = np.take_along_axis(token_ids, positions, 1)[used]
    old = mask_ids[used]
    shares = [(new == MASK).mean(), ((new != MASK) & (new != old)).mean(), (new == old).mean()]
    # A random draw equal to the original (1 in 3,756) counts as kept: far below the tolerance.
    np.testing.assert_allclose(shares, [0.8, 0.1, 0.1], atol=TOLERANCE, err_msg=strategy)


def test_specials_and_padding_never_selected_nor_drawn(masked):
    _, _, _, (ids, token_ids, positions, mask_ids, used) = masked
    assert not np.isin(mask_ids[used], SPECIALS).any()
    assert (np.take_along_axis(ids, positions, 1)[used] == mask_ids[used]).all()
    # Every changed position is a slot, and became [MASK] or a non-special token.
    changed = token_ids != ids
    slots = np.zeros_like(changed)
    np.put_along_axis(slots, positions, used, 1)
    assert not (changed & ~slots).any()
    assert not np.isin(token_ids[changed & (token_ids != MASK)], SPECIALS).any()
    np.testing.assert_array_equal(token_ids[np.isin(ids, SPECIALS)], ids[np.isin(ids, SPECIALS)])


def test_selected_count_is_the_budget(masked):
    # token and span take exactly min(max_selections, max(1, round(0.15 * candidates))) per row; whole-word
    # takes at most that (a word that does not fit is skipped) and, on this text, within 1% of it overall.
    strategy, masker, _, (ids, _, _, _, used) = masked
    candidates = (~np.isin(ids, SPECIALS)).sum(axis=1)
    budget = np.minimum(masker.max_selections, np.where(candidates > 0, np.maximum(1, np.round(0.15 * candidates)), 0))
    if strategy == "whole_word":
        assert (used.sum(axis=1) <= budget).all() and used.sum() >= 0.99 * budget.sum()
    else:
        np.testing.assert_array_equal(used.sum(axis=1), budget)


def test_whole_words_stay_whole(shakespeare):
    vocabulary, rows = shakespeare
    masker = MLMMasker.from_vocabulary(vocabulary, 128, MaskingConfig(strategy="whole_word"), seed=11)
    ids, _, positions, _, used = run(masker, rows[:1024], passes=1)
    is_continuation = np.array([token.startswith("##") for token in vocabulary])
    word_start, candidate = word_starts_reference(ids, is_continuation)
    assert (candidate & ~word_start).sum() > 0.3 * candidate.sum()  # many multi-piece words to test
    selected = np.zeros_like(candidate)
    np.put_along_axis(selected, positions, used, 1)
    word_of = np.cumsum(word_start, axis=1)  # word number of each candidate within its row
    for row in range(len(ids)):
        words = word_of[row][candidate[row]]
        chosen = selected[row][candidate[row]]
        # Every word is entirely chosen or entirely not: per word, min == max of the chosen flags.
        low = np.minimum.reduceat(chosen, np.flatnonzero(np.diff(np.r_[-1, words])))
        high = np.maximum.reduceat(chosen, np.flatnonzero(np.diff(np.r_[-1, words])))
        np.testing.assert_array_equal(low, high)


def test_spans_follow_the_tiling(shakespeare):
    """Masked spans are the row's spans (drawn lengths, starting at word starts), taken whole, except
    at most one per row cut at the budget; the drawn lengths have the truncated-geometric mean 3.8."""
    vocabulary, rows = shakespeare
    rows = rows[:1024]
    masker = MLMMasker.from_vocabulary(vocabulary, 128, MaskingConfig(strategy="span"), seed=11)
    ids, _, positions, _, used = run(masker, rows, passes=1, batch_size=1024)  # one batch: step 0
    is_continuation = np.array([token.startswith("##") for token in vocabulary])
    word_start, candidate = word_starts_reference(ids, is_continuation)
    # The same tiling the masker used (same seed, step 0).
    noise = hashing.PositionNoise(hashing.training_row_keys(masker._seed_key, 0, len(rows)), masker._position_keys)
    span_id, span_lengths = span_ids(tf.constant(candidate), tf.constant(is_continuation[ids]), noise, 0.2, 10)
    span_id, span_lengths = span_id.numpy(), span_lengths.numpy()
    assert abs(span_lengths.mean() - 3.797) < 0.04
    selected = np.zeros_like(candidate)
    np.put_along_axis(selected, positions, used, 1)
    cut, whole_lengths = 0, []
    for row in range(len(rows)):
        spans = span_id[row][candidate[row]]
        chosen = selected[row][candidate[row]]
        starts = word_start[row][candidate[row]]
        for span in np.unique(spans[chosen]):
            members = chosen[spans == span]
            taken = members.sum()
            assert members[:taken].all()  # a prefix of the span: it starts at the span's start...
            assert starts[spans == span][0]  # ...which is a word start
            words = starts[spans == span].sum()
            if taken < members.size:
                cut += 1
            else:
                whole_lengths.append(words)
                if span != spans.max():  # the row's last span may be cut by the row's end
                    assert words == span_lengths[row, span]
        assert cut <= row + 1  # at most one cut span per row
    # The budget (19 tokens) ends a row's spans early and favours short ones: whole masked spans average
    # 3.2 words against 3.8 drawn (SpanBERT's 512-token rows suffer less from this).
    assert 2.9 < np.mean(whole_lengths) < 3.5
