"""evaluate and score with byte-level BPE and SentencePiece runs: text tokenized by the run's own
vocabulary, rows packed with its specials, and the numbers those of the ids it makes."""

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))  # kind_runs.py (importlib mode)
import kind_runs  # noqa: E402

KINDS = ("bpe", "sentencepiece")
HELD_OUT = 3_000
"""Characters of held-out text (tinyshakespeare after the vocabulary's slice): about 1,000 pieces."""


@pytest.fixture(scope="module")
def runs(tmp_path_factory, corpora):
    from keras_mlm.inference.run import load_run

    root = tmp_path_factory.mktemp("runs")
    corpus = kind_runs.corpus_slice(corpora, root)
    loaded = {}
    for kind in KINDS:
        run_dir = kind_runs.write_run(root / kind, kind_runs.train_vocabulary(kind, corpus))
        loaded[kind] = load_run(str(run_dir))
    return loaded


@pytest.fixture(scope="module")
def held_out(tmp_path_factory, corpora):
    text = (corpora / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")
    start = kind_runs.CORPUS_CHARACTERS
    path = tmp_path_factory.mktemp("held_out") / "held_out.txt"
    path.write_text(text[start : start + HELD_OUT], encoding="utf-8")
    return path


def test_evaluate_on_text_is_evaluate_on_the_shards_the_vocabulary_prepares(runs, held_out, tmp_path):
    from keras_mlm.data.prepare import DataConfig, prepare, read_manifest
    from keras_mlm.evaluation.evaluate import evaluate

    run = runs["sentencepiece"]  # (BPE: the same code; preparing twice with it takes seconds more)
    from_text = evaluate(run.masked_lm, run.vocabulary, [str(held_out)], seq_len=run.sequence_length, lowercase=run.lowercase)
    shards = tmp_path / "shards"
    prepare([str(held_out)], run.vocabulary, str(shards), DataConfig(seq_len=run.sequence_length))
    assert read_manifest(str(shards))["vocab_sha256"] == run.vocabulary.sha256
    assert evaluate(run.masked_lm, run.vocabulary, str(shards)) == from_text


@pytest.mark.parametrize("kind", KINDS)
def test_evaluate_scores_the_masked_pieces_of_the_text(kind, runs, held_out):
    from keras_mlm.evaluation.evaluate import evaluate

    run = runs[kind]
    result = evaluate(run.masked_lm, run.vocabulary, [str(held_out)], seq_len=run.sequence_length, lowercase=run.lowercase)
    # About 15% of roughly a thousand pieces, scored by an untrained model: near-uniform over the 600.
    assert 100 < result["tokens"] < 250
    assert result["perplexity"] == pytest.approx(math.exp(result["loss"]))
    assert abs(result["loss"] - math.log(len(run.vocabulary))) < 0.3


@pytest.mark.parametrize("kind", KINDS)
def test_score_is_one_mask_at_a_time_over_the_vocabulary_s_own_pieces(kind, runs):
    from keras_mlm.evaluation.evaluate import score

    run = runs[kind]
    vocabulary, length = run.vocabulary, run.sequence_length
    sentence = "To be, or not to be: that is the question."
    (result,) = score(run.masked_lm, vocabulary, [sentence], sequence_length=length, batch_size=4)
    ids = [int(i) for i in vocabulary.tokenizer()([sentence])[0]]
    assert vocabulary.decode(ids) == (sentence.lower() if vocabulary.lowercase else sentence)
    row = [vocabulary.cls_id, *ids, vocabulary.sep_id] + [vocabulary.pad_id] * (length - len(ids) - 2)
    expected = 0.0
    for position in range(1, len(ids) + 1):
        masked = np.array([row])
        masked[0, position] = vocabulary.mask_id
        x = {
            "token_ids": tf.constant(masked, tf.int32),
            "segment_ids": tf.zeros((1, length), tf.int32),
            "padding_mask": tf.constant(masked != vocabulary.pad_id),
            "mask_positions": tf.constant([[position]], tf.int32),
        }
        expected += float(tf.nn.log_softmax(run.masked_lm(x, training=False)[0, 0])[row[position]])
    assert result["tokens"] == len(ids)
    assert result["pll"] == pytest.approx(expected, abs=1e-4)
    assert result["pseudo_perplexity"] == pytest.approx(math.exp(-expected / len(ids)), rel=1e-4)


def test_score_reads_a_written_mask_token_as_text(runs):
    from keras_mlm.evaluation.evaluate import score

    run = runs["bpe"]
    (result,) = score(run.masked_lm, run.vocabulary, ["a <mask> b"], sequence_length=run.sequence_length)
    assert result["tokens"] > 3  # "<", "mask", ">" pieces, not the one mask id
