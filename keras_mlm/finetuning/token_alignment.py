"""Words <-> word pieces for token classification (NER), inside the graph.

    words ragged (batch, None) string            ["EU", "rejects", "Germanic"]
      -> pieces of each word, tokenized alone    [eu] [rejects] [german ##ic]
      -> [CLS] pieces [SEP] [PAD]...             token_ids (batch, seq), via `packing.pack_segments`
      -> word_positions ragged (batch, None)     [1, 2, 3]: each word's FIRST piece, -1 when cut off

Each word is tokenized on its own, so the alignment is exact whatever the tokenizer does inside a
word (lower-casing, accents, splitting "@user" into "@" "user", "##" pieces); a word that yields no
piece at all (a lone zero-width or control character) is given one [UNK], so every word has a
position. The label of a word sits on its first piece; the other pieces, [CLS], [SEP] and [PAD] get
`IGNORE` (-100), which the loss skips (`SparseCategoricalCrossentropy(ignore_class=IGNORE)`).

A row holds `sequence_length - 2` pieces. A word whose first piece does not fit is cut off: its
position is -1, it is not trained on, and its predicted tag is "O" (`decode_word_tags`). A word whose
first piece fits keeps its label even when its last pieces are cut (as Hugging Face's run_ner does).

Raw text (the exported `tag` signature) is split into words by `split_words`: keras-hub's
WordPieceTokenizer's own pre-tokenization (whitespace, punctuation, CJK characters) without the
lower-casing, so the words come back as written. The recipe (CoNLL words) and the signature (text)
then share `WordAligner` and `decode_word_tags`: training and serving cannot align differently.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from keras_mlm.errors import UserInputError
from keras_mlm.finetuning.packing import pack_segments
from keras_mlm.models.encoder_base import ENCODER_INPUTS

IGNORE = -100
"""Label of the positions the loss skips (every piece but a word's first, the specials, padding)."""
CUT = -1
"""Word position of a word that does not fit in the row."""


def split_words(texts):
    """(batch,) UTF-8 strings -> ragged (batch, None) words, split as keras-hub's WordPieceTokenizer
    pre-tokenizes (whitespace and control characters dropped; punctuation and CJK characters kept,
    one word each); the words keep their case and accents.

    `pretokenize` is the module function keras-hub's tokenizer calls, not a public API (keras-hub is
    pinned ~=0.32); tests check that the words of a text tokenize to the tokenizer's pieces of the text.
    """
    from keras_hub.src.tokenizers.word_piece_tokenizer import pretokenize

    return pretokenize(texts, lowercase=False, strip_accents=False, split=True, split_on_cjk=True)


class WordAligner:
    """Callable in a tf.function: words ragged (batch, None) string -> the encoder inputs, each int32
    (batch, sequence_length), and "word_positions" ragged (batch, None) int32 (see the module docstring).

    `tokenizer` is the vocabulary's WordPiece tokenizer (`StartingPoint.tokenizer()`, special tokens
    in strings off); `special_ids` a mapping with "cls", "sep", "pad" and "unk".
    """

    def __init__(self, tokenizer, sequence_length, special_ids):
        if sequence_length < 3:
            raise UserInputError(f"sequence length {sequence_length} leaves no room for a word ([CLS] word [SEP] needs 3)")
        self.tokenizer = tokenizer
        self.sequence_length = int(sequence_length)
        self.special_ids = {k: int(special_ids[k]) for k in ("cls", "sep", "pad", "unk")}

    def __call__(self, words):
        flat = words.flat_values  # (total words,) every sentence's words, one after the other
        pieces = tf.cast(self.tokenizer(flat), tf.int32).with_row_splits_dtype(tf.int64)  # ragged (total words, None)
        # A word without pieces gets one [UNK], so it has a first piece.
        empty = tf.equal(pieces.row_lengths(), 0)  # (total words,)
        unk = tf.RaggedTensor.from_row_lengths(
            tf.fill([tf.reduce_sum(tf.cast(empty, tf.int32))], self.special_ids["unk"]), tf.cast(empty, tf.int64)
        )
        pieces = tf.concat([pieces, unk], axis=1)  # ragged (total words, >= 1)

        # Piece offsets: where each word and each sentence starts in the flat list of pieces.
        piece_splits = tf.concat([tf.zeros([1], tf.int64), tf.cumsum(pieces.row_lengths())], axis=0)  # (total words + 1,)
        sentence_splits = tf.gather(piece_splits, words.row_splits)  # (batch + 1,)
        sentence_pieces = tf.RaggedTensor.from_row_splits(pieces.flat_values, sentence_splits)  # ragged (batch, None)
        first = piece_splits[:-1] - tf.gather(sentence_splits, words.value_rowids())  # (total words,) index in the sentence
        position = tf.cast(first, tf.int32) + 1  # [CLS] is position 0
        position = tf.where(position <= self.sequence_length - 2, position, CUT)  # [SEP] needs the last slot

        ids = self.special_ids
        inputs = pack_segments(sentence_pieces, None, self.sequence_length, ids["cls"], ids["sep"], ids["pad"])
        inputs["word_positions"] = words.with_flat_values(position)  # ragged (batch, None)
        return inputs


def outside_label_id(labels):
    """The id a cut-off word is tagged with: "O", or the first label of a tag set without one (POS tags)."""
    return list(labels).index("O") if "O" in labels else 0


def decode_word_tags(logits, word_positions, outside_id):
    """Per-position logits (batch, seq, num_labels) -> each word's tag id and probability.

    `word_positions` (batch, n_words) int32 holds each word's first-piece position, `CUT` (-1) for a
    word cut off (and for padding). Returns (tag_ids int32, probabilities float32), both (batch, n_words):
    the most probable label at the word's first piece and its softmax probability; a cut-off word gets
    `outside_id` with probability 0.
    """
    logits = tf.cast(logits, tf.float32)
    word_positions = tf.convert_to_tensor(word_positions, tf.int32)
    probabilities = tf.nn.softmax(logits, axis=-1)  # (batch, seq, num_labels)
    kept = word_positions >= 0  # (batch, n_words)
    at_words = tf.gather(probabilities, tf.maximum(word_positions, 0), batch_dims=1)  # (batch, n_words, num_labels)
    tag_ids = tf.where(kept, tf.cast(tf.argmax(at_words, axis=-1), tf.int32), outside_id)
    best = tf.where(kept, tf.reduce_max(at_words, axis=-1), 0.0)
    return tag_ids, best


# ---------------------------------------------------------------------------------------------------------
# Whole data sets (the recipe): NumPy arrays, aligned once


@dataclasses.dataclass(frozen=True)
class AlignedSentences:
    """Sentences aligned to rows: encoder inputs (N, seq) int32 each, and every sentence's word positions."""

    inputs: dict
    word_positions: list
    """One int32 array per sentence: the first-piece position of each word, `CUT` when cut off."""

    @property
    def cut_words(self):
        """Words that do not fit in their row (tagged "O" when predicting)."""
        return int(sum(int(np.sum(p == CUT)) for p in self.word_positions))

    @property
    def cut_sentences(self):
        return int(sum(bool(np.any(p == CUT)) for p in self.word_positions))


def _ragged_words(sentences):
    lengths = [len(s) for s in sentences]
    flat = [w for s in sentences for w in s]
    return tf.RaggedTensor.from_row_lengths(tf.constant(flat, tf.string, shape=[len(flat)]), tf.constant(lengths, tf.int64))


def align_sentences(aligner, sentences, batch_size=1024):
    """`AlignedSentences` of a list of sentences (each a list of words), aligned `batch_size` at a time."""
    align = tf.function(aligner, input_signature=[tf.RaggedTensorSpec([None, None], tf.string, 1, tf.int64)])
    inputs, positions = [], []
    for start in range(0, len(sentences), batch_size):
        out = align(_ragged_words(sentences[start : start + batch_size]))
        inputs.append({k: v.numpy() for k, v in out.items() if k != "word_positions"})
        positions.extend(np.asarray(row, np.int32) for row in out["word_positions"].to_list())
    if not inputs:
        empty = np.zeros((0, aligner.sequence_length), np.int32)
        return AlignedSentences(dict.fromkeys(ENCODER_INPUTS, empty), [])
    joined = {k: np.concatenate([part[k] for part in inputs]) for k in inputs[0]}
    return AlignedSentences(joined, positions)


def piece_labels(aligned, label_ids):
    """(N, seq) int32 labels: each word's label id on its first piece, `IGNORE` everywhere else.

    `label_ids` is one list of label ids per sentence, parallel to its words.
    """
    rows, seq = aligned.inputs["token_ids"].shape
    labels = np.full((rows, seq), IGNORE, np.int32)
    for row, (positions, ids) in enumerate(zip(aligned.word_positions, label_ids)):
        if len(positions) != len(ids):
            raise ValueError(f"sentence {row}: {len(positions)} words but {len(ids)} labels")
        kept = positions != CUT
        labels[row, positions[kept]] = np.asarray(ids, np.int32)[kept]
    return labels


def predict_word_tags(model, aligned, labels, batch_size=64):
    """The model's tag (a string of `labels`) for every word of every aligned sentence, cut-off words "O"."""
    outside = outside_label_id(labels)
    tags = []
    rows = len(aligned.word_positions)
    for start in range(0, rows, batch_size):
        batch = {k: v[start : start + batch_size] for k, v in aligned.inputs.items()}
        logits = model.predict_on_batch(batch)  # (batch, seq, num_labels)
        positions = aligned.word_positions[start : start + batch_size]
        width = max((len(p) for p in positions), default=0)
        dense = np.full((len(positions), width), CUT, np.int32)  # (batch, n_words)
        for i, p in enumerate(positions):
            dense[i, : len(p)] = p
        tag_ids, _ = decode_word_tags(logits, dense, outside)
        tag_ids = tag_ids.numpy()
        tags.extend([labels[j] for j in tag_ids[i, : len(p)]] for i, p in enumerate(positions))
    return tags
