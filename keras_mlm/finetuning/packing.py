"""Word-piece ids of one or two segments -> `[CLS] a [SEP] (b [SEP])` rows, inside the graph.

Written with core TensorFlow ops rather than keras-hub's `MultiSegmentPacker`, whose trimming op
(`TFText>RoundRobinTrim`) stock TF Serving before 2.20 lacks (tensorflow/serving#2267): the same
function packs training batches and serves exported text signatures, so the two cannot drift apart.

Truncation is "longest first" (BERT's `_truncate_seq_pair`, HF's default): pieces are dropped from the
end of the longer segment until the pair fits, so a short segment is never cut while the other is long.
"""

import tensorflow as tf


def longest_first_lengths(first_lengths, second_lengths, budget):
    """Kept lengths (a', b') of segments of lengths (a, b) int32 (batch,) so that a' + b' <= budget.

    Equivalent to repeatedly dropping one piece from the longer segment (the second on ties):
    a' = min(a, max(budget - b, ceil(budget / 2))), b' = min(b, budget - a').
    """
    half = budget - budget // 2  # ceil(budget / 2)
    keep_first = tf.minimum(first_lengths, tf.maximum(budget - second_lengths, half))
    keep_second = tf.minimum(second_lengths, budget - keep_first)
    return keep_first, keep_second


def _head(ragged, keep):
    """The first keep[i] items of each row of a ragged (batch, None) tensor."""
    positions = tf.ragged.range(tf.cast(ragged.row_lengths(), tf.int32))  # ragged (batch, None)
    return tf.ragged.boolean_mask(ragged, positions < keep[:, None])


def pack_segments(first, second, sequence_length, cls_id, sep_id, pad_id):
    """Ragged int32 ids (batch, None), one or two segments -> encoder inputs, each int32 (batch, seq).

    `second` may be None (single sentences). Returns {token_ids, segment_ids, padding_mask}: segment 0
    is [CLS] a [SEP], segment 1 is b [SEP]; padding_mask is 1 on tokens and 0 on [PAD].
    """
    first = tf.cast(first, tf.int32)
    batch = first.nrows(out_type=tf.int32)
    cls = tf.RaggedTensor.from_tensor(tf.fill([batch, 1], cls_id))
    sep = tf.RaggedTensor.from_tensor(tf.fill([batch, 1], sep_id))
    first_lengths = tf.cast(first.row_lengths(), tf.int32)
    if second is None:
        first = _head(first, tf.minimum(first_lengths, sequence_length - 2))
        ids = tf.concat([cls, first, sep], axis=1)  # ragged (batch, <= seq)
        segments = tf.zeros_like(ids)
    else:
        second = tf.cast(second, tf.int32)
        keep_first, keep_second = longest_first_lengths(first_lengths, tf.cast(second.row_lengths(), tf.int32), sequence_length - 3)
        first, second = _head(first, keep_first), _head(second, keep_second)
        part_a = tf.concat([cls, first, sep], axis=1)
        part_b = tf.concat([second, sep], axis=1)
        ids = tf.concat([part_a, part_b], axis=1)  # ragged (batch, <= seq)
        segments = tf.concat([tf.zeros_like(part_a), tf.ones_like(part_b)], axis=1)
    token_ids = ids.to_tensor(default_value=pad_id, shape=[None, sequence_length])  # (batch, seq)
    segment_ids = segments.to_tensor(default_value=0, shape=[None, sequence_length])
    padding_mask = tf.cast(tf.sequence_mask(ids.row_lengths(), sequence_length), tf.int32)
    return {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask}


def text_encoder(tokenizer, sequence_length, special_ids, pairs=False):
    """A graph function: strings (batch,) [, strings (batch,)] -> {token_ids, segment_ids, padding_mask}.

    `tokenizer` is the vocabulary's WordPiece tokenizer (`StartingPoint.tokenizer()`); `special_ids`
    a mapping with "cls", "sep" and "pad".
    """
    cls_id, sep_id, pad_id = special_ids["cls"], special_ids["sep"], special_ids["pad"]
    string = tf.TensorSpec([None], tf.string)

    # Graph functions: called eagerly, keras-hub's tokenizer would hand back Python lists.
    if pairs:
        @tf.function(input_signature=[string, string])
        def encode_pairs(texts, text_pairs):
            return pack_segments(tokenizer(texts), tokenizer(text_pairs), sequence_length, cls_id, sep_id, pad_id)

        return encode_pairs

    @tf.function(input_signature=[string])
    def encode(texts):
        return pack_segments(tokenizer(texts), None, sequence_length, cls_id, sep_id, pad_id)

    return encode
