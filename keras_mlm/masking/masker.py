"""The MLM masker: packed rows of token ids -> (x, y, sample_weight) for masked-LM training.

Per row: the candidates are the tokens that are neither special nor padding; the budget is
n = min(max_selections, round(selection_rate * candidates)), at least 1 when the row has a candidate
(as Google BERT; round half to even). The selector (token / whole_word / span, see `selectors`) picks
the positions, then each picked token independently becomes [MASK] (mask_token_rate), a uniformly drawn
non-special token (random_token_rate) or stays (keep_rate) — per token, as Google BERT does, also under
whole-word and span masking (see `chooser`).

Dynamic (RoBERTa): a fresh mask every time a row is seen, yet reproducible, because all randomness is
a hash of (seed, step, row index in the batch, position), see `hashing`. Feed `step` from the
dataset so that training restarted at step k sees the masks it saw the first time:

    ds = ds.batch(32, drop_remainder=True).enumerate().map(lambda step, ids: masker(ids, step=step))

With `deterministic=True` (evaluation) the mask is a hash of (seed, row content, position): the same
row gets the same mask in any batch, at any place in it, in every epoch.
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from keras_mlm.errors import UserInputError
from keras_mlm.masking import hashing
from keras_mlm.masking.chooser import MaskValuesChooser
from keras_mlm.masking.config import MaskingConfig
from keras_mlm.masking.selectors import make_selector, selection_budget
from keras_mlm.tokenizers.vocab import MASK, SUFFIX_INDICATOR, special_token_ids


def _normalise_ids(name, ids, vocabulary_size):
    """A sorted list of distinct Python ints in [0, vocabulary_size)."""
    ids = sorted({int(i) for i in np.asarray(ids, np.int64).reshape(-1)})
    if ids and not (0 <= ids[0] and ids[-1] < vocabulary_size):
        bad = ids[0] if ids[0] < 0 else ids[-1]
        raise UserInputError(f"MLMMasker.{name} must be ids in [0, {vocabulary_size}), got {bad}")
    return ids


def _continuation_id_list(continuation_ids, vocabulary_size):
    """Accepts ids of `##` pieces or a boolean table of length vocabulary_size; returns sorted ids."""
    array = np.asarray(continuation_ids)
    if array.dtype == np.bool_:
        if array.shape != (vocabulary_size,):
            raise UserInputError(
                f"MLMMasker.continuation_ids as a boolean table must have shape ({vocabulary_size},), got {array.shape}"
            )
        return [int(i) for i in np.flatnonzero(array)]
    return _normalise_ids("continuation_ids", array, vocabulary_size)


@keras.saving.register_keras_serializable(package="keras_mlm")
class MLMMasker(keras.layers.Layer):
    """Masks packed rows of token ids for masked-LM training, inside `tf.data` or eagerly.

    Args:
        vocabulary_size: int, ids are in [0, vocabulary_size).
        mask_token_id: int, id of [MASK].
        special_token_ids: ids never selected and never drawn as random replacements ([PAD], [UNK],
            [CLS], [SEP], [MASK], ...). `padding_token_id` is added if missing.
        sequence_length: int, length of every row (static shapes).
        continuation_ids: ids of `##` continuation pieces (or a boolean table over the vocabulary);
            needed by the "whole_word" and "span" strategies.
        selection_rate, mask_token_rate, random_token_rate, keep_rate, max_selections, strategy,
            span_p, max_span_length: see `MaskingConfig`.
        seed: int, the seed of every mask this layer makes.
        deterministic: False (training): masks depend on (seed, step, row index, position).
            True (evaluation): masks depend on (seed, row content, position); `step` is ignored.
        padding_token_id: int, the id of [PAD] (0 in our vocabularies).

    Call args:
        token_ids: (batch, sequence_length) or (sequence_length,) int tensor of packed rows.
        step: scalar int (e.g. the batch counter from `Dataset.enumerate()`). When None in training
            mode, an internal counter (a tf.Variable starting at 0, incremented on each such call,
            eagerly or in a graph) stands in, so successive calls differ; pass `step` to make masks
            reproducible across restarts and independent of call order (`num_parallel_calls`).

    Returns:
        (x, y, sample_weight): x = {"token_ids", "segment_ids", "padding_mask", "mask_positions"},
        y = mask_ids, sample_weight = mask_weights. token_ids/segment_ids (batch, sequence_length)
        int32 (segment_ids all 0), padding_mask bool, mask_positions/mask_ids (batch, max_selections)
        int32 with positions in increasing order, mask_weights float32; unused slots have position 0,
        id 0 and weight 0.
    """

    def __init__(
        self,
        vocabulary_size,
        mask_token_id,
        special_token_ids,
        sequence_length,
        continuation_ids=None,
        selection_rate=0.15,
        mask_token_rate=0.8,
        random_token_rate=0.1,
        max_selections=None,
        strategy="token",
        span_p=0.2,
        max_span_length=10,
        seed=0,
        deterministic=False,
        keep_rate=None,
        padding_token_id=0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.masking_config = MaskingConfig(
            selection_rate=selection_rate,
            mask_token_rate=mask_token_rate,
            random_token_rate=random_token_rate,
            keep_rate=keep_rate,
            max_selections=max_selections,
            strategy=strategy,
            span_p=span_p,
            max_span_length=max_span_length,
        )
        for name, value in (("vocabulary_size", vocabulary_size), ("sequence_length", sequence_length)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise UserInputError(f"MLMMasker.{name} must be a positive integer, got {value!r}")
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
            raise UserInputError(f"MLMMasker.seed must be an integer, got {seed!r}")
        for name, value in (("mask_token_id", mask_token_id), ("padding_token_id", padding_token_id)):
            if not isinstance(value, (int, np.integer)) or not 0 <= value < vocabulary_size:
                raise UserInputError(f"MLMMasker.{name} must be an id in [0, {vocabulary_size}), got {value!r}")
        self.vocabulary_size = int(vocabulary_size)
        self.mask_token_id = int(mask_token_id)
        self.padding_token_id = int(padding_token_id)
        self.sequence_length = int(sequence_length)
        self.special_token_ids = _normalise_ids("special_token_ids", special_token_ids, self.vocabulary_size)
        self.continuation_ids = (
            None if continuation_ids is None else _continuation_id_list(continuation_ids, self.vocabulary_size)
        )
        if strategy != "token" and self.continuation_ids is None:
            raise UserInputError(
                f"MLMMasker.continuation_ids is required for strategy={strategy!r} (the ids of '##' pieces; "
                "MLMMasker.from_vocabulary builds it)"
            )
        self.seed = int(seed)
        self.deterministic = bool(deterministic)
        self.max_selections = self.masking_config.resolve_max_selections(self.sequence_length)

        # Per-vocabulary tables.
        self._is_special = np.zeros(self.vocabulary_size, np.bool_)
        self._is_special[self.special_token_ids + [self.padding_token_id]] = True
        replacement_ids = np.flatnonzero(~self._is_special)
        if len(replacement_ids) == 0:
            raise UserInputError("MLMMasker.special_token_ids covers the whole vocabulary: nothing to mask")
        self._is_continuation = np.zeros(self.vocabulary_size, np.bool_)
        self._is_continuation[self.continuation_ids or []] = True
        # Strategy objects and random-stream keys.
        self._selector = make_selector(self.masking_config, self.max_selections)
        self._chooser = MaskValuesChooser(
            self.mask_token_id,
            replacement_ids,
            self.masking_config.mask_token_rate,
            self.masking_config.random_token_rate,
        )
        self._seed_key = hashing.seed_key(self.seed, self.deterministic)
        self._position_keys = hashing.position_keys(self.sequence_length)
        with tf.device("/cpu:0"):
            self._step_counter = tf.Variable(0, dtype=tf.int64, trainable=False, name="step_counter")
        self.built = True

    @classmethod
    def from_vocabulary(cls, tokens, sequence_length, config=MaskingConfig(), seed=0, deterministic=False):  # noqa: B008 (frozen)
        """Builds the masker for a vocabulary: a `Vocabulary` of any kind (its special ids, pad id and
        word boundaries), or a WordPiece list of tokens (id = index), e.g. from `load_vocabulary`, whose
        specials are the `[...]` tokens and continuation pieces those starting with '##'."""
        from keras_mlm.tokenizers.vocabulary import Vocabulary

        if isinstance(tokens, Vocabulary):
            return cls(
                vocabulary_size=len(tokens),
                mask_token_id=tokens.mask_id,
                special_token_ids=tokens.special_token_ids,
                sequence_length=sequence_length,
                continuation_ids=tokens.continuation_ids,
                seed=seed,
                deterministic=deterministic,
                padding_token_id=tokens.pad_id,
                **dataclasses.asdict(config),
            )
        tokens = list(tokens)
        if MASK not in tokens:
            raise UserInputError(f"vocabulary has no {MASK} token")
        return cls(
            vocabulary_size=len(tokens),
            mask_token_id=tokens.index(MASK),
            special_token_ids=special_token_ids(tokens),
            sequence_length=sequence_length,
            continuation_ids=[i for i, t in enumerate(tokens) if t.startswith(SUFFIX_INDICATOR)],
            seed=seed,
            deterministic=deterministic,
            **dataclasses.asdict(config),
        )

    def call(self, token_ids, step=None):
        # Preprocessing runs on the CPU, like tf.data, so eager calls use the very same kernels.
        with tf.device("/cpu:0"):
            return self._mask(token_ids, step)

    def _mask(self, token_ids, step):
        token_ids = tf.convert_to_tensor(token_ids)
        if not token_ids.dtype.is_integer:
            raise UserInputError(f"MLMMasker expects integer token ids, got dtype {token_ids.dtype.name}")
        unbatched = token_ids.shape.rank == 1
        if unbatched:
            token_ids = token_ids[None]
        if token_ids.shape.rank != 2 or token_ids.shape[-1] not in (None, self.sequence_length):
            raise UserInputError(
                f"MLMMasker expects token ids of shape (batch, {self.sequence_length}), got {token_ids.shape}"
            )
        ids = tf.ensure_shape(tf.cast(token_ids, tf.int32), [None, self.sequence_length])  # (batch, seq_len)
        batch_size = tf.shape(ids)[0]

        # 1. Where a mask may go: not a special token, not padding.
        candidate = ~tf.gather(tf.constant(self._is_special), ids)  # (batch, seq_len)
        continuation = None  # (batch, seq_len) bool where a '##' piece is; token masking needs none
        if self.masking_config.strategy != "token":
            continuation = tf.gather(tf.constant(self._is_continuation), ids)

        # 2. Randomness: a key per row; 32-bit noise per (row, position, stream) derives from it.
        if self.deterministic:
            row_keys = hashing.content_row_keys(self._seed_key, ids)  # (batch,)
        else:
            if step is None:
                step = self._step_counter.assign_add(1, read_value=True) - 1
            row_keys = hashing.training_row_keys(self._seed_key, step, batch_size)  # (batch,)
        noise = hashing.PositionNoise(row_keys, self._position_keys)

        # 3. How many tokens per row, and which: slots (batch, max_selections), positions increasing.
        budget = selection_budget(candidate, self.masking_config.selection_rate, self.max_selections)  # (batch,)
        mask_positions, used = self._selector(candidate, continuation, budget, noise)

        # 4. Original ids at the slots, and what they become ([MASK] / random / unchanged).
        row_offsets = tf.range(batch_size)[:, None] * self.sequence_length  # (batch, 1)
        flat_ids = tf.reshape(ids, [-1])  # (batch * seq_len,)
        mask_ids = tf.where(used, tf.gather(flat_ids, mask_positions + row_offsets), 0)  # (batch, max_selections)
        slot_noise = noise.at((hashing.DECISION, hashing.REPLACEMENT), mask_positions)  # (batch, max_selections, 2)
        new_ids = self._chooser(mask_ids, used, slot_noise[..., 0], slot_noise[..., 1])

        # 5. Write them into the rows: add (new - old) at used slots, 0 at unused ones (all at position 0).
        changes = tf.where(used, new_ids - mask_ids, 0)  # (batch, max_selections)
        flat_ids = tf.tensor_scatter_nd_add(
            flat_ids, tf.reshape(mask_positions + row_offsets, [-1, 1]), tf.reshape(changes, [-1])
        )
        masked_ids = tf.reshape(flat_ids, [batch_size, self.sequence_length])  # (batch, seq_len)

        x = {
            "token_ids": masked_ids,
            "segment_ids": tf.zeros_like(ids, tf.int32),
            "padding_mask": tf.not_equal(ids, self.padding_token_id),
            "mask_positions": mask_positions,
        }
        y = mask_ids
        sample_weight = tf.cast(used, tf.float32)
        if unbatched:
            x = {name: value[0] for name, value in x.items()}
            y, sample_weight = y[0], sample_weight[0]
        return x, y, sample_weight

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "mask_token_id": self.mask_token_id,
                "special_token_ids": list(self.special_token_ids),
                "sequence_length": self.sequence_length,
                "continuation_ids": None if self.continuation_ids is None else list(self.continuation_ids),
                **dataclasses.asdict(self.masking_config),
                "seed": self.seed,
                "deterministic": self.deterministic,
                "padding_token_id": self.padding_token_id,
            }
        )
        return config
