"""Which positions of a row become prediction targets: token, whole-word and span selectors.

A selector maps
    candidate     (batch, seq_len) bool    positions that may be chosen (not special, not padding)
    continuation  (batch, seq_len) bool    positions holding a `##` continuation piece
    budget        (batch,) int32           tokens to choose in each row (`selection_budget`)
    noise         hashing.PositionNoise    32-bit random values per (row, position, stream)
to slots: positions (batch, max_selections) int32 in increasing order and used (batch, max_selections)
bool; unused slots hold position 0.

- `TokenSelector` (BERT) chooses exactly `budget` tokens uniformly at random.
- `WholeWordSelector` chooses whole words in random order while they fit in the budget (Google BERT's
  `create_pretraining_data` rule: a word that would overflow is skipped and later, shorter ones are
  still tried), so it chooses at most `budget` tokens and never splits a word.
- `SpanSelector` (SpanBERT) tiles each row's words with spans of truncated-geometric lengths and
  chooses spans in random order until the budget is spent, cutting the last one (SpanBERT's rule), so
  it chooses exactly `budget` tokens.

Everything is vectorised over the batch with static shapes; random orders come from `top_k` on the
noise, which returns exactly k indices, so every count is exact.
"""

import numpy as np
import tensorflow as tf

from keras_mlm.masking import hashing


def selection_budget(candidate, selection_rate, max_selections):
    """(batch,) int32: min(max_selections, round(selection_rate * candidates)), at least 1 when the row
    has a candidate and selection_rate > 0 (as Google BERT). round() is half-to-even, as Python's."""
    count = tf.reduce_sum(tf.cast(candidate, tf.int32), axis=1)  # (batch,)
    budget = tf.cast(tf.round(selection_rate * tf.cast(count, tf.float64)), tf.int32)
    if selection_rate > 0:
        budget = tf.where(count > 0, tf.maximum(budget, 1), 0)
    return tf.minimum(budget, max_selections)


def _order_keys(noise, valid):
    """int32 sort keys from uint32 noise (its top 31 bits); -1 where not valid, so invalid entries sort
    last. top_k returns exactly k indices whatever the ties (broken by index, probability 2**-31)."""
    keys = tf.cast(tf.bitwise.right_shift(noise, 1), tf.int32)
    return tf.where(valid, keys, -1)


def sorted_slots(positions, used, num_slots, sequence_length):
    """The used positions of each row in increasing order, in num_slots slots; unused slots hold 0.

    positions: (batch, n) or (n,) int32, used: (batch, n) bool, at most num_slots used per row
    -> positions (batch, num_slots) int32, used (batch, num_slots) bool.
    """
    reversed_positions = tf.where(used, sequence_length - positions, 0)  # seq_len .. 1, 0 if unused
    top = tf.math.top_k(reversed_positions, k=num_slots).values  # largest first: smallest positions first
    used = top > 0
    return tf.where(used, sequence_length - top, 0), used


def word_ids(candidate, continuation):
    """Splits candidates into words: a word is a piece that is not a continuation (or follows a
    non-candidate) plus the continuation pieces right after it.

    Returns word_id (batch, seq_len) int32 counting words from 0, meaningful at candidate positions.
    """
    previous_is_candidate = tf.pad(candidate[:, :-1], [[0, 0], [1, 0]])  # (batch, seq_len)
    word_start = candidate & ~(continuation & previous_is_candidate)
    return tf.maximum(tf.cumsum(tf.cast(word_start, tf.int32), axis=1) - 1, 0)


def greedy_fill(lengths, budget):
    """Takes groups in the given order while they fit: a group longer than what is left is skipped.

    lengths: (batch, groups) int32 in random order (0 = no group); budget: (batch,) int32.
    Returns taken (batch, groups) bool, exactly the sequential rule of Google's create_pretraining_data.
    Each pass takes the longest prefix of the still-fitting groups whose cumulative length fits, which
    is what the sequential loop takes before its next skip; passes repeat until nothing changes.
    """

    def one_pass(taken, remaining, changed):
        fits = ~taken & (lengths > 0) & (lengths <= remaining[:, None])  # (batch, groups)
        running = tf.cumsum(tf.where(fits, lengths, 0), axis=1)
        new = fits & (running <= remaining[:, None])
        remaining = remaining - tf.reduce_sum(tf.where(new, lengths, 0), axis=1)
        return taken | new, remaining, tf.reduce_any(new)

    taken, _, _ = tf.while_loop(
        lambda taken, remaining, changed: changed,
        one_pass,
        (tf.zeros_like(lengths, tf.bool), budget, tf.constant(True)),
        maximum_iterations=lengths.shape[-1] + 1,
    )
    return taken


