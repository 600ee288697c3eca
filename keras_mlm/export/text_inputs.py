"""Raw UTF-8 texts -> model rows inside the graph, exactly as `FillMask.encode` builds them.

    texts (batch,) string
      -> piece ids              the vocabulary's own in-graph tokenizer, its mask token recognised in the text
      -> [CLS] ids [SEP] [PAD]  plain TF ops: ragged concat, then to_tensor to the model's length
      -> token_ids (batch, sequence_length) int32

The tokenizer is the very one `FillMask` uses (`Vocabulary.tokenizer(special_tokens_in_strings=True)`),
traced into the graph. Per vocabulary kind (all keras-hub layers; their tensorflow-text ops are linked
by stock TF Serving since 2.12):

- wordpiece: WordPieceTokenizer: RegexSplitWithOffsets, CaseFoldUTF8 when lowercasing,
  FastWordpieceTokenizeWithOffsets. `[CLS] ... [SEP]`.
- bpe: BytePairTokenizer: RegexSplitWithOffsets, then core ops over lookup tables (vocabulary, merges,
  and a cache of words seen). `<s> ... </s>`; `[MASK]` in a text is read as `<mask>` (`MASK_ALIASES`).
- sentencepiece: SentencePieceTokenizer: SentencepieceOp, SentencepieceTokenizeOp over the model
  (the mask piece made user-defined so a written `[MASK]` is one piece). `[CLS] ... [SEP]`.

BPE and SentencePiece tokenizers hold TF resources (tables, the SentencePiece model): `resources` lists
the layers the SavedModel must track. Packing is written with core ops on purpose: keras-hub's packers
trim with `TFText>RoundRobinTrim`, which TF Serving before 2.20 does not have (tensorflow/serving#2267),
and a single segment needs no trimming at all: a text that does not fit is refused, as `FillMask`
refuses it.
"""

import re

import tensorflow as tf

from keras_mlm.export import guards
from keras_mlm.inference.fill_mask import MASK_ALIASES


class TextPacker:
    """Callable in a tf.function: (batch,) strings -> (batch, sequence_length) int32 token ids.

    `vocabulary`: a `Vocabulary` of any kind, or a WordPiece token list (`lowercase=None` infers its
    casing). Fails the request (INVALID_ARGUMENT, offending rows listed) when `texts` is not a vector,
    a text is not valid UTF-8, is blank, has no mask token (`require_mask=True`), or is longer than
    `sequence_length` with [CLS] and [SEP].
    """

    def __init__(self, vocabulary, sequence_length, lowercase=None, require_mask=True):
        from keras_mlm.tokenizers.vocabulary import as_vocabulary

        self.vocabulary = as_vocabulary(vocabulary, lowercase)
        self.tokens = list(self.vocabulary.tokens)
        self.sequence_length = int(sequence_length)
        self.require_mask = require_mask
        self.tokenizer = self.vocabulary.tokenizer(special_tokens_in_strings=True)
        self.pad_id, self.cls_id, self.sep_id, self.mask_id = (self.vocabulary.special_ids[r] for r in ("pad", "cls", "sep", "mask"))
        self.mask_aliases = MASK_ALIASES.get(self.vocabulary.kind, ())

    @property
    def resources(self):
        """The keras-hub layers whose TF resources the traced tokenizer captures (the exporter tracks
        them): BPE's lookup tables, SentencePiece's model. WordPiece keeps its model as a constant."""
        return [] if self.vocabulary.kind == "wordpiece" else [self.tokenizer.layer]

    def __call__(self, texts, signature="fill_mask_text"):
        cls_token, sep_token, mask_token = self.tokens[self.cls_id], self.tokens[self.sep_id], self.tokens[self.mask_id]
        texts = guards.check_rank(texts, 1, f"{signature}: texts", "(batch,)")
        # UTF-8 -> UTF-8 is the identity on valid text and replaces the bytes of invalid text.
        utf8 = tf.equal(tf.strings.unicode_transcode(texts, "UTF-8", "UTF-8", errors="replace"), texts)  # (batch,)
        blank = tf.equal(tf.strings.length(tf.strings.strip(texts)), 0)  # (batch,)
        texts = guards.checked(texts, [
            guards.require(utf8, f"{signature}: text is not valid UTF-8; rows:", guards.failing_rows(utf8)),
            guards.require(~blank, f"{signature}: empty text (give a sentence with a {mask_token}); rows:", guards.failing_rows(~blank)),
        ])
        for alias in self.mask_aliases:  # e.g. [MASK] written for a BPE model's <mask>
            texts = tf.strings.regex_replace(texts, re.escape(alias), mask_token)

        pieces = self.tokenizer(texts)  # ragged (batch, None) int32
        batch = tf.shape(texts)[0]
        lengths = tf.cast(pieces.row_lengths(), tf.int32) + 2  # (batch,) with [CLS] and [SEP]
        fits = lengths <= self.sequence_length
        checks = [
            guards.require(
                fits, f"{signature}: text longer than the model takes ({self.sequence_length} tokens with {cls_token} and {sep_token}); rows:",
                guards.failing_rows(fits), "lengths:", tf.boolean_mask(lengths, ~fits),
            )
        ]
        if self.require_mask:
            has_mask = tf.reduce_any(tf.equal(pieces, self.mask_id), axis=1)  # (batch,)
            checks.append(
                guards.require(has_mask, f"{signature}: text has no {mask_token}; rows:", guards.failing_rows(has_mask))
            )
        pieces = tf.ragged.map_flat_values(lambda v: guards.checked(v, checks), pieces)

        # [CLS] ids [SEP], then [PAD] up to the model's length.
        cls = tf.RaggedTensor.from_tensor(tf.fill([batch, 1], self.cls_id))
        sep = tf.RaggedTensor.from_tensor(tf.fill([batch, 1], self.sep_id))
        rows = tf.concat([cls, pieces, sep], axis=1)  # ragged (batch, None)
        return rows.to_tensor(default_value=self.pad_id, shape=[None, self.sequence_length])  # (batch, seq)
