"""Model rows -> top-k words for every [MASK], in the graph, with `FillMask`'s semantics.

A row's masks are the mask ids among its real (padding_mask = 1) tokens. Rows may hold different
numbers of masks, so the outputs have one slot per mask of the row with the most, and the slots a
row does not use are marked: position -1, id -1, token "", probability 0.

Probabilities are the softmax over the vocabulary with every special token's probability set to 0
and the rest renormalised (a special token is never an answer), exactly as `FillMask` does.

Predicted tokens are returned as `FillMask` shows them (`prediction_text`): WordPiece tokens as they
are, byte-level BPE pieces decoded to text (" the" for `Ġthe`), SentencePiece pieces with `▁` as a
space. `filled` is the filled row written as `FillMask.detokenize` (`Vocabulary.decode`) writes it.
"""

import re

import numpy as np
import tensorflow as tf

from keras_mlm.export import guards
from keras_mlm.inference.fill_mask import prediction_text
from keras_mlm.tokenizers import vocab as vocab_lib

UNUSED = -1
"""Position and id of a mask slot a row does not use."""


class FillMaskGraph:
    """Callable in a tf.function: (token_ids, padding_mask) (batch, seq) int32 -> dict of top-k outputs.

    `vocabulary`: a `Vocabulary` of any kind, or a WordPiece token list.
    """

    def __init__(self, model, vocabulary, top_k):
        from keras_mlm.tokenizers.vocabulary import as_vocabulary

        self.model = model
        self.vocabulary = as_vocabulary(vocabulary)
        self.tokens = list(self.vocabulary.tokens)
        self.top_k = min(int(top_k), len(self.tokens))
        self.mask_id = self.vocabulary.mask_id
        words = np.ones(len(self.tokens), np.float32)
        words[self.vocabulary.special_token_ids] = 0.0
        self.words = words  # (vocab,) 1 for a word, 0 for a special token
        self.texts = [prediction_text(self.vocabulary, t) for t in self.tokens]  # (vocab,) what top_k_tokens shows

    def mask_positions(self, token_ids, padding_mask):
        """(batch, seq) -> (batch, n_masks) int32 positions of each row's masks, UNUSED-padded."""
        is_mask = tf.logical_and(tf.equal(token_ids, self.mask_id), tf.not_equal(padding_mask, 0))
        where = tf.cast(tf.where(is_mask), tf.int32)  # (total masks, 2): row, position (row-major order)
        positions = tf.RaggedTensor.from_value_rowids(where[:, 1], where[:, 0], nrows=tf.shape(token_ids)[0])
        return positions.to_tensor(default_value=UNUSED)  # (batch, n_masks)

    def __call__(self, token_ids, padding_mask, signature="fill_mask"):
        positions = self.mask_positions(token_ids, padding_mask)
        used = tf.not_equal(positions, UNUSED)  # (batch, n_masks)
        has_mask = tf.reduce_any(tf.equal(token_ids, self.mask_id) & tf.not_equal(padding_mask, 0), axis=1)
        positions = guards.checked(positions, [
            guards.require(has_mask, f"{signature}: row has no {self.tokens[self.mask_id]} (id {self.mask_id}) among its real tokens; rows:",
                           guards.failing_rows(has_mask))
        ])

        logits = self.model(
            {
                "token_ids": token_ids,
                "segment_ids": tf.zeros_like(token_ids),
                "padding_mask": padding_mask,
                "mask_positions": tf.maximum(positions, 0),  # unused slots read [CLS]; masked out below
            },
            training=False,
        )  # (batch, n_masks, vocab) float32
        probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1) * self.words
        probabilities = probabilities / tf.reduce_sum(probabilities, axis=-1, keepdims=True)
        values, ids = tf.math.top_k(probabilities, k=self.top_k)  # (batch, n_masks, k)

        used_k = tf.broadcast_to(used[..., None], tf.shape(ids))
        return {
            "mask_positions": positions,
            "top_k_ids": tf.where(used_k, ids, UNUSED),
            "top_k_probabilities": tf.where(used_k, values, 0.0),
        }

    def token_strings(self, ids):
        """Ids (any shape, UNUSED allowed) -> their tokens as text (`prediction_text`), "" for UNUSED."""
        return _lookup(self.texts, ids)

    def filled_texts(self, token_ids, positions, top_ids):
        """Each row with its masks replaced by the top-1 token, written as `FillMask.detokenize` writes
        it: specials dropped; WordPiece words joined by spaces with '##' pieces glued to the word before,
        BPE pieces' bytes joined, SentencePiece pieces joined with `▁` as a space (leading spaces dropped)."""
        used = tf.not_equal(positions, UNUSED)  # (batch, n_masks)
        rows = tf.cast(tf.where(used), tf.int32)  # (n, 2): row, slot
        columns = tf.gather_nd(positions, rows)  # (n,)
        updates = tf.gather_nd(top_ids[..., 0], rows)  # (n,)
        filled = tf.tensor_scatter_nd_update(token_ids, tf.stack([rows[:, 0], columns], axis=1), updates)  # (batch, seq)
        words = tf.gather(self.words, filled) > 0  # (batch, seq)
        kind = self.vocabulary.kind
        if kind == "wordpiece":
            pieces = tf.ragged.boolean_mask(_lookup(self.tokens, filled), words)  # ragged (batch, None)
            text = tf.strings.reduce_join(pieces, axis=1, separator=" ")  # (batch,)
            return tf.strings.regex_replace(text, " " + re.escape(vocab_lib.SUFFIX_INDICATOR), "")
        if kind == "bpe":
            pieces = tf.ragged.boolean_mask(_lookup(_bpe_piece_bytes(self.tokens), filled), words)
            text = tf.strings.reduce_join(pieces, axis=1)  # (batch,) the bytes of the text
            return tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="replace")  # a cut character -> U+FFFD
        pieces = tf.ragged.boolean_mask(_lookup(self.texts, filled), words)  # SentencePiece: ▁ already a space
        return tf.strings.regex_replace(tf.strings.reduce_join(pieces, axis=1), "^ +", "")


def _lookup(strings, ids):
    """`strings[ids]` (str or bytes) for ids of any shape; "" where an id is UNUSED."""
    table = tf.constant([s if isinstance(s, bytes) else s.encode("utf-8") for s in strings] + [b""], tf.string)  # -1 -> the last
    return tf.gather(table, tf.where(ids < 0, len(strings), ids))


def _bpe_piece_bytes(tokens):
    """Each byte-level BPE piece as the bytes it stands for (GPT-2's alphabet mapped back to bytes)."""
    from keras_mlm.tokenizers.vocabulary import _byte_decoder

    decoder = _byte_decoder()
    return [bytes(decoder[c] for c in token if c in decoder) for token in tokens]
