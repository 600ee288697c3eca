"""The in-graph tokenizers: keras-hub's WordPieceTokenizer, BytePairTokenizer and SentencePieceTokenizer.

`Vocabulary.tokenizer()` picks the one of its kind; `make_tokenizer` is the WordPiece one over a token list.
"""

import keras_hub
import tensorflow as tf

from keras_mlm.tokenizers.vocab import SPECIAL_TOKENS, SUFFIX_INDICATOR, UNK, infer_lowercase


def make_tokenizer(tokens, lowercase=None, strip_accents=False, special_tokens_in_strings=False, sequence_length=None):
    """A WordPiece tokenizer for a vocabulary (list of tokens).

    `lowercase=None` infers it from the vocabulary (no upper-case letters -> lowercase).
    `special_tokens_in_strings=True` makes a literal "[MASK]" in the text the mask token (fill-mask);
    corpus text is tokenized with it off, so "[MASK]" written in a book stays ordinary characters.
    """
    if lowercase is None:
        lowercase = infer_lowercase(tokens)
    return keras_hub.tokenizers.WordPieceTokenizer(
        vocabulary=list(tokens),
        sequence_length=sequence_length,
        lowercase=lowercase,
        strip_accents=strip_accents,
        suffix_indicator=SUFFIX_INDICATOR,
        oov_token=UNK,
        special_tokens=list(SPECIAL_TOKENS),
        special_tokens_in_strings=special_tokens_in_strings,
    )


def make_piece_tokenizer(vocabulary, special_tokens_in_strings=False, sequence_length=None):
    """The in-graph tokenizer of a byte-level BPE or SentencePiece `Vocabulary` (keras-hub layers).

    BPE: keras-hub's BytePairTokenizer (vocabulary dict + merges; its split regex is keras-hub's RE2
    rendering of GPT-2's, so a few contractions split differently from Hugging Face's learner, e.g.
    "go'st" -> "'", "st"; ids always come from this layer, in `prepare`, fill-mask and export alike).
    SentencePiece: keras-hub's SentencePieceTokenizer over the model proto.
    With `special_tokens_in_strings`, the mask token written in the text becomes the mask id (BPE: an
    unsplittable token; SentencePiece: the mask piece made user-defined) and the bare space piece the
    tokenizer puts before it is dropped (`MaskTextTokenizer`).
    """
    from keras_mlm.tokenizers.vocabulary import BPE_SPACE, SENTENCEPIECE_SPACE, sentencepiece_proto_with_user_mask

    if vocabulary.kind == "bpe":
        layer = keras_hub.tokenizers.BytePairTokenizer(
            vocabulary={t: i for i, t in enumerate(vocabulary.tokens)},
            merges=list(vocabulary.merges),
            sequence_length=None if special_tokens_in_strings else sequence_length,
            unsplittable_tokens=[vocabulary.mask_token] if special_tokens_in_strings else [],
        )
        space = BPE_SPACE
    else:
        proto = sentencepiece_proto_with_user_mask(vocabulary) if special_tokens_in_strings else vocabulary.model_proto
        layer = keras_hub.tokenizers.SentencePieceTokenizer(
            proto=proto, sequence_length=None if special_tokens_in_strings else sequence_length
        )
        space = SENTENCEPIECE_SPACE
    if not special_tokens_in_strings:
        return layer
    space_id = {t: i for i, t in enumerate(vocabulary.tokens)}.get(space)
    return MaskTextTokenizer(layer, vocabulary.mask_id, space_id, sequence_length)


class MaskTextTokenizer:
    """Wraps a keras-hub tokenizer for text with written masks: drops a bare space piece right before a
    mask id (in training a mask replaces a whole word-start piece, space included). Same call
    convention as keras-hub's layers: ragged ids in a graph, lists of ids eagerly."""

    def __init__(self, layer, mask_id, space_id, sequence_length=None):
        self.layer, self.mask_id, self.space_id, self.sequence_length = layer, mask_id, space_id, sequence_length

    def __call__(self, texts):
        if tf.executing_eagerly():
            # keras-hub's layer answers eagerly with lists; the space before a mask is dropped in Python.
            # (Tracing `_tokenize` in a tf.function instead cost ~10 s per new FillMask and batch size for
            # BPE, measured on 2 shared cores; this path gives the same ids in 0.03 s.)
            rows = [[int(i) for i in row] for row in self.layer(texts)]
            if self.space_id is not None:
                rows = [[i for k, i in enumerate(row) if not (i == self.space_id and row[k + 1 : k + 2] == [self.mask_id])] for row in rows]
            if self.sequence_length is not None:
                rows = [(row + [0] * self.sequence_length)[: self.sequence_length] for row in rows]
            return rows
        return self._tokenize(texts)

    def _tokenize(self, texts):
        ids = self.layer(texts)
        if self.space_id is not None:
            ids = _drop_space_before(ids, self.space_id, self.mask_id)
        if self.sequence_length is not None:
            ids = ids.to_tensor(shape=[None, self.sequence_length])
        return ids

    def detokenize(self, ids):
        return self.layer.detokenize(ids)


def _drop_space_before(ids, space_id, mask_id):
    """ragged (batch, None) ids without the `space_id` pieces directly followed by `mask_id` in their row."""
    values = ids.flat_values  # (pieces,)
    next_values = tf.concat([values[1:], tf.fill([1], tf.constant(-1, values.dtype))], axis=0)
    ends = tf.boolean_mask(ids.row_limits() - 1, ids.row_lengths() > 0)  # last piece of each non-empty row
    last_in_row = tf.scatter_nd(
        tf.reshape(ends, [-1, 1]), tf.ones_like(ends, tf.bool), tf.shape(values, out_type=ends.dtype)
    )  # (pieces,)
    drop = tf.equal(values, space_id) & tf.equal(next_values, mask_id) & ~last_in_row
    return tf.ragged.boolean_mask(ids, ids.with_flat_values(~drop))
