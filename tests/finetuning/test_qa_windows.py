"""Question/context windows: word-piece offsets into the original text, windows with a stride, span labels
and the best span over windows, all exact on hand-worked examples; the ids are keras-hub's on real SQuAD."""

import collections
import json
import math
import re

import numpy as np
import pytest
import tensorflow as tf

from keras_mlm.finetuning.qa_answers import Answerer, best_spans
from keras_mlm.finetuning.qa_windows import OFF_CONTEXT, OffsetTokenizer, QAWindows, span_labels
from keras_mlm.tokenizers import SPECIAL_TOKENS, make_tokenizer

WORDS = ["the", "cat", "sat", "on", "mat", "where", "is", "paris", "in", "france", "it", "rains", "a", "dog",
         "stra", "caf", "?", ".", ",", "##s", "##sse", "##é"]
TOKENS = list(SPECIAL_TOKENS) + WORDS  # [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4
ID = {t: i for i, t in enumerate(TOKENS)}
CLS, SEP, PAD = ID["[CLS]"], ID["[SEP]"], ID["[PAD]"]


def _pieces(text, lowercase=True):
    ids, starts, ends = tf.function(OffsetTokenizer(TOKENS, lowercase))(tf.constant([text]))
    raw = text.encode("utf-8")
    return [(TOKENS[i], raw[s:e].decode("utf-8")) for i, s, e in zip(ids[0].numpy(), starts[0].numpy(), ends[0].numpy())]


def test_offsets_point_into_the_original_text():
    assert _pieces("The cat  sat.") == [("the", "The"), ("cat", "cat"), ("sat", "sat"), (".", ".")]
    assert _pieces("CATS, dogs") == [("cat", "CAT"), ("##s", "S"), (",", ","), ("dog", "dog"), ("##s", "s")]
    assert _pieces("\tParis  is\nin France ") == [("paris", "Paris"), ("is", "is"), ("in", "in"), ("france", "France")]


def test_offsets_of_multibyte_characters():
    # "café": folding keeps every character's byte length, so pieces split inside the word exactly.
    assert _pieces("Café ok") == [("caf", "Caf"), ("##é", "é"), ("[UNK]", "ok")]
    # "Straße" folds to "strasse": same byte length (ß is 2 bytes, "ss" too) but not character by
    # character, so both pieces span the whole word rather than cutting through "ß".
    assert _pieces("Straße.") == [("stra", "Straße"), ("##sse", "Straße"), (".", ".")]
    # Cased vocabulary: no folding, "The" is unknown as a whole word.
    assert _pieces("The cat", lowercase=False) == [("[UNK]", "The"), ("cat", "cat")]


def test_ids_are_the_keras_hub_tokenizers_on_real_squad_text(corpora):
    data = json.loads((corpora / "tasks" / "squad_v2_sample" / "dev_subset.json").read_text(encoding="utf-8"))
    texts = [p["context"] for a in data["data"] for p in a["paragraphs"]]
    texts += [q["question"] for a in data["data"] for p in a["paragraphs"] for q in p["qas"]]
    texts += ["Straße ﬁne İstanbul ½ café 東京 tab\there [MASK] [CLS]", ""]
    counts = collections.Counter(w for t in texts for w in re.findall(r"\w+", t.lower()))
    pieces = sorted(set("abcdefghijklmnopqrstuvwxyz0123456789.,;:()'\"-")) + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz"]
    tokens = list(SPECIAL_TOKENS) + pieces + [w for w, _ in counts.most_common(400) if len(w) > 1]
    for lowercase in (True, False):
        expected = tf.function(make_tokenizer(tokens, lowercase))(tf.constant(texts)).to_list()
        ids, starts, ends = tf.function(OffsetTokenizer(tokens, lowercase))(tf.constant(texts))
        assert ids.to_list() == expected
        # Every piece's span is non-empty text of its context, in order.
        for text, s, e in zip(texts, starts.to_list(), ends.to_list()):
            assert all(0 <= a < b <= len(text.encode("utf-8")) for a, b in zip(s, e))
            assert s == sorted(s)


