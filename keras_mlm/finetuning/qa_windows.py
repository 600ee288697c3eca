"""Question + context -> model rows with a document stride, and where each word piece came from.

    questions, contexts (batch,) string
      -> word pieces with byte offsets into the ORIGINAL context   `OffsetTokenizer`
      -> windows: [CLS] question [SEP] context[s : s + budget] [SEP], s = 0, stride, 2 * stride, ...
      -> {token_ids, segment_ids, padding_mask} (windows, seq) int32, which example each window
         belongs to, and the byte span of the context each position covers (-1 off the context)

One implementation for training rows (with `span_labels`), dev predictions and the exported `answer`
signature, so the three cannot drift apart. Only core TensorFlow ops and the three tensorflow-text ops
keras-hub's WordPiece tokenizer already uses (RegexSplitWithOffsets, CaseFoldUTF8,
FastWordpieceTokenizeWithOffsets), all in TF Serving since 2.12.

Offsets are UTF-8 byte offsets inside the graph (what the ops give); `keras_mlm.finetuning.qa_answers`
turns the answer's into character offsets at the end.
"""

import tensorflow as tf
import tensorflow_text as tf_text
from keras_hub.src.tokenizers import word_piece_tokenizer as keras_hub_word_piece

from keras_mlm.finetuning.packing import pack_segments
from keras_mlm.tokenizers import vocab as vocab_lib

# keras-hub's own split patterns (whitespace, control and format characters, punctuation, CJK), so the
# ids are the ones `make_tokenizer` gives (tests/finetuning/test_qa_windows.py checks it on SQuAD).
SPLIT_PATTERN = keras_hub_word_piece.WHITESPACE_PUNCTUATION_AND_CJK_REGEX
KEEP_PATTERN = keras_hub_word_piece.PUNCTUATION_AND_CJK_REGEX
MAX_QUERY_LENGTH = 64
"""BERT's cap on question pieces (run_squad.py's max_query_length); lower for short rows."""
OFF_CONTEXT = -1
"""Offset of a position that is not a context piece ([CLS], the question, [SEP], [PAD])."""


class OffsetTokenizer:
    """Callable in a tf.function: texts (batch,) -> (ids, starts, ends), each ragged (batch, pieces) int32.

    The ids are exactly `make_tokenizer(tokens, lowercase)`'s (special tokens in the text are plain
    characters). keras-hub splits the text into words first and lowercases each word (case folding,
    NFKC included), and so does this, keeping each word's byte span in the original text. A piece's
    span is then [word start + piece start, word start + piece end) when folding kept the byte length
    of every character of the word (all ASCII, nearly all Latin, Greek, Cyrillic text); in a word whose
    folding changed that (e.g. "ß" -> "ss", the "ﬁ" ligature) every piece spans the whole word. The
    first piece of a word always starts where the word starts and the last ends where it ends.
    """

    def __init__(self, tokens, lowercase):
        self.tokens = list(tokens)
        self.lowercase = bool(lowercase)
        self.word_piece = tf_text.FastWordpieceTokenizer(
            vocab=self.tokens, suffix_indicator=vocab_lib.SUFFIX_INDICATOR, unknown_token=vocab_lib.UNK,
            no_pretokenization=True, support_detokenization=True, token_out_type=tf.int32,
        )  # the arguments keras-hub's WordPieceTokenizer passes

    def ids(self, texts):
        """Texts (batch,) -> ragged (batch, pieces) int32 ids."""
        return self(texts)[0]

    def __call__(self, texts):
        words, word_starts, word_ends = tf_text.regex_split_with_offsets(texts, SPLIT_PATTERN, KEEP_PATTERN)  # ragged (batch, words)
        folded = tf_text.case_fold_utf8(words) if self.lowercase else words
        ids, piece_starts, piece_ends = self.word_piece.tokenize_with_offsets(folded)  # ragged (batch, words, pieces)

        # Per piece (flat): its word's span in the original text and whether folding kept the word's layout.
        word_of_piece = ids.values.value_rowids()  # (pieces,) index into the flat words
        kept = tf.equal(_char_byte_lengths(words.flat_values), _char_byte_lengths(folded.flat_values))  # (words,)
        word_start = tf.cast(tf.gather(word_starts.flat_values, word_of_piece), tf.int32)
        word_end = tf.cast(tf.gather(word_ends.flat_values, word_of_piece), tf.int32)
        kept = tf.gather(kept, word_of_piece)
        starts = tf.where(kept, word_start + tf.cast(piece_starts.flat_values, tf.int32), word_start)
        ends = tf.where(kept, word_start + tf.cast(piece_ends.flat_values, tf.int32), word_end)
        # The last piece of a word ends at the word's end even when it is [UNK] for a folded word.
        last = tf.not_equal(word_of_piece, tf.concat([word_of_piece[1:], [-1]], axis=0))
        ends = tf.where(last, word_end, ends)

        ids = ids.merge_dims(1, 2)  # ragged (batch, pieces)
        return ids, ids.with_flat_values(starts), ids.with_flat_values(ends)


def _char_byte_lengths(words):
    """(words,) strings -> (words,) strings spelling the UTF-8 length of each character, e.g. "1,1,2,"."""
    chars = tf.strings.unicode_split(words, "UTF-8", errors="replace")  # ragged (words, chars)
    lengths = tf.strings.as_string(tf.strings.length(chars))
    return tf.strings.reduce_join(lengths + ",", axis=1)


