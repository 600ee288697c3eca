"""Word <-> word-piece alignment: exact rows, first-piece positions, cut words, labels, decoding; and on
real WNUT-17 sentences, the per-word rows equal the tokenizer run on the whole text."""

import collections

import numpy as np
import pytest
import tensorflow as tf

from keras_mlm.errors import UserInputError
from keras_mlm.finetuning.conll import read_conll
from keras_mlm.finetuning.packing import pack_segments
from keras_mlm.finetuning.token_alignment import (
    CUT,
    IGNORE,
    WordAligner,
    align_sentences,
    decode_word_tags,
    piece_labels,
    split_words,
)
from keras_mlm.tokenizers import SPECIAL_TOKENS, make_tokenizer

TOKENS = list(SPECIAL_TOKENS) + ["eu", "rejects", "german", "##ic", "@", "paul", "##walk", "new", "york", ".", "-"]
ID = {t: i for i, t in enumerate(TOKENS)}
PAD, UNK, CLS, SEP = (ID[t] for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]"))
SPECIAL_IDS = {"pad": PAD, "unk": UNK, "cls": CLS, "sep": SEP}


def _align(sentences, seq_len, tokens=TOKENS, lowercase=True):
    return align_sentences(WordAligner(make_tokenizer(tokens, lowercase), seq_len, SPECIAL_IDS), sentences)


def test_first_piece_positions_and_rows():
    aligned = _align([["EU", "rejects", "Germanic", "New"], ["@paulwalk", "."]], seq_len=8)
    eu, rejects, german, ic, at, paul, walk, new, dot = (ID[t] for t in ("eu", "rejects", "german", "##ic", "@", "paul", "##walk", "new", "."))
    np.testing.assert_array_equal(aligned.inputs["token_ids"], [
        [CLS, eu, rejects, german, ic, new, SEP, PAD],
        [CLS, at, paul, walk, dot, SEP, PAD, PAD],  # "@paulwalk" is one word of three pieces
    ])
    np.testing.assert_array_equal(aligned.inputs["padding_mask"], [[1, 1, 1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1, 0, 0]])
    np.testing.assert_array_equal(aligned.inputs["segment_ids"], np.zeros((2, 8)))
    assert [p.tolist() for p in aligned.word_positions] == [[1, 2, 3, 5], [1, 4]]
    assert aligned.cut_words == 0


def test_words_past_the_row_are_cut_and_a_cut_word_keeps_its_first_piece():
    aligned = _align([["New", "Germanic", "@paulwalk", "EU", "York"]], seq_len=7)
    # [CLS] new german ##ic @ paul [SEP]: "@paulwalk" starts at 4 and loses ##walk; EU and York do not fit.
    np.testing.assert_array_equal(aligned.inputs["token_ids"], [[CLS, ID["new"], ID["german"], ID["##ic"], ID["@"], ID["paul"], SEP]])
    assert aligned.word_positions[0].tolist() == [1, 2, 4, CUT, CUT]
    assert (aligned.cut_words, aligned.cut_sentences) == (2, 1)


def test_unknown_words_and_words_without_pieces_get_one_unk():
    aligned = _align([["xyz", "\u200b", "EU"], []], seq_len=8)
    np.testing.assert_array_equal(aligned.inputs["token_ids"], [[CLS, UNK, UNK, ID["eu"], SEP, PAD, PAD, PAD], [CLS, SEP] + [PAD] * 6])
    assert [p.tolist() for p in aligned.word_positions] == [[1, 2, 3], []]


def test_a_row_needs_room_for_one_word():
    with pytest.raises(UserInputError, match="sequence length 2 leaves no room for a word"):
        WordAligner(make_tokenizer(TOKENS, True), 2, SPECIAL_IDS)


def test_labels_on_first_pieces_only():
    aligned = _align([["EU", "Germanic", "@paulwalk"], ["New", "York", "EU", "EU", "EU", "EU"]], seq_len=6)
    labels = piece_labels(aligned, [[1, 0, 2], [3, 4, 0, 1, 2, 1]])
    x = IGNORE
    np.testing.assert_array_equal(labels, [
        [x, 1, 0, x, 2, x],  # [CLS] eu german ##ic @ (paul cut) [SEP]
        [x, 3, 4, 0, 1, x],  # [CLS] new york eu eu [SEP]; the last two EU do not fit
    ])
    with pytest.raises(ValueError, match="sentence 0: 3 words but 2 labels"):
        piece_labels(aligned, [[1, 0], [0] * 6])