def _windows(questions, contexts, seq_len=12, doc_stride=3, max_query_length=None):
    windows = QAWindows(TOKENS, True, seq_len, doc_stride, max_query_length)
    out = tf.function(windows)(tf.constant(questions), tf.constant(contexts))
    return {k: v.numpy() for k, v in out.items()}


# 11 context words: "the cat sat on the mat in paris , france ." -> budget 12 - 3 - 4 = 5 pieces a window.
QUESTION = "where is paris ?"
CONTEXT = "The cat sat on the mat in Paris, France."


def test_windows_with_a_stride_cover_the_context_exactly():
    out = _windows([QUESTION], [CONTEXT])
    q = [ID[w] for w in ["where", "is", "paris", "?"]]
    c = [ID[w] for w in ["the", "cat", "sat", "on", "the", "mat", "in", "paris", ",", "france", "."]]
    # Windows start at pieces 0, 3, 6 (stride 3); the third reaches the end, so there is no fourth.
    expected = [[CLS, *q, SEP, *c[s : s + 5], SEP] for s in (0, 3, 6)]
    assert out["token_ids"].tolist() == [row + [PAD] * (12 - len(row)) for row in expected]
    assert out["segment_ids"].tolist() == [[0] * 6 + [1] * 6] * 3
    assert out["padding_mask"].tolist() == [[1] * 12] * 3
    assert out["example"].tolist() == [0, 0, 0]
    raw = CONTEXT.encode()
    words = [raw[s:e].decode() for s, e in zip(out["start_offsets"][2], out["end_offsets"][2]) if s >= 0]
    assert words == ["in", "Paris", ",", "France", "."]
    assert (out["start_offsets"][:, :6] == OFF_CONTEXT).all() and (out["start_offsets"][:, 11] == OFF_CONTEXT).all()


def test_windows_of_a_batch_and_the_question_cap():
    out = _windows(["cat ?", QUESTION, "where"], ["The mat.", CONTEXT, ""], max_query_length=2)
    # Question capped at 2 pieces -> budget 12 - 3 - 2 = 7: 1 window, 3 windows (0, 3, 6: 6 + 7 >= 11), 1 empty.
    assert out["example"].tolist() == [0, 1, 1, 1, 2]
    assert out["token_ids"][0].tolist() == [CLS, ID["cat"], ID["?"], SEP, ID["the"], ID["mat"], ID["."], SEP] + [PAD] * 4
    assert out["token_ids"][1][:3].tolist() == [CLS, ID["where"], ID["is"]]
    assert out["token_ids"][4].tolist() == [CLS, ID["where"], SEP, SEP] + [PAD] * 8
    assert out["padding_mask"][4].tolist() == [1] * 4 + [0] * 8
    assert (out["start_offsets"][4] == OFF_CONTEXT).all()


def _byte_span(context, answer, occurrence=0):
    start = -1
    for _ in range(occurrence + 1):
        start = context.index(answer, start + 1)
    b = len(context[:start].encode())
    return b, b + len(answer.encode())


def test_span_labels_only_in_the_window_holding_the_whole_answer():
    windows = QAWindows(TOKENS, True, 12, 3)
    rows = tf.function(windows)(tf.constant([QUESTION] * 4), tf.constant([CONTEXT] * 4))
    spans = [_byte_span(CONTEXT, "Paris, France"), _byte_span(CONTEXT, "cat sat"), _byte_span(CONTEXT, " the mat "), (-1, -1)]
    starts, ends = span_labels(rows, tf.constant([s for s, _ in spans]), tf.constant([e for _, e in spans]))
    # Windows per example: [the cat sat on the] [on the mat in paris] [in paris , france .], context from
    # position 6. " the mat " (spaces around it) lands on its words, and only in the window holding "mat".
    assert starts.numpy().reshape(4, 3).tolist() == [[0, 0, 7], [7, 0, 0], [0, 7, 0], [0, 0, 0]]
    assert ends.numpy().reshape(4, 3).tolist() == [[0, 0, 9], [8, 0, 0], [0, 8, 0], [0, 0, 0]]