class QAWindows:
    """Callable in a tf.function: (questions, contexts) (batch,) strings -> a dict of window tensors.

    The question is cut to `max_query_length` pieces; the context is cut into windows of at most
    `seq_len - 3 - question pieces` pieces starting every `doc_stride` pieces until one reaches the
    end (BERT's run_squad.py; a stride larger than the window acts as the window). Outputs:

        token_ids, segment_ids, padding_mask  int32 (windows, seq)  [CLS] q [SEP] c [SEP] [PAD]...
        example                               int32 (windows,)      the row of `questions` it answers
        start_offsets, end_offsets            int32 (windows, seq)  the context bytes [start, end) a
                                                                    position covers; -1 off the context

    Every example has at least one window (an empty context gives one with no context piece).
    """

    def __init__(self, tokens, lowercase, sequence_length, doc_stride=128, max_query_length=None):
        self.sequence_length = int(sequence_length)
        if max_query_length is None:
            max_query_length = min(MAX_QUERY_LENGTH, (self.sequence_length - 3) // 2)
        self.max_query_length = int(max_query_length)
        self.doc_stride = int(doc_stride)
        if self.sequence_length - 3 - self.max_query_length < 1:
            raise ValueError(f"sequence_length {sequence_length} leaves no room for the context after "
                             f"{self.max_query_length} question pieces")
        if self.doc_stride < 1:
            raise ValueError(f"doc_stride must be a positive integer, got {doc_stride}")
        self.tokenizer = OffsetTokenizer(tokens, lowercase)
        index = {t: i for i, t in enumerate(tokens)}
        self.cls_id, self.sep_id, self.pad_id = (index[t] for t in (vocab_lib.CLS, vocab_lib.SEP, vocab_lib.PAD))

    def __call__(self, questions, contexts):
        question = self.tokenizer.ids(questions)[:, : self.max_query_length]  # ragged (batch, q)
        context, starts, ends = self.tokenizer(contexts)  # ragged (batch, c)
        question_length = tf.cast(question.row_lengths(), tf.int32)  # (batch,)
        context_length = tf.cast(context.row_lengths(), tf.int32)  # (batch,)

        # How many windows each example needs, and where each starts in its context.
        budget = self.sequence_length - 3 - question_length  # (batch,) context pieces a row holds
        stride = tf.minimum(self.doc_stride, budget)
        count = 1 + tf.maximum(0, (context_length - budget + stride - 1) // stride)  # (batch,) ceil division
        example = tf.repeat(tf.range(tf.size(count)), count)  # (windows,)
        first = tf.ragged.range(count).flat_values * tf.gather(stride, example)  # (windows,) first piece
        length = tf.minimum(tf.gather(budget, example), tf.gather(context_length, example) - first)  # (windows,)

        # The context pieces of each window, gathered from the flat pieces of all contexts.
        positions = tf.ragged.range(first, first + length)  # ragged (windows, None)
        flat = positions.flat_values + tf.gather(tf.cast(context.row_starts(), tf.int32), tf.gather(example, positions.value_rowids()))
        window_ids = positions.with_flat_values(tf.gather(context.flat_values, flat))
        rows = pack_segments(tf.gather(question, example), window_ids, self.sequence_length, self.cls_id, self.sep_id, self.pad_id)

        # Offsets at the same positions: -1 for [CLS] q [SEP], the window's spans, -1 for [SEP] and padding.
        head = tf.gather(question_length, example) + 2  # (windows,) position of the window's first piece
        lead = tf.RaggedTensor.from_row_lengths(tf.fill([tf.reduce_sum(head)], OFF_CONTEXT), tf.cast(head, tf.int64))  # (windows, head)
        offsets = {}
        for key, values in (("start_offsets", starts), ("end_offsets", ends)):
            spans = positions.with_flat_values(tf.gather(values.flat_values, flat))  # ragged (windows, None)
            offsets[key] = tf.concat([lead, spans], axis=1).to_tensor(OFF_CONTEXT, shape=[None, self.sequence_length])
        return {**rows, "example": example, **offsets}


def span_labels(windows, answer_starts, answer_ends):
    """Start and end positions (windows,) int32 of each window's answer, 0 ([CLS]) when it has none.

    answer_starts, answer_ends: (batch,) int32 byte span [start, end) of each example's answer in its
    context, -1 for an unanswerable question. A window is labelled only if its context pieces cover
    the whole answer: start = the first piece ending after the answer's start, end = the last piece
    starting before the answer's end (an answer with stray spaces around it still lands on its words).
    """
    starts, ends = windows["start_offsets"], windows["end_offsets"]  # (windows, seq)
    in_context = starts >= 0
    answer_start = tf.gather(answer_starts, windows["example"])[:, None]  # (windows, 1)
    answer_end = tf.gather(answer_ends, windows["example"])[:, None]
    first = tf.argmax(tf.cast(in_context, tf.int32), axis=1, output_type=tf.int32)  # (windows,) first context position
    count = tf.reduce_sum(tf.cast(in_context, tf.int32), axis=1)  # (windows,)
    last = first + count - 1
    window_start = tf.gather(starts, first, batch_dims=1)  # (windows,)
    window_end = tf.gather(ends, tf.maximum(last, 0), batch_dims=1)
    covered = (answer_start[:, 0] >= 0) & (count > 0) & (window_start <= answer_start[:, 0]) & (window_end >= answer_end[:, 0])
    start = first + tf.reduce_sum(tf.cast(in_context & (ends <= answer_start), tf.int32), axis=1)
    end = first + tf.reduce_sum(tf.cast(in_context & (starts < answer_end), tf.int32), axis=1) - 1
    covered &= start <= end
    return tf.where(covered, start, 0), tf.where(covered, end, 0)