def test_decode_reads_each_words_first_piece_and_tags_cut_words_outside():
    logits = np.zeros((1, 5, 3), np.float32)
    logits[0, 1] = [0.0, 3.0, 0.0]  # word 0 -> label 1
    logits[0, 2] = [0.0, 0.0, 9.0]  # a second piece: never read
    logits[0, 3] = [5.0, 0.0, 5.0]  # word 1 -> label 0 (argmax takes the first of a tie)
    tag_ids, probabilities = decode_word_tags(logits, np.array([[1, 3, CUT]], np.int32), outside_id=0)
    np.testing.assert_array_equal(tag_ids, [[1, 0, 0]])
    e3, e5 = np.exp(3.0), np.exp(5.0)
    np.testing.assert_allclose(probabilities, [[e3 / (e3 + 2), e5 / (2 * e5 + 1), 0.0]], rtol=1e-6)


def test_split_words_keeps_case_and_accents_and_splits_punctuation_and_cjk():
    words = split_words(tf.constant(["Café NEW-York,\tsaid  @Paul 東京!", "", "   "]))
    assert [[w.decode() for w in row] for row in words.to_list()] == [
        ["Café", "NEW", "-", "York", ",", "said", "@", "Paul", "東", "京", "!"], [], [],
    ]


def _wnut_vocabulary(corpora, lowercase):
    """Specials, every character and "##" + character of WNUT-17 train, its 1500 most frequent words."""
    words = [w for sentence in read_conll(corpora / "tasks" / "wnut17" / "train.conll").words for w in sentence]
    if lowercase:
        words = [w.lower() for w in words]
    chars = sorted({c for w in words for c in w})
    frequent = [w for w, _ in collections.Counter(words).most_common(1500) if w not in chars and not w.startswith("[")]
    return list(SPECIAL_TOKENS) + chars + ["##" + c for c in chars] + frequent


def test_no_sentences_give_empty_rows_of_every_encoder_input():
    aligned = _align([], seq_len=8)
    assert sorted(aligned.inputs) == ["padding_mask", "segment_ids", "token_ids"]
    assert all(v.shape == (0, 8) and v.dtype == np.int32 for v in aligned.inputs.values())
    assert aligned.word_positions == [] and aligned.cut_words == 0


@pytest.mark.parametrize("lowercase", [True, False])
def test_per_word_rows_equal_the_tokenized_text_on_wnut17(corpora, lowercase):
    tokens = _wnut_vocabulary(corpora, lowercase)
    ids = {t: i for i, t in enumerate(tokens)}
    special_ids = {"pad": ids["[PAD]"], "unk": ids["[UNK]"], "cls": ids["[CLS]"], "sep": ids["[SEP]"]}
    tokenizer = make_tokenizer(tokens, lowercase)
    texts = [" ".join(words) for words in read_conll(corpora / "tasks" / "wnut17" / "dev.conll").words[:300]]
    seq_len = 64
    words = [[w.decode() for w in row] for row in split_words(tf.constant(texts)).to_list()]
    aligned = align_sentences(WordAligner(tokenizer, seq_len, special_ids), words)

    @tf.function
    def whole(texts):
        return pack_segments(tokenizer(texts), None, seq_len, special_ids["cls"], special_ids["sep"], special_ids["pad"])

    expected = whole(tf.constant(texts))
    for key in ("token_ids", "segment_ids", "padding_mask"):
        np.testing.assert_array_equal(aligned.inputs[key], expected[key].numpy())
    # Each word's first piece, found independently: the pieces of the words before it, +1 for [CLS].
    flat = [w for row in words for w in row]
    counts = tf.function(lambda w: tokenizer(w).row_lengths())(tf.constant(flat)).numpy()
    counts = np.maximum(counts, 1)  # a word without pieces gets one [UNK]
    offset = 0
    for row, positions in zip(words, aligned.word_positions):
        row_counts = counts[offset : offset + len(row)]
        offset += len(row)
        starts = 1 + np.cumsum(row_counts) - row_counts
        np.testing.assert_array_equal(positions, np.where(starts <= seq_len - 2, starts, CUT))
    assert aligned.cut_words > 0  # some tweets do not fit in 64 pieces: the cut path is exercised
