import json
import os

import numpy as np
import pytest

from keras_mlm.data.dataset import read_rows
from keras_mlm.data.prepare import DataConfig, prepare, read_manifest
from keras_mlm.errors import UserInputError
from keras_mlm.tokenizers import SPECIAL_TOKENS, make_tokenizer, write_vocabulary

WORDS = "the cat dog sat on a mat and ran far away quick brown fox jumps over lazy big red sun".split()
VOCAB = list(SPECIAL_TOKENS) + WORDS  # word i has id 5 + i
PAD, CLS, SEP = 0, 2, 3


def all_rows(directory):
    return np.stack(list(read_rows(str(directory)).as_numpy_iterator()))


def unpack(rows):
    """Inverse of packing: the documents' id lists, in order."""
    assert np.all(rows[:, 0] == CLS), "every row starts with [CLS]"
    stream = rows[:, 1:].reshape(-1)
    assert np.all(stream[np.argmax(stream == PAD) :] == PAD) if PAD in stream else True, "padding only at the end"
    stream = stream[stream != PAD]
    docs, current = [], []
    for token in stream:
        if token == SEP:
            docs.append(current)
            current = []
        else:
            current.append(int(token))
    assert current == [], "the stream ends with a [SEP]"
    return docs


def test_packing_loses_and_duplicates_nothing_across_rows_and_shards(tmp_path):
    rng = np.random.default_rng(0)
    docs = [[WORDS[j] for j in rng.integers(0, len(WORDS), rng.integers(1, 30))] for _ in range(60)]
    (tmp_path / "corpus.txt").write_text("\n\n".join(" ".join(d) for d in docs) + "\n")
    out = tmp_path / "shards"
    manifest = prepare([tmp_path / "corpus.txt"], VOCAB, out, DataConfig(seq_len=8, rows_per_shard=5))
    expected = [[5 + WORDS.index(w) for w in d] for d in docs]
    rows = all_rows(out)
    assert rows.shape == (manifest["sequences"], 8)
    assert unpack(rows) == expected  # same documents, same order, nothing dropped or duplicated
    n_tokens = sum(map(len, docs))
    assert manifest["source_tokens"] == n_tokens == int(np.count_nonzero(rows >= len(SPECIAL_TOKENS)))
    assert manifest["documents"] == 60
    assert len(manifest["shards"]) == -(-manifest["sequences"] // 5) > 3
    # Rows are full except the last: [CLS] + 7 ids per row.
    assert manifest["sequences"] == -(-(n_tokens + 60) // 7)
    assert manifest["padding_fraction"] == pytest.approx(np.count_nonzero(rows == PAD) / rows.size)
    assert sorted(os.listdir(out)) == sorted([s["file"] for s in manifest["shards"]] + ["manifest.json", "vocab.txt"])


def test_real_text_counts_match_the_tokenizer(tmp_path, corpora):
    text = (corpora / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")[:60_000]
    (tmp_path / "shakespeare.txt").write_text(text)
    from keras_mlm.tokenizers import train_vocabulary

    vocab = train_vocabulary([tmp_path / "shakespeare.txt"], 600)
    write_vocabulary(vocab, tmp_path / "vocab.txt")
    manifest = prepare([tmp_path / "shakespeare.txt"], tmp_path / "vocab.txt", tmp_path / "out", DataConfig(seq_len=64, rows_per_shard=50))
    from keras_mlm.data.readers import iterate_documents

    documents = list(iterate_documents([tmp_path / "shakespeare.txt"]))
    tokenizer = make_tokenizer(vocab)
    expected = [list(ids) for ids in tokenizer(documents)]
    rows = all_rows(tmp_path / "out")
    assert unpack(rows) == expected
    assert manifest["documents"] == len(documents)
    assert manifest["source_tokens"] == sum(map(len, expected)) == int(np.count_nonzero(rows >= len(SPECIAL_TOKENS)))
    assert manifest["padding_fraction"] < 0.01
    for field in ("documents", "source_tokens", "sequences", "seq_len", "padding_fraction", "vocab_sha256", "shards"):
        assert field in json.loads((tmp_path / "out" / "manifest.json").read_text())


def test_seq_len_below_8_is_refused(tmp_path):
    with pytest.raises(UserInputError, match="seq_len must be an integer >= 8"):
        DataConfig(seq_len=4)


def test_empty_corpus_leaves_nothing(tmp_path):
    (tmp_path / "empty.txt").write_text("\n\n   \n")
    with pytest.raises(UserInputError, match="empty corpus"):
        prepare([tmp_path / "empty.txt"], VOCAB, tmp_path / "out", DataConfig(seq_len=8))
    assert os.listdir(tmp_path / "out") == []


def test_bad_file_midway_leaves_no_shard_behind(tmp_path):
    (tmp_path / "a.txt").write_text(("the cat sat on a mat\n\n" * 500))
    (tmp_path / "b.txt").write_bytes(b"the dog \xff\xfe ran\n")
    with pytest.raises(UserInputError, match=r"b.txt:1: bytes that are not UTF-8 at byte offset 8"):
        prepare([tmp_path / "a.txt", tmp_path / "b.txt"], VOCAB, tmp_path / "out", DataConfig(seq_len=8, rows_per_shard=10))
    assert os.listdir(tmp_path / "out") == []


def test_vocabulary_lacking_a_special_is_refused(tmp_path):
    write_vocabulary([t for t in VOCAB if t != "[MASK]"], tmp_path / "vocab.txt")
    (tmp_path / "a.txt").write_text("the cat\n")
    with pytest.raises(UserInputError, match=r"vocab.txt: vocabulary lacks required special token\(s\) \[MASK\]"):
        prepare([tmp_path / "a.txt"], tmp_path / "vocab.txt", tmp_path / "out")


def test_existing_output_needs_overwrite_and_leftovers_are_cleared(tmp_path):
    (tmp_path / "a.txt").write_text("the cat sat\n\nthe dog ran\n")
    prepare([tmp_path / "a.txt"], VOCAB, tmp_path / "out", DataConfig(seq_len=8))
    with pytest.raises(UserInputError, match="already holds prepared shards"):
        prepare([tmp_path / "a.txt"], VOCAB, tmp_path / "out", DataConfig(seq_len=8))
    # A killed run leaves shards without a manifest (and maybe a temp file): the next run clears them.
    os.remove(tmp_path / "out" / "manifest.json")
    (tmp_path / "out" / ".shard-00009.tfrecord.tmp").write_bytes(b"half")
    (tmp_path / "out" / "shard-00009.tfrecord").write_bytes(b"old")
    manifest = prepare([tmp_path / "a.txt"], VOCAB, tmp_path / "out", DataConfig(seq_len=8))
    assert sorted(os.listdir(tmp_path / "out")) == ["manifest.json", "shard-00000.tfrecord", "vocab.txt"]
    assert read_manifest(tmp_path / "out") == manifest
    prepare([tmp_path / "a.txt"], VOCAB, tmp_path / "out", DataConfig(seq_len=8), overwrite=True)


def test_not_a_shards_directory(tmp_path):
    with pytest.raises(UserInputError, match="not a prepared shards directory"):
        read_manifest(tmp_path)