def _groups_in_random_order(candidate, group_id, order_noise):
    """Token count of each group and a random order of the groups.

    Returns lengths (batch, groups) int32 indexed by group id (0 = no such group) and
    order (batch, groups) int32, the group ids of each row in random order (empty groups last).
    """
    batch_size = tf.shape(candidate)[0]
    sequence_length = candidate.shape[-1]
    row_offsets = tf.range(batch_size)[:, None] * sequence_length  # (batch, 1)
    lengths = tf.math.unsorted_segment_sum(
        tf.cast(candidate, tf.int32), group_id + row_offsets, batch_size * sequence_length
    )
    lengths = tf.reshape(lengths, [batch_size, sequence_length])  # (batch, groups)
    keys = _order_keys(order_noise, lengths > 0)
    order = tf.math.top_k(keys, k=sequence_length).indices  # (batch, groups)
    return lengths, order


def _from_order(values_in_order, order):
    """Scatters (batch, groups) values given in `order` back to group-id index (order is a permutation)."""
    batch_size = tf.shape(order)[0]
    groups = order.shape[-1]
    row_offsets = tf.range(batch_size)[:, None] * groups
    values = tf.math.unsorted_segment_sum(values_in_order, order + row_offsets, batch_size * groups)
    return tf.reshape(values, [batch_size, groups])


def select_whole_groups(candidate, group_id, budget, order_noise):
    """Chooses whole groups in random order while they fit in the budget (`greedy_fill`).

    group_id: (batch, seq_len) int32 in [0, seq_len), the group of each candidate position;
    order_noise: (batch, seq_len) uint32, a random key per group id.
    Returns selected (batch, seq_len) bool: whole groups only, at most `budget` tokens per row.
    """
    lengths, order = _groups_in_random_order(candidate, group_id, order_noise)
    taken_in_order = greedy_fill(tf.gather(lengths, order, batch_dims=1), budget)  # (batch, groups)
    taken = _from_order(tf.cast(taken_in_order, tf.int32), order) > 0  # (batch, groups), by group id
    return candidate & tf.gather(taken, group_id, batch_dims=1)


def select_groups_cut_last(candidate, group_id, budget, order_noise):
    """Chooses groups in random order until the budget is spent; the group that overflows it is cut
    to its first tokens (SpanBERT's rule), so every row gets exactly `budget` tokens.

    group_id must be non-decreasing along the candidates of a row (groups are runs of candidates).
    Same arguments and result as `select_whole_groups`.
    """
    lengths, order = _groups_in_random_order(candidate, group_id, order_noise)
    sorted_lengths = tf.gather(lengths, order, batch_dims=1)  # (batch, groups)
    before = tf.cumsum(sorted_lengths, axis=1, exclusive=True)  # tokens taken before each group
    allowance = tf.clip_by_value(budget[:, None] - before, 0, sorted_lengths)  # tokens to take of each
    allowance = _from_order(allowance, order)  # (batch, groups), by group id
    # 1-based index of each candidate within its group.
    token_index = tf.cumsum(tf.cast(candidate, tf.int32), axis=1)  # (batch, seq_len)
    group_start = tf.cumsum(lengths, axis=1, exclusive=True)  # (batch, groups)
    index_in_group = token_index - tf.gather(group_start, group_id, batch_dims=1)
    return candidate & (index_in_group <= tf.gather(allowance, group_id, batch_dims=1))


