"""Sentence pairs for BERT's next-sentence prediction (NSP) and ALBERT's sentence-order prediction (SOP).

Packed rows -> pair rows of the same length, per batch, inside `tf.data`:

    [CLS] doc1 (end) [SEP] doc2 .............................. [SEP] doc3 (start)     <- a packed row
                           |------ the row's longest piece -----|
                           |---- A ----|cut|-------- B ---------|
    [CLS] A [SEP] B [SEP] [PAD] ...                                                   <- its pair row
      0   0   0   1   1    0                                                          <- segment_ids

A piece is a run of text between two of [CLS], [SEP], [PAD]: text of one document, in order. The
longest piece of each row is cut at a uniformly drawn point into A and B (consecutive text of one
document, both non-empty), then the pair is fitted into the row: while it is too long the longer side
loses a token, A at its start and B at its end, so the two stay adjacent at the cut (BERT's
`truncate_seq_pair` trims the longer side too, at a random end).

- "nsp" (BERT): with probability 1/2, B is replaced by a span of the same length from the longest
  piece of another row of the batch (drawn uniformly among the other rows, at a uniform offset);
  label 1 = "not next", 0 = "is next". Matching B's length keeps the pair's length (and the row's
  padding) from telling the two classes apart. As with BERT's own random-document pick, the other row
  can hold another part of the same document; BERT redraws when it picks the same document, which
  rows without document ids cannot do. Then B is still not the text after A (the label holds), only
  the topic cue is gone, as in SOP. How often, measured on shards of 128-id rows, batches of 128
  drawn from all rows: wikitext-2 validation (1,161 documents) 0.5% of negatives, 12 Gutenberg books
  split into paragraphs (29,502 documents) 0%, the same 12 books as one document each 11.9% (about
  the sum of the squared document shares: many documents make it rare).
- "sop" (ALBERT): with probability 1/2, A and B trade places ([CLS] B [SEP] A [SEP]); label 1 =
  swapped, 0 = in order.

A row whose longest piece has fewer than 2 tokens (the last, padded row can be one) cannot make a
pair: it gets `pair_weights` 0 (and still serves masked-LM). Randomness is a hash of (seed, step,
row index in the batch) (`masking.hashing`, on a key salted apart from the masker's), so a run
resumed at step k sees the pairs the uninterrupted run saw.

`pair_pretraining_dataset` is `pretraining_dataset` (same shuffle, repeat, resume and distribution)
with `PairMasker` in place of the masker: pairs first, then masking of the pair rows (the new [CLS]
and [SEP]s are specials to the masker, so never masked). Its elements are

    x = {"token_ids", "segment_ids", "padding_mask", "mask_positions"}  (the masked-LM inputs)
    y = {"mask_ids": (batch, n_masks) int32, "pair_labels": (batch,) int32}
    sample_weight = {"mask_weights": (batch, n_masks) float32, "pair_weights": (batch,) float32}

which `keras_mlm.models.pair_pretrainer.PairPretrainer.fit` consumes.
"""

import numbers

import tensorflow as tf

from keras_mlm.data.dataset import pretraining_dataset
from keras_mlm.data.prepare import read_manifest
from keras_mlm.errors import UserInputError
from keras_mlm.masking import hashing

OBJECTIVES = ("nsp", "sop")

_PAIR_SALT = 0x6A09E667  # keeps the pairs' row keys apart from the masker's, which uses the same seed
# One 32-bit value per row and stream, from the row key.
_CUT, _LABEL, _PARTNER, _OFFSET = 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19


def _uniform_below(bits, n):
    """(batch,) uint32 -> (batch,) int32 uniform in [0, n) for int32 n >= 1 (exact in float64)."""
    fraction = tf.cast(bits, tf.float64) * 2.0**-32  # [0, 1)
    return tf.cast(tf.floor(fraction * tf.cast(n, tf.float64)), tf.int32)


