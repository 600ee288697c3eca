"""Start/end logits of every window -> one answer per question, inside the graph.

    windows (QAWindows) -> SpanExtractor -> start_logits, end_logits (windows, seq)
      -> best span of each window: context positions i <= j < i + max_answer_length, score s[i] + e[j]
      -> best span of each question over its windows; no-answer score = min over its windows of s[0] + e[0]
      -> "" (no answer) when no-answer score - best span score > null_threshold, else the span's text
         cut from the original context

BERT's run_squad.py rules (the no-answer score is the smallest [CLS] score of the question's
windows). One implementation for dev predictions (`keras_mlm.finetuning.squad`) and the exported
`answer` signature (`keras_mlm.export.answer_signature`). Character offsets are Unicode code points
(Python's `str` indices, SQuAD's `answer_start`); `end_char` is exclusive: context[start:end] == answer.
"""

import math

import numpy as np
import tensorflow as tf

from keras_mlm.finetuning.qa_windows import QAWindows
from keras_mlm.models.encoder_base import ENCODER_INPUTS

MAX_ANSWER_LENGTH = 30
"""Longest answer in word pieces (run_squad.py's max_answer_length)."""
NO_ANSWER = -1
"""start_char and end_char of an empty answer."""


def best_spans(start_logits, end_logits, windows, num_examples, max_answer_length=MAX_ANSWER_LENGTH):
    """The best context span of each example over its windows, and its no-answer score.

    start_logits, end_logits: (windows, seq) float32; windows: a `QAWindows` output. Returns
    {start_byte, end_byte} int32 (examples,): the span's bytes [start, end) in the context (-1 when
    the context has no piece), {span_score, null_score} float32 (examples,) (span_score -inf then).
    """
    start_offsets, end_offsets = windows["start_offsets"], windows["end_offsets"]  # (windows, seq)
    seq = start_offsets.shape[1]
    start_logits, end_logits = tf.cast(start_logits, tf.float32), tf.cast(end_logits, tf.float32)

    # Every (start i, end j) of one window: both in the context, i <= j < i + max_answer_length.
    i, j = np.arange(seq)[:, None], np.arange(seq)[None, :]
    allowed = tf.constant((j >= i) & (j - i < max_answer_length))  # (seq, seq)
    in_context = start_offsets >= 0  # (windows, seq)
    valid = allowed[None] & in_context[:, :, None] & in_context[:, None, :]  # (windows, seq, seq)
    scores = start_logits[:, :, None] + end_logits[:, None, :]  # (windows, seq, seq)
    scores = tf.reshape(tf.where(valid, scores, -math.inf), [-1, seq * seq])  # (windows, seq * seq)
    window_best = tf.reduce_max(scores, axis=1)  # (windows,)
    flat = tf.argmax(scores, axis=1, output_type=tf.int32)  # (windows,)
    window_start, window_end = flat // seq, flat % seq

    # Per example: the window holding its best span (the first one on ties), and the no-answer score.
    example = windows["example"]
    span_score = tf.math.unsorted_segment_max(window_best, example, num_examples)  # (examples,)
    index = tf.range(tf.shape(example)[0])
    is_best = window_best >= tf.gather(span_score, example)
    chosen = tf.math.unsorted_segment_min(tf.where(is_best, index, tf.int32.max), example, num_examples)  # (examples,)
    null_score = tf.math.unsorted_segment_min(start_logits[:, 0] + end_logits[:, 0], example, num_examples)

    has_span = span_score > -math.inf
    start_byte = tf.gather_nd(start_offsets, tf.stack([chosen, tf.gather(window_start, chosen)], axis=1))
    end_byte = tf.gather_nd(end_offsets, tf.stack([chosen, tf.gather(window_end, chosen)], axis=1))
    return {
        "start_byte": tf.where(has_span, start_byte, NO_ANSWER),
        "end_byte": tf.where(has_span, end_byte, NO_ANSWER),
        "span_score": span_score,
        "null_score": null_score,
    }


def character_offset(texts, byte_offsets):
    """(batch,) strings and byte offsets at character boundaries -> (batch,) int32 character offsets."""
    prefix = tf.strings.substr(texts, tf.zeros_like(byte_offsets), tf.maximum(byte_offsets, 0))
    return tf.strings.length(prefix, unit="UTF8_CHAR")


class Answerer:
    """Callable in a tf.function: (questions, contexts) (batch,) strings -> one answer each.

    Returns {answer string, start_char int32, end_char int32, score float32} (batch,) with
    score = best span score - no-answer score: the answer is "" (start_char = end_char = -1) when
    -score > null_threshold. `null_threshold=math.inf` never answers "" (SQuAD 1.1). `spans(...)`
    gives the best span whatever the threshold (for the threshold search).
    """

    def __init__(self, model, tokens, lowercase, sequence_length, doc_stride=128, max_answer_length=MAX_ANSWER_LENGTH,
                 null_threshold=0.0, max_query_length=None):
        self.model = model
        self.windows = QAWindows(tokens, lowercase, sequence_length, doc_stride, max_query_length)
        self.max_answer_length = int(max_answer_length)
        self.null_threshold = float(null_threshold)

    def spans(self, questions, contexts):
        """{span, start_char, end_char, score} (batch,): the best span (even where "" wins), its score
        minus the no-answer score; "", -1, -1, -inf where the context has no word piece."""
        windows = self.windows(questions, contexts)
        inputs = {k: windows[k] for k in ENCODER_INPUTS}
        logits = self.model(inputs, training=False)  # {start_logits, end_logits} (windows, seq)
        best = best_spans(logits["start_logits"], logits["end_logits"], windows, tf.shape(questions)[0], self.max_answer_length)
        has_span = best["start_byte"] >= 0
        start_byte, end_byte = tf.maximum(best["start_byte"], 0), tf.maximum(best["end_byte"], 0)
        span = tf.strings.substr(contexts, start_byte, end_byte - start_byte)  # (batch,) bytes of the context
        start_char = character_offset(contexts, start_byte)
        end_char = start_char + tf.strings.length(span, unit="UTF8_CHAR")
        return {
            "span": tf.where(has_span, span, ""),
            "start_char": tf.where(has_span, start_char, NO_ANSWER),
            "end_char": tf.where(has_span, end_char, NO_ANSWER),
            "score": best["span_score"] - best["null_score"],
        }

    def decide(self, best):
        """`spans(...)`'s output -> the answers: "" and -1, -1 where -score > null_threshold."""
        answered = (best["start_char"] >= 0) & (-best["score"] <= self.null_threshold)  # (batch,)
        return {
            "answer": tf.where(answered, best["span"], ""),
            "start_char": tf.where(answered, best["start_char"], NO_ANSWER),
            "end_char": tf.where(answered, best["end_char"], NO_ANSWER),
            "score": best["score"],
        }

    def __call__(self, questions, contexts):
        return self.decide(self.spans(questions, contexts))
