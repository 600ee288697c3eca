"""Raw UTF-8 texts -> model rows inside the graph, exactly as `FillMask.encode` builds them.

    texts (batch,) string
      -> WordPiece ids          keras-hub's WordPieceTokenizer, special tokens recognised in the text
      -> [CLS] ids [SEP] [PAD]  plain TF ops: ragged concat, then to_tensor to the model's length
      -> token_ids (batch, sequence_length) int32

The tokenizer is the very layer `FillMask` uses (`make_tokenizer(..., special_tokens_in_strings=True)`),
traced into the graph, where it uses three tensorflow-text ops (RegexSplitWithOffsets, CaseFoldUTF8
when lowercasing, FastWordpieceTokenizeWithOffsets), all linked by stock TF Serving since 2.12.
Packing is written with core ops on purpose: keras-hub's packers trim with `TFText>RoundRobinTrim`,
which TF Serving before 2.20 does not have (tensorflow/serving#2267), and a single segment needs no
trimming at all: a text that does not fit is refused, as `FillMask` refuses it.
"""

import tensorflow as tf

from keras_mlm.export import guards
from keras_mlm.tokenizers import vocab as vocab_lib


class TextPacker:
    """Callable in a tf.function: (batch,) strings -> (batch, sequence_length) int32 token ids.

    Fails the request (INVALID_ARGUMENT, offending rows listed) when `texts` is not a vector, a text
    is not valid UTF-8, is blank, has no [MASK] (`require_mask=True`), or is longer than `sequence_length` with
    [CLS] and [SEP].
    """

    def __init__(self, tokens, sequence_length, lowercase=None, require_mask=True):
        from keras_mlm.tokenizers.tokenizer import make_tokenizer

        self.tokens = list(tokens)
        self.sequence_length = int(sequence_length)
        self.require_mask = require_mask
        self.tokenizer = make_tokenizer(self.tokens, lowercase=lowercase, special_tokens_in_strings=True)
        ids = {t: i for i, t in enumerate(self.tokens)}
        self.pad_id, self.cls_id, self.sep_id, self.mask_id = (ids[t] for t in (vocab_lib.PAD, vocab_lib.CLS, vocab_lib.SEP, vocab_lib.MASK))

    def __call__(self, texts, signature="fill_mask_text"):
        texts = guards.check_rank(texts, 1, f"{signature}: texts", "(batch,)")
        # UTF-8 -> UTF-8 is the identity on valid text and replaces the bytes of invalid text.
        utf8 = tf.equal(tf.strings.unicode_transcode(texts, "UTF-8", "UTF-8", errors="replace"), texts)  # (batch,)
        blank = tf.equal(tf.strings.length(tf.strings.strip(texts)), 0)  # (batch,)
        texts = guards.checked(texts, [
            guards.require(utf8, f"{signature}: text is not valid UTF-8; rows:", guards.failing_rows(utf8)),
            guards.require(~blank, f"{signature}: empty text (give a sentence with a [MASK]); rows:", guards.failing_rows(~blank)),
        ])

        pieces = self.tokenizer(texts)  # ragged (batch, None) int32
        batch = tf.shape(texts)[0]
        lengths = tf.cast(pieces.row_lengths(), tf.int32) + 2  # (batch,) with [CLS] and [SEP]
        fits = lengths <= self.sequence_length
        checks = [
            guards.require(
                fits, f"{signature}: text longer than the model takes ({self.sequence_length} tokens with [CLS] and [SEP]); rows:",
                guards.failing_rows(fits), "lengths:", tf.boolean_mask(lengths, ~fits),
            )
        ]
        if self.require_mask:
            has_mask = tf.reduce_any(tf.equal(pieces, self.mask_id), axis=1)  # (batch,)
            checks.append(
                guards.require(has_mask, f"{signature}: text has no [MASK]; rows:", guards.failing_rows(has_mask))
            )
        pieces = tf.ragged.map_flat_values(lambda v: guards.checked(v, checks), pieces)

        # [CLS] ids [SEP], then [PAD] up to the model's length.
        cls = tf.RaggedTensor.from_tensor(tf.fill([batch, 1], self.cls_id))
        sep = tf.RaggedTensor.from_tensor(tf.fill([batch, 1], self.sep_id))
        rows = tf.concat([cls, pieces, sep], axis=1)  # ragged (batch, None)
        return rows.to_tensor(default_value=self.pad_id, shape=[None, self.sequence_length])  # (batch, seq)
