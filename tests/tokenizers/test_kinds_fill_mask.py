"""Fill-mask with BPE and SentencePiece vocabularies: the written mask is found and pieces join words."""

import numpy as np
import pytest
import tensorflow as tf

from keras_mlm.inference.fill_mask import FillMask
from keras_mlm.tokenizers.learners import LEARNERS


class FavouriteToken:
    """A stand-in model: at every mask slot, logits that put almost all probability on one id."""

    def __init__(self, vocabulary_size, favourite):
        self.vocabulary_size, self.favourite = vocabulary_size, favourite

    def __call__(self, x, training=False):
        positions = x["mask_positions"]
        logits = tf.one_hot(tf.fill(tf.shape(positions), self.favourite), self.vocabulary_size) * 20.0
        return logits  # (batch, n_masks, vocab)


@pytest.fixture(scope="module")
def vocabularies(tmp_path_factory, corpora):
    path = tmp_path_factory.mktemp("fill") / "text.txt"
    path.write_text((corpora / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")[:40_000], encoding="utf-8")
    return {kind: LEARNERS[kind]([path], 600, lowercase=kind != "bpe") for kind in ("bpe", "sentencepiece")}


@pytest.mark.parametrize("kind, word, expected", [
    ("bpe", "Ġthe", "Is the king the man?"),
    ("sentencepiece", "▁the", "is the king the man?"),
])
def test_a_word_start_piece_fills_the_gap_as_a_word(kind, word, expected, vocabularies):
    vocabulary = vocabularies[kind]
    model = FavouriteToken(len(vocabulary), vocabulary.tokens.index(word))
    fill = FillMask(model, vocabulary, sequence_length=32)
    text = f"Is the king {vocabulary.mask_token} man?" if kind == "bpe" else f"is the king {vocabulary.mask_token} man?"
    rows = fill.encode([text])
    assert np.count_nonzero(rows == vocabulary.mask_id) == 1
    mask_at = int(np.flatnonzero(rows[0] == vocabulary.mask_id)[0])
    assert vocabulary.tokens[rows[0, mask_at - 1]] not in ("Ġ", "▁")  # no bare space piece before the mask
    result = fill(text, top_k=1)
    assert result["masks"][0]["predictions"][0]["token"] == word
    assert result["filled"] == expected


@pytest.mark.parametrize("kind", ["bpe", "sentencepiece"])
def test_a_continuation_piece_joins_the_word_before_the_mask(kind, vocabularies):
    vocabulary = vocabularies[kind]
    piece = next(t for i, t in enumerate(vocabulary.tokens) if i in set(vocabulary.continuation_ids) and t.isalpha())
    fill = FillMask(FavouriteToken(len(vocabulary), vocabulary.tokens.index(piece)), vocabulary, sequence_length=32)
    result = fill(f"the king {vocabulary.mask_token} is here", top_k=1)
    assert result["filled"] == f"the king{piece} is here"
