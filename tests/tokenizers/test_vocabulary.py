"""The Vocabulary object of each kind: learners, files, in-graph tokenizers, word boundaries, digests."""

import numpy as np
import pytest
import tensorflow as tf

from keras_mlm.errors import UserInputError
from keras_mlm.tokenizers import SPECIAL_TOKENS, vocabulary_sha256
from keras_mlm.tokenizers.learners import LEARNERS
from keras_mlm.tokenizers.vocabulary import SPECIALS, Vocabulary, find_saved

KINDS = ("wordpiece", "bpe", "sentencepiece")
LOWERCASE = {"wordpiece": True, "bpe": False, "sentencepiece": True}


@pytest.fixture(scope="module")
def shakespeare_file(tmp_path_factory, corpora):
    text = (corpora / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")[:80_000]
    path = tmp_path_factory.mktemp("text") / "shakespeare.txt"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def vocabularies(shakespeare_file):
    return {kind: LEARNERS[kind]([shakespeare_file], 800, lowercase=LOWERCASE[kind]) for kind in KINDS}


def _documents(path):
    from keras_mlm.data.readers import iterate_documents

    return [d for d in iterate_documents([path]) if d.strip()]


@pytest.mark.parametrize("kind", KINDS)
def test_learned_vocabulary_has_its_specials_as_ids_0_to_4_and_is_deterministic(kind, vocabularies, shakespeare_file):
    vocabulary = vocabularies[kind]
    assert vocabulary.kind == kind
    assert list(vocabulary.tokens[:5]) == list(SPECIALS[kind])
    assert [vocabulary.pad_id, vocabulary.unk_id, vocabulary.cls_id, vocabulary.sep_id, vocabulary.mask_id] == [0, 1, 2, 3, 4]
    assert (700 if kind != "wordpiece" else 300) <= len(vocabulary) <= 800  # WordPiece's learner stops early
    assert vocabulary.lowercase == LOWERCASE[kind]
    again = LEARNERS[kind]([shakespeare_file], 800, lowercase=LOWERCASE[kind])
    assert again.tokens == vocabulary.tokens and again.sha256 == vocabulary.sha256


@pytest.mark.parametrize("kind", KINDS)
def test_save_and_load_give_the_same_vocabulary(kind, vocabularies, tmp_path):
    vocabulary = vocabularies[kind]
    path = vocabulary.save_beside(tmp_path)
    assert find_saved(tmp_path) == path
    loaded = Vocabulary.load(path)
    assert (loaded.kind, loaded.tokens, loaded.special_ids, loaded.lowercase) == (
        vocabulary.kind, vocabulary.tokens, vocabulary.special_ids, vocabulary.lowercase)
    assert loaded.sha256 == vocabulary.sha256
    assert len({v.sha256 for v in vocabularies.values()}) == 3


def test_wordpiece_digest_is_the_one_manifests_already_hold(vocabularies):
    tokens = list(vocabularies["wordpiece"].tokens)
    assert vocabularies["wordpiece"].sha256 == vocabulary_sha256(tokens)
    assert Vocabulary.from_tokens(list(SPECIAL_TOKENS) + ["the", "cat"]).lowercase is True
    assert Vocabulary.from_tokens(list(SPECIAL_TOKENS) + ["The", "cat"]).lowercase is False


@pytest.mark.parametrize("kind", ["bpe", "sentencepiece"])
def test_in_graph_tokenizer_round_trips_real_text(kind, vocabularies, shakespeare_file):
    vocabulary = vocabularies[kind]
    documents = _documents(shakespeare_file)[:200]
    tokenizer = vocabulary.tokenizer()
    ids = tf.function(tokenizer)(tf.constant(documents))  # in a graph, as in tf.data
    decoded = [vocabulary.decode(row) for row in ids.to_list()]
    if kind == "bpe":
        assert decoded == documents  # byte-level: exact bytes back
    else:
        import sentencepiece

        normalised = sentencepiece.SentencePieceProcessor(model_proto=vocabulary.model_proto)
        expected = normalised.decode(normalised.encode(documents))
        assert decoded == expected
        assert decoded == [" ".join(d.lower().split()) for d in documents]  # NFKC, case folded, spaces collapsed
    assert all(i != vocabulary.unk_id for row in ids.to_list() for i in row) or kind == "sentencepiece"


@pytest.mark.parametrize("kind", ["bpe", "sentencepiece"])
def test_a_written_mask_becomes_the_mask_id_in_place_of_a_word(kind, vocabularies):
    vocabulary = vocabularies[kind]
    mask = vocabulary.mask_token
    texts = [f"the king is {mask} of rome", f"{mask} is good"]
    with_mask = vocabulary.tokenizer(special_tokens_in_strings=True)
    plain = vocabulary.tokenizer()
    rows = with_mask(texts)
    for row, text in zip(rows, texts):
        assert row.count(vocabulary.mask_id) == 1
        # Around the mask: the ids of the text before and after it, no bare space piece.
        position = row.index(vocabulary.mask_id)
        assert vocabulary.tokens[row[position - 1]] not in ("Ġ", "▁") if position else True
        assert vocabulary.tokens[row[position + 1]][0] in ("Ġ", "▁") if position + 1 < len(row) else True
    # Corpus text keeps a written mask as ordinary characters.
    ids = tf.function(plain)(tf.constant(texts)).to_list()
    assert all(vocabulary.mask_id not in row for row in ids)


def test_word_boundaries_of_each_kind(vocabularies):
    wordpiece = vocabularies["wordpiece"]
    assert all(wordpiece.tokens[i].startswith("##") for i in wordpiece.continuation_ids)
    bpe = vocabularies["bpe"]
    assert bpe.starts_word("Ġking") and bpe.starts_word(",") and bpe.starts_word("Ċ") and not bpe.starts_word("ing")
    sp = vocabularies["sentencepiece"]
    assert sp.starts_word("▁king") and sp.starts_word(",") and not sp.starts_word("ing")
    for vocabulary in vocabularies.values():
        continuation = set(vocabulary.continuation_ids)
        assert not continuation & set(vocabulary.special_token_ids)
        assert 0 < len(continuation) < len(vocabulary) - 5


def test_bpe_refuses_lowercase_and_bad_files_are_refused(shakespeare_file, tmp_path):
    with pytest.raises(UserInputError, match="cased"):
        LEARNERS["bpe"]([shakespeare_file], 300, lowercase=True)
    (tmp_path / "bad.model").write_bytes(b"not a proto at all")
    with pytest.raises(UserInputError, match="SentencePiece"):
        Vocabulary.load(tmp_path / "bad.model")
    (tmp_path / "folder").mkdir()
    with pytest.raises(UserInputError, match="merges.txt"):
        Vocabulary.load(tmp_path / "folder")