class SentencePairs:
    """Packed rows -> sentence-pair rows with segment ids and a pair label per row.

    Args:
        objective: "nsp" or "sop".
        sequence_length: int, the length of every row (in and out).
        cls_id, sep_id, pad_id: the vocabulary's ids of [CLS], [SEP] and [PAD] (`from_vocabulary`).
        seed: int; the pairs of a batch are a function of (seed, step, row index).

    Call args:
        token_ids: (batch, sequence_length) int packed rows. For "nsp" the batch needs 2 rows or more
            (with one, the "other row" is the row itself).
        step: scalar int, e.g. the batch counter of `Dataset.enumerate()`.

    Returns:
        {"token_ids": (batch, seq) int32 `[CLS] A [SEP] B [SEP] [PAD]...`, "segment_ids": (batch, seq)
        int32 (1 on `B [SEP]`, 0 elsewhere), "padding_mask": (batch, seq) bool, "pair_labels": (batch,)
        int32, "pair_weights": (batch,) float32 (0 where the row held no pair)}.
    """

    def __init__(self, objective, sequence_length, cls_id, sep_id, pad_id, seed=0):
        if objective not in OBJECTIVES:
            raise UserInputError(f"sentence-pair objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
        if not isinstance(sequence_length, numbers.Integral) or sequence_length < 5:
            raise UserInputError(f"a sentence pair needs rows of at least 5 ids, got sequence_length={sequence_length!r}")
        self.objective = objective
        self.sequence_length = int(sequence_length)
        self.cls_id, self.sep_id, self.pad_id = int(cls_id), int(sep_id), int(pad_id)
        self.seed = int(seed)
        self._key = int(hashing.mix32_numpy(hashing.seed_key(self.seed, deterministic=False) ^ _PAIR_SALT))

    @classmethod
    def from_vocabulary(cls, vocabulary, objective, sequence_length, seed=0):
        """For a `Vocabulary`, a vocabulary path or a WordPiece token list."""
        from keras_mlm.tokenizers.vocabulary import as_vocabulary

        vocabulary = as_vocabulary(vocabulary)
        return cls(objective, sequence_length, vocabulary.cls_id, vocabulary.sep_id, vocabulary.pad_id, seed=seed)

    def __call__(self, token_ids, step):
        with tf.device("/cpu:0"):  # preprocessing, like the masker: the same kernels in tf.data and eagerly
            return self._pairs(token_ids, step)

    def _longest_pieces(self, ids):
        """(start, length) of each row's longest run of text, the first of equal ones; (batch,) each."""
        seq_len = self.sequence_length
        batch_size = tf.shape(ids)[0]
        text = (ids != self.cls_id) & (ids != self.sep_id) & (ids != self.pad_id)  # (batch, seq)
        starts = text & ~tf.pad(text[:, :-1], [[0, 0], [1, 0]])  # (batch, seq): a run of text begins
        piece = tf.cumsum(tf.cast(starts, tf.int32), axis=1) * tf.cast(text, tf.int32)  # (batch, seq): 1, 2, ...; 0 off text
        slots = tf.range(batch_size)[:, None] * (seq_len + 1) + piece  # (batch, seq): one slot per (row, piece)
        lengths = tf.math.unsorted_segment_sum(tf.cast(text, tf.int32), slots, batch_size * (seq_len + 1))
        lengths = tf.reshape(lengths, [batch_size, seq_len + 1])[:, 1:]  # (batch, seq): length of piece 1, 2, ...
        longest = tf.argmax(lengths, axis=1, output_type=tf.int32) + 1  # (batch,)
        start = tf.argmax(tf.cast(piece == longest[:, None], tf.int32), axis=1, output_type=tf.int32)  # (batch,)
        return start, tf.reduce_max(lengths, axis=1)

    def _pairs(self, token_ids, step):
        seq_len = self.sequence_length
        ids = tf.ensure_shape(tf.cast(token_ids, tf.int32), [None, seq_len])  # (batch, seq)
        batch_size = tf.shape(ids)[0]
        rows = tf.range(batch_size)  # (batch,)
        row_keys = hashing.training_row_keys(self._key, step, batch_size)  # (batch,) uint32

        def bits(stream):
            return hashing.mix32(tf.bitwise.bitwise_xor(row_keys, tf.constant(stream, tf.uint32)))  # (batch,)

        labels = tf.cast(tf.bitwise.right_shift(bits(_LABEL), 31), tf.int32)  # (batch,) 0 or 1, each with p = 1/2
        flipped = labels == 1

        # 1. Each row's longest piece, cut into A = [start, start + cut) and B = [start + cut, start + length).
        start, length = self._longest_pieces(ids)  # (batch,) each
        drawn = 1 + _uniform_below(bits(_CUT), tf.maximum(length - 1, 1))  # (batch,) in [1, length - 1]
        cut = tf.where(length >= 2, drawn, length)  # a piece of 0 or 1 ids makes no pair: A = it, B empty
        a, b = cut, length - cut

        # 2. Fit [CLS] A [SEP] B [SEP] into the row: the longer side is trimmed first (A at its start, B at
        #    its end), so the shorter keeps min(its length, budget // 2) and the longer the rest.
        budget = seq_len - 3
        short = tf.minimum(tf.minimum(a, b), budget // 2)
        long = tf.minimum(tf.maximum(a, b), budget - short)
        a, b = tf.where(a <= b, short, long), tf.where(a <= b, long, short)
        first = (rows, start + cut - a, a)  # (row, start, length) of the first segment
        second = (rows, start + cut, b)  # ... and of the second

        # 3. The objective's other half of the pairs.
        if self.objective == "nsp":
            # B from another row: a span as long as B, at a uniform offset in that row's longest piece.
            others = tf.maximum(batch_size - 1, 1)
            partner = (rows + 1 + _uniform_below(bits(_PARTNER), others)) % batch_size  # (batch,) != row when batch > 1
            partner_start, partner_length = tf.gather(start, partner), tf.gather(length, partner)
            span = tf.minimum(b, partner_length)
            offset = _uniform_below(bits(_OFFSET), partner_length - span + 1)
            second = tuple(tf.where(flipped, new, old)
                           for new, old in zip((partner, partner_start + offset, span), second))
        else:
            # B before A.
            first, second = (tuple(tf.where(flipped, s, f) for f, s in zip(first, second)),
                             tuple(tf.where(flipped, f, s) for f, s in zip(first, second)))
        (row1, start1, length1), (row2, start2, length2) = first, second

        # 4. Write the pair rows: each position reads its token from the first or the second span.
        position = tf.range(seq_len)[None, :]  # (1, seq)
        length1, length2 = length1[:, None], length2[:, None]  # (batch, 1)
        in_first = (position >= 1) & (position <= length1)  # (batch, seq)
        in_second = (position >= length1 + 2) & (position <= length1 + length2 + 1)
        is_sep = (position == length1 + 1) | (position == length1 + length2 + 2)
        source = tf.where(
            in_first,
            (row1 * seq_len + start1)[:, None] + position - 1,
            (row2 * seq_len + start2)[:, None] + position - length1 - 2,
        )  # (batch, seq): index into the flattened batch (meaningful where in_first or in_second)
        source = tf.clip_by_value(source, 0, batch_size * seq_len - 1)
        text = tf.gather(tf.reshape(ids, [-1]), source)  # (batch, seq)
        specials = tf.where(position == 0, self.cls_id, tf.where(is_sep, self.sep_id, self.pad_id))
        pair_ids = tf.where(in_first | in_second, text, specials)  # (batch, seq)
        segment_ids = tf.cast(in_second | (position == length1 + length2 + 2), tf.int32)
        return {
            "token_ids": pair_ids,
            "segment_ids": segment_ids,
            "padding_mask": pair_ids != self.pad_id,
            "pair_labels": labels,
            "pair_weights": tf.cast((length1[:, 0] >= 1) & (length2[:, 0] >= 1), tf.float32),
        }


class PairMasker:
    """Pairs, then masking: packed rows -> (x, y, sample_weight) for `PairPretrainer`, in `tf.data` or eagerly.

    `pairs` (a `SentencePairs`) and `masker` (an `MLMMasker`) must agree on the sequence length, and the
    masker must count the pairs' [CLS], [SEP] and [PAD] as specials (so it never masks them). Both are
    called with the same `step`; their random streams are independent (differently salted keys).
    Returns x = {token_ids (masked pair rows), segment_ids (the pair's), padding_mask, mask_positions},
    y = {mask_ids, pair_labels}, sample_weight = {mask_weights, pair_weights}.
    """

    def __init__(self, pairs, masker):
        if pairs.sequence_length != masker.sequence_length:
            raise UserInputError(
                f"sentence pairs of {pairs.sequence_length} ids but a masker for {masker.sequence_length}"
            )
        unmaskable = set(masker.special_token_ids) | {masker.padding_token_id}
        missing = {pairs.cls_id, pairs.sep_id, pairs.pad_id} - unmaskable
        if missing:
            raise UserInputError(f"the masker would mask the pairs' special ids {sorted(missing)}: another vocabulary?")
        self.pairs = pairs
        self.masker = masker
        self.sequence_length = masker.sequence_length  # what `pretraining_dataset` reads of a masker

    def __call__(self, token_ids, step):
        pairs = self.pairs(token_ids, step)
        x, mask_ids, mask_weights = self.masker(pairs["token_ids"], step=step)
        x = {**x, "segment_ids": pairs["segment_ids"]}
        return (
            x,
            {"mask_ids": mask_ids, "pair_labels": pairs["pair_labels"]},
            {"mask_weights": mask_weights, "pair_weights": pairs["pair_weights"]},
        )


def pair_pretraining_dataset(
    directory,
    batch_size,
    masker,
    objective,
    *,
    seed=0,
    shuffle_buffer=10_000,
    repeat=True,
    start_step=0,
    input_context=None,
    vocabulary=None,
):
    """`pretraining_dataset` for "nsp" or "sop": the same rows, batches, resume and distribution, each
    batch turned into sentence pairs (seeded by `masker.seed`) and then masked (see `PairMasker`).

    `vocabulary` (a `Vocabulary`, a path or a WordPiece token list) checks the shards and gives the
    [CLS]/[SEP]/[PAD] ids; without it they come from the vocabulary saved beside the shards.
    """
    from keras_mlm.tokenizers.vocabulary import as_vocabulary, find_saved

    read_manifest(directory)  # a clear error when it is no shards directory
    if objective not in OBJECTIVES:
        raise UserInputError(f"sentence-pair objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    per_pipeline = input_context.get_per_replica_batch_size(batch_size) if input_context else batch_size
    if objective == "nsp" and per_pipeline < 2:
        raise UserInputError(f"next-sentence prediction draws its negatives from other rows of a batch: "
                             f"batches of at least 2 rows are needed, got {per_pipeline}")
    if vocabulary is None:
        saved = find_saved(directory)
        if saved is None:
            raise UserInputError(f"{directory}: no vocabulary beside the shards; pass the vocabulary")
        tokens = as_vocabulary(saved)
    else:
        tokens = as_vocabulary(vocabulary)
    pairs = SentencePairs.from_vocabulary(tokens, objective, masker.sequence_length, seed=masker.seed)
    return pretraining_dataset(
        directory, batch_size, PairMasker(pairs, masker), seed=seed, shuffle_buffer=shuffle_buffer, repeat=repeat,
        start_step=start_step, input_context=input_context, vocabulary=vocabulary,
    )