class TokenSelector:
    """BERT: `budget` candidate tokens uniformly at random (those with the largest noise)."""

    def __init__(self, max_selections):
        self.max_selections = max_selections

    def __call__(self, candidate, continuation, budget, noise):
        keys = _order_keys(noise.dense(hashing.SELECTION), candidate)  # (batch, seq_len)
        chosen = tf.math.top_k(keys, k=self.max_selections).indices  # (batch, max_selections), random order
        used = tf.range(self.max_selections) < budget[:, None]
        return sorted_slots(chosen, used, self.max_selections, candidate.shape[-1])


class WholeWordSelector:
    """Whole-word masking: words (a piece and its `##` pieces) in random order while the budget allows."""

    def __init__(self, max_selections):
        self.max_selections = max_selections

    def __call__(self, candidate, continuation, budget, noise):
        word_id = word_ids(candidate, continuation)
        selected = select_whole_groups(candidate, word_id, budget, noise.dense(hashing.SELECTION))
        sequence_length = candidate.shape[-1]
        return sorted_slots(tf.range(sequence_length), selected, self.max_selections, sequence_length)


def span_length_probabilities(span_p, max_span_length):
    """P(length = k), k = 1 .. max_span_length: span_p * (1 - span_p)**(k - 1), renormalised."""
    k = np.arange(1, max_span_length + 1, dtype=np.float64)
    p = span_p * (1.0 - span_p) ** (k - 1)
    return p / p.sum()


def span_length_thresholds(span_p, max_span_length):
    """int64 thresholds round(2**32 * CDF(k)), k = 1 .. max_span_length - 1 (inverse-CDF sampling)."""
    cdf = np.cumsum(span_length_probabilities(span_p, max_span_length))[:-1]
    return np.round(cdf * hashing.TWO_POW_32).astype(np.int64)


def sample_span_lengths(noise, span_p, max_span_length):
    """noise (...) uint32 -> span lengths (...) int32 in [1, max_span_length]."""
    thresholds = tf.constant(span_length_thresholds(span_p, max_span_length))  # (max - 1,)
    return 1 + tf.reduce_sum(tf.cast(tf.cast(noise, tf.int64)[..., None] >= thresholds, tf.int32), axis=-1)


def span_ids(candidate, continuation, noise, span_p, max_span_length):
    """Tiles each row's words with consecutive spans of i.i.d. truncated-geometric lengths (in words).

    Returns span_id (batch, seq_len) int32, the span of each candidate position, and
    span_lengths (batch, seq_len) int32, the length in words drawn for span 0, 1, ... (the last span of
    a row is cut by the row's end).
    """
    word_id = word_ids(candidate, continuation)
    span_lengths = sample_span_lengths(noise.dense(hashing.SPAN_LENGTH), span_p, max_span_length)
    span_starts = tf.cumsum(span_lengths, axis=1, exclusive=True)  # (batch, spans), in words
    span_id = tf.searchsorted(span_starts, word_id, side="right") - 1  # (batch, seq_len)
    return span_id, span_lengths


class SpanSelector:
    """SpanBERT: spans of words with lengths ~ Geometric(span_p) truncated at max_span_length (and
    renormalised), starting at word starts. The row's words are tiled with such spans; spans are chosen
    in random order until the budget is spent, the last one cut at the budget as in SpanBERT (it may
    end inside a word), so every row masks exactly `budget` tokens, as token masking does."""

    def __init__(self, max_selections, span_p, max_span_length):
        self.max_selections = max_selections
        self.span_p = span_p
        self.max_span_length = max_span_length

    def __call__(self, candidate, continuation, budget, noise):
        span_id, _ = span_ids(candidate, continuation, noise, self.span_p, self.max_span_length)
        selected = select_groups_cut_last(candidate, span_id, budget, noise.dense(hashing.SELECTION))
        sequence_length = candidate.shape[-1]
        return sorted_slots(tf.range(sequence_length), selected, self.max_selections, sequence_length)


def make_selector(config, max_selections):
    """The selector object for `config.strategy` (a MaskingConfig)."""
    selectors = {
        "token": lambda: TokenSelector(max_selections),
        "whole_word": lambda: WholeWordSelector(max_selections),
        "span": lambda: SpanSelector(max_selections, config.span_p, config.max_span_length),
    }
    return selectors[config.strategy]()