def test_best_span_rules():
    # One example, two windows of 6 positions; positions 0-1 are [CLS] and the question, 2-4 context, 5 [SEP].
    offsets = np.array([[-1, -1, 0, 4, 8, -1], [-1, -1, 8, 12, 16, -1]], np.int32)
    windows = {"start_offsets": tf.constant(offsets), "end_offsets": tf.constant(np.where(offsets >= 0, offsets + 3, -1)),
               "example": tf.constant([0, 0])}
    start = np.full((2, 6), -5.0, np.float32)
    end = np.full((2, 6), -5.0, np.float32)
    start[0, 1] = end[0, 1] = 50.0  # the question position is never a span
    start[0, 4], end[0, 2] = 9.0, 9.0  # 4..2 would score 18, but ends before it starts; 2..2 and 4..4 score 4
    start[1, 2], end[1, 4] = 3.0, 2.0  # window 2: span 2..4 (3 pieces) scores 5, the best
    start[0, 0], end[0, 0] = 4.0, 0.5  # null 4.5 in window 1 ...
    start[1, 0], end[1, 0] = 1.0, 1.0  # ... 2.0 in window 2: the example's null score is the smaller
    out = best_spans(tf.constant(start), tf.constant(end), windows, 1, max_answer_length=3)
    assert out["start_byte"].numpy().tolist() == [8] and out["end_byte"].numpy().tolist() == [19]
    assert out["span_score"].numpy().tolist() == [5.0] and out["null_score"].numpy().tolist() == [2.0]
    # At most 2 pieces: window 2's best is -2, window 1's 4 (2..2 before 4..4 on the tie): bytes 0..3.
    out = best_spans(tf.constant(start), tf.constant(end), windows, 1, max_answer_length=2)
    assert out["start_byte"].numpy().tolist() == [0] and out["end_byte"].numpy().tolist() == [3]
    assert out["span_score"].numpy().tolist() == [4.0]


class _Pointer:
    """A stand-in model: start logit 10 on one word's pieces, end logit 10 on another's, 0 elsewhere, 1 at [CLS]."""

    def __init__(self, start_word, end_word):
        self.start_id, self.end_id = ID[start_word], ID[end_word]

    def __call__(self, inputs, training=False):
        ids = inputs["token_ids"]
        start = tf.where(ids == self.start_id, 10.0, 0.0) + tf.one_hot(tf.zeros_like(ids[:, 0]), tf.shape(ids)[1])
        end = tf.where(ids == self.end_id, 10.0, 0.0) + tf.one_hot(tf.zeros_like(ids[:, 0]), tf.shape(ids)[1])
        return {"start_logits": start, "end_logits": end}


def test_an_answer_only_in_a_later_window_is_found_with_character_offsets():
    # "France" only appears in the third window; the context has multi-byte characters before it.
    context = "Ça — the cat sat on the mat in Paris, France."
    answerer = Answerer(_Pointer("paris", "france"), TOKENS, True, 12, doc_stride=3, null_threshold=0.0)
    out = tf.function(answerer)(tf.constant([QUESTION, QUESTION]), tf.constant([context, "the cat sat ."]))
    answer = out["answer"].numpy()[0].decode()
    start, end = out["start_char"].numpy().tolist(), out["end_char"].numpy().tolist()
    assert answer == "Paris, France" and context[start[0] : end[0]] == answer
    assert out["score"].numpy()[0] == pytest.approx(20.0 - 2.0)
    # The second context has neither word: the best span scores 0 < null 2 -> no answer.
    assert out["answer"].numpy()[1] == b"" and start[1] == end[1] == -1
    assert out["score"].numpy()[1] == pytest.approx(-2.0)
    # A threshold of 2 or more lets the best span through; math.inf always answers (SQuAD 1.1).
    lenient = Answerer(_Pointer("paris", "france"), TOKENS, True, 12, doc_stride=3, null_threshold=math.inf)
    assert tf.function(lenient)(tf.constant([QUESTION]), tf.constant(["the cat sat ."]))["answer"].numpy()[0] != b""
