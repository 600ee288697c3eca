"""prepare + token and whole-word masking with each vocabulary kind, on real text."""

import numpy as np
import pytest

from keras_mlm.data.dataset import read_rows
from keras_mlm.data.prepare import DataConfig, prepare
from keras_mlm.masking import MaskingConfig, MLMMasker
from keras_mlm.tokenizers.learners import LEARNERS
from keras_mlm.tokenizers.vocabulary import Vocabulary, find_saved

KINDS = ("wordpiece", "bpe", "sentencepiece")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, corpora):
    root = tmp_path_factory.mktemp("kinds")
    text = (corpora / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")[:40_000]
    (root / "text.txt").write_text(text, encoding="utf-8")
    out = {}
    for kind in KINDS:
        vocabulary = LEARNERS[kind]([root / "text.txt"], 600, lowercase=kind != "bpe")
        manifest = prepare([root / "text.txt"], vocabulary, root / kind, DataConfig(seq_len=64, rows_per_shard=100))
        rows = np.stack(list(read_rows(str(root / kind)).as_numpy_iterator()))
        out[kind] = (vocabulary, manifest, rows, root / kind)
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_prepare_packs_the_tokenizer_ids_and_saves_the_vocabulary(kind, prepared):
    vocabulary, manifest, rows, directory = prepared[kind]
    assert manifest["vocab_kind"] == kind and manifest["vocab_sha256"] == vocabulary.sha256
    assert np.all(rows[:, 0] == vocabulary.cls_id)
    assert manifest["source_tokens"] == int(np.count_nonzero(~np.isin(rows, vocabulary.special_token_ids)))
    assert Vocabulary.load(find_saved(directory)).sha256 == vocabulary.sha256
    if kind == "bpe":  # byte-level: the packed ids decode back to the text (as the reader gives it), documents separated by [SEP]s
        stream = rows[:, 1:].reshape(-1)
        first_document = vocabulary.decode(stream[: int(np.argmax(stream == vocabulary.sep_id))])
        assert first_document.startswith("First Citizen: Before we proceed any further, hear me speak.")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("strategy", ["token", "whole_word"])
def test_masking_never_selects_specials_and_whole_word_takes_whole_words(kind, strategy, prepared):
    vocabulary, _, rows, _ = prepared[kind]
    masker = MLMMasker.from_vocabulary(vocabulary, 64, MaskingConfig(strategy=strategy, selection_rate=0.15), seed=3)
    x, y, w = (t.numpy() if hasattr(t, "numpy") else {k: v.numpy() for k, v in t.items()} for t in masker(rows))
    used = w > 0
    assert not np.isin(y[used], vocabulary.special_token_ids).any()
    selected = np.zeros(rows.shape, bool)
    for i in range(len(rows)):
        selected[i, x["mask_positions"][i][used[i]]] = True
    candidates = ~np.isin(rows, vocabulary.special_token_ids)
    assert abs(selected.sum() / candidates.sum() - 0.15) < 0.03
    if strategy == "whole_word":
        # A continuation piece is selected exactly when the piece before it (same word) is.
        continuation = np.isin(rows, vocabulary.continuation_ids) & np.pad(candidates[:, :-1], [[0, 0], [1, 0]])
        previous = np.pad(selected[:, :-1], [[0, 0], [1, 0]])
        assert np.array_equal(selected[continuation], previous[continuation])
        assert continuation.sum() > 100  # the test sees many multi-piece words
