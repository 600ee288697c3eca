"""Run folders of every vocabulary kind: `load_run` finds the vocabulary `pretrain` saved, and fill-mask
reads text with that kind's mask token and writes predictions back as text."""

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_mlm.errors import UserInputError

sys.path.insert(0, str(Path(__file__).resolve().parent))  # kind_runs.py beside this file (importlib mode)
import kind_runs  # noqa: E402

KINDS = ("wordpiece", "bpe", "sentencepiece")


@pytest.fixture(scope="module")
def vocabularies(tmp_path_factory, corpora):
    corpus = kind_runs.corpus_slice(corpora, tmp_path_factory.mktemp("corpus"))
    return {kind: kind_runs.train_vocabulary(kind, corpus) for kind in KINDS}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, vocabularies):
    root = tmp_path_factory.mktemp("runs")
    return {kind: kind_runs.write_run(root / kind, vocabulary) for kind, vocabulary in vocabularies.items()}


@pytest.fixture(scope="module")
def loaded(runs):
    from keras_mlm.inference.run import load_run

    return {kind: load_run(str(run_dir)) for kind, run_dir in runs.items()}


@pytest.mark.parametrize("kind, saved", [("wordpiece", "vocab.txt"), ("bpe", "vocab-bpe"), ("sentencepiece", "vocab.model")])
def test_load_run_finds_the_vocabulary_of_each_kind(kind, saved, runs, loaded, vocabularies):
    assert (runs[kind] / saved).exists()
    run, vocabulary = loaded[kind], vocabularies[kind]
    assert (run.vocabulary.kind, run.vocabulary.sha256, run.lowercase) == (kind, vocabulary.sha256, vocabulary.lowercase)
    assert run.tokens == list(vocabulary.tokens)  # the token list WordPiece-only callers read
    assert run.model.encoder.vocabulary_size == len(run.vocabulary)


def test_a_folder_without_a_vocabulary_names_the_folder_and_the_names_looked_for(runs, tmp_path):
    from keras_mlm.inference.run import load_run

    copy = tmp_path / "run"
    shutil.copytree(runs["bpe"], copy)
    shutil.rmtree(copy / "vocab-bpe")
    with pytest.raises(UserInputError) as error:
        load_run(str(copy))
    assert str(error.value) == (
        f"{copy}/vocab.txt: vocabulary file not found (nor vocab-bpe/ nor vocab.model): the run folder holds no "
        "vocabulary; `keras-mlm pretrain` writes one of vocab.txt, vocab-bpe/, vocab.model beside model.keras"
    )


def test_a_folder_with_two_vocabularies_is_refused(runs, vocabularies, tmp_path):
    from keras_mlm.inference.run import load_run

    copy = tmp_path / "run"
    shutil.copytree(runs["sentencepiece"], copy)
    vocabularies["wordpiece"].save_beside(str(copy))  # a stale vocab.txt beside vocab.model
    with pytest.raises(UserInputError, match=r"holds 2 vocabularies \(vocab\.txt, vocab\.model\); keep only the one"):
        load_run(str(copy))


def test_a_vocabulary_of_another_size_is_named(runs, corpora, tmp_path):
    from keras_mlm.inference.run import load_run

    copy = tmp_path / "run"
    shutil.copytree(runs["bpe"], copy)
    shutil.rmtree(copy / "vocab-bpe")
    kind_runs.train_vocabulary("bpe", kind_runs.corpus_slice(corpora, tmp_path), size=400).save_beside(str(copy))
    with pytest.raises(UserInputError, match=r"vocab-bpe: holds 400 tokens, the model in model.keras has 600 embedding rows"):
        load_run(str(copy))


@pytest.fixture(scope="module")
def fills(loaded):
    """One FillMask per kind: tracing keras-hub's BPE tokenizer takes seconds, so it is done once."""
    from keras_mlm.inference.fill_mask import FillMask

    return {kind: FillMask(run.masked_lm, run.vocabulary, run.sequence_length) for kind, run in loaded.items()}


TEXTS = {
    "bpe": ["The king is <mask> here.", "To be, or not to <mask>: that is the question."],
    "sentencepiece": ["The king is [MASK] here.", "To be, or not to [MASK]: that is the question."],
}


@pytest.mark.parametrize("kind", ["bpe", "sentencepiece"])
def test_fill_mask_ranks_pieces_and_writes_them_as_text(kind, fills):
    fill = fills[kind]
    vocabulary = fill.vocabulary
    results = fill(TEXTS[kind], top_k=4)
    rows = fill.encode(TEXTS[kind])
    for text, row, result in zip(TEXTS[kind], rows, results):
        (mask,) = result["masks"]
        assert row[0] == vocabulary.cls_id and row[mask["position"]] == vocabulary.mask_id
        predictions = mask["predictions"]
        probabilities = [p["probability"] for p in predictions]
        assert len(predictions) == 4 and probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1
        for p in predictions:
            assert p["token"] in vocabulary.tokens and vocabulary.tokens.index(p["token"]) not in vocabulary.special_token_ids
            assert p["text"] == vocabulary.piece_text(p["token"])  # BPE: bytes decoded (" the", not "Ġthe")
        best = predictions[0]["token"]
        assert result["filled"] == fill.fill_text(text, [best])  # the user's text, the best piece in the gap
        assert vocabulary.mask_token not in result["filled"]


def test_fill_mask_of_a_run_folder_is_its_masked_lm_with_its_vocabulary(runs, fills):
    from keras_mlm.inference.fill_mask import fill_mask

    texts = TEXTS["sentencepiece"]  # (keras-hub's SentencePiece tokenizer traces in a moment, BPE's in seconds)
    assert fill_mask(str(runs["sentencepiece"]), texts, top_k=3) == fills["sentencepiece"](texts, top_k=3)


def test_bpe_fill_mask_reads_bert_s_mask_as_its_own(fills):
    fill = fills["bpe"]
    own, bert = fill(["The king is <mask> here.", "The king is [MASK] here."], top_k=3)
    assert own["masks"] == bert["masks"] and own["filled"] == bert["filled"]
    assert bert["text"] == "The king is [MASK] here."  # the text as the user wrote it
    np.testing.assert_array_equal(*fill.encode(["The king is <mask> here.", "The king is [MASK] here."]))


@pytest.mark.parametrize("kind, text, message", [
    ("bpe", "The king is here.", r"text 1 has no <mask>: 'The king is here.'"),
    ("sentencepiece", "The king is here.", r"text 1 has no \[MASK\]: 'The king is here.'"),
    ("bpe", "the " * 40 + "<mask>", r"text 1 is \d+ tokens long with <s>/</s>; the model takes at most 32"),
])
def test_fill_mask_errors_name_the_kind_s_own_tokens(kind, text, message, fills):
    with pytest.raises(UserInputError, match=message):
        fills[kind]([text, text])


@pytest.mark.parametrize("kind", ["bpe", "sentencepiece"])
def test_the_fine_tuning_recipes_refuse_a_non_wordpiece_run_in_one_line(kind, runs, corpora, capsys):
    import importlib.util

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("recipes_classification", root / "recipes" / "classification.py")
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    sst2 = corpora / "tasks" / "sst2"
    from keras_mlm.finetuning.common import run_recipe

    argv = ["--run", str(runs[kind]), "--train", str(sst2 / "train.tsv"), "--dev", str(sst2 / "dev.tsv"), "--out", str(runs[kind]) + "-sst2"]
    code = run_recipe(recipe.main, argv)
    err = capsys.readouterr().err
    assert code == 2 and f"a {kind} vocabulary; the fine-tuning recipes read WordPiece runs only for now" in err
