"""The text signature for byte-level BPE and SentencePiece runs: the vocabulary's own keras-hub tokenizer
in the graph, its specials packed, predictions written as text, the same numbers as `FillMask`.

Fast: the `fill_mask_text` function traced in this process against `FillMask` (tokenization, packing,
probabilities, tokens as text, `filled`, errors). Slow (`--run-slow`): each kind's run exported once
(every signature, warm-up replayed) and served from a fresh process without keras_hub or keras_mlm,
as TF Serving would load it.

Tolerance: the traced function and `FillMask` run the same float32 weights through the same ops, so
probabilities agree to 1e-6; the loaded SavedModel's graph may fuse ops differently (1e-4 asked).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from keras_mlm.errors import UserInputError

from .conftest import corpus_texts

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))  # kind_runs.py (importlib mode)
import kind_runs  # noqa: E402

KINDS = ("bpe", "sentencepiece")
CLIENT = Path(__file__).resolve().parent / "signature_client.py"
TRACED_TOLERANCE = 1e-6
SERVED_TOLERANCE = 1e-4
LITERAL_TEXTS = [
    "The King is [MASK] of Denmark.",
    "[MASK] me, my [MASK]!",
    "Café au lait, [MASK] 42 times.",  # accents and digits: bytes for BPE, pieces or <unk> for SentencePiece
    "東京 is the [MASK] of japan",
    "  Spaces   around [MASK]  ",
    "[MASK]",
]
BPE_TEXTS = ["To be, or not to <mask>: that is the question.", "<mask> and [MASK] together"]  # its own mask, and BERT's


@pytest.fixture(scope="module")
def runs(tmp_path_factory, corpora):
    from keras_mlm.inference.run import load_run

    root = tmp_path_factory.mktemp("kinds")
    corpus = kind_runs.corpus_slice(corpora, root)
    return {kind: load_run(str(kind_runs.write_run(root / kind, kind_runs.train_vocabulary(kind, corpus)))) for kind in KINDS}


@pytest.fixture(scope="module")
def fills(runs):
    from keras_mlm.inference.fill_mask import FillMask

    return {kind: FillMask(run.masked_lm, run.vocabulary, run.sequence_length) for kind, run in runs.items()}


@pytest.fixture(scope="module")
def texts(fills):
    """Per kind: the literal texts and corpus lines with masks, those that fit the model's 32 positions."""
    out = {}
    for kind, fill in fills.items():
        candidates = LITERAL_TEXTS + (BPE_TEXTS if kind == "bpe" else []) + corpus_texts(12)
        out[kind] = [t for t in candidates if np.count_nonzero(fill.encode([t])[0]) <= fill.sequence_length]
    return out


@pytest.fixture(scope="module")
def traced(runs):
    """Per kind: the `fill_mask_text` function as the exporter builds and traces it, and its context."""
    from keras_mlm.export.signatures import ExportContext, FillMaskText

    out = {}
    for kind, run in runs.items():
        context = ExportContext(run.masked_lm, run.vocabulary.tokens, run.sequence_length, run.lowercase, 5, vocabulary=run.vocabulary)
        builder = FillMaskText()
        out[kind] = (tf.function(builder.build(context), input_signature=builder.input_signature(context), autograph=False), context)
    return out


def reference(fill, texts, k):
    """`FillMask`'s rows, mask positions, top-k ids and probabilities, tokens as text and filled rows."""
    rows = fill.encode(texts)
    positions = [np.flatnonzero(row == fill.mask_id) for row in rows]
    slots = np.zeros((len(rows), max(map(len, positions))), np.int32)
    for i, p in enumerate(positions):
        slots[i, : len(p)] = p
    probabilities = fill.probabilities(rows, slots)  # (batch, n_masks, vocab)
    top = np.argsort(-probabilities, axis=-1, kind="stable")[..., :k]
    filled = rows.copy()
    for i, p in enumerate(positions):
        filled[i, p] = top[i, : len(p), 0]
    return rows, positions, top, np.take_along_axis(probabilities, top, -1), [fill.detokenize(row) for row in filled]


def assert_same_predictions(outputs, fill, texts, tolerance):
    from keras_mlm.inference.fill_mask import prediction_text

    rows, positions, top, probabilities, filled = reference(fill, texts, 5)
    np.testing.assert_array_equal(outputs["token_ids"], rows)
    ids, values = np.asarray(outputs["top_k_ids"]), np.asarray(outputs["top_k_probabilities"])
    for i, p in enumerate(positions):
        assert list(np.asarray(outputs["mask_positions"])[i, : len(p)]) == list(p)
        for slot in range(len(p)):
            np.testing.assert_allclose(values[i, slot], probabilities[i, slot], atol=tolerance, rtol=0)
            # The same ids, unless two probabilities tie within the tolerance.
            assert list(ids[i, slot]) == list(top[i, slot]) or np.allclose(values[i, slot], probabilities[i, slot], atol=tolerance)
            expected = [prediction_text(fill.vocabulary, fill.tokens[j]) for j in ids[i, slot]]
            assert [t if isinstance(t, str) else t.decode("utf-8") for t in outputs["top_k_tokens"][i][slot]] == expected
        assert (ids[i, len(p) :] == -1).all()
    assert [t if isinstance(t, str) else t.decode("utf-8") for t in outputs["filled"]] == filled


@pytest.mark.parametrize("kind", KINDS)
def test_traced_text_signature_is_fill_mask(kind, traced, fills, texts):
    function, _ = traced[kind]
    outputs = {k: v.numpy() for k, v in function(tf.constant(texts[kind])).items()}
    assert_same_predictions(outputs, fills[kind], texts[kind], TRACED_TOLERANCE)


def test_bpe_tokens_are_text_and_sentencepiece_spaces_are_spaces(traced):
    for kind, word in (("bpe", "Ġthe"), ("sentencepiece", "▁the")):
        _, context = traced[kind]
        the = context.vocabulary.tokens.index(word)
        assert context.fill_mask_graph.token_strings(tf.constant([the, -1])).numpy().tolist() == [b" the", b""]


@pytest.mark.parametrize("kind, text, message", [
    ("bpe", "no mask here", "fill_mask_text: text has no <mask>; rows:] [1]"),
    ("sentencepiece", "no mask here", "fill_mask_text: text has no [MASK]; rows:] [1]"),
    ("sentencepiece", "a <mask> b", "fill_mask_text: text has no [MASK]; rows:] [1]"),  # BPE's mask is not SentencePiece's
    ("bpe", "the " * 40 + "<mask>", "fill_mask_text: text longer than the model takes (32 tokens with <s> and </s>); rows:] [1]"),
    ("bpe", " ", "fill_mask_text: empty text (give a sentence with a <mask>); rows:] [1]"),
])
def test_traced_text_signature_names_the_kind_s_own_tokens_in_errors(kind, text, message, traced):
    function, _ = traced[kind]
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        function(tf.constant(["[MASK] <mask>", text]))
    assert message in error.value.message


def test_task_signatures_refuse_a_vocabulary_other_than_wordpiece(runs, monkeypatch, tmp_path):
    from keras_mlm.export import export_model, signatures as signatures_lib
    from keras_mlm.export.classify_signature import ClassifyText

    class Classifier:
        pass

    monkeypatch.setitem(signatures_lib.SIGNATURES, Classifier, (ClassifyText(), signatures_lib.Encode()))
    with pytest.raises(UserInputError, match=r"signature\(s\) classify tokenize with WordPiece only; this model's vocabulary is bpe"):
        export_model(Classifier(), runs["bpe"].vocabulary, 32, "task", to=str(tmp_path))
    assert os.listdir(tmp_path) == []


# -- exported and served -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def exported(runs, tmp_path_factory):
    """Each kind's run folder exported once with every signature (the exporter's own warm-up replayed)."""
    from keras_mlm.export import export_run

    to = tmp_path_factory.mktemp("saved_models")
    return {kind: export_run(run.directory, f"mlm-{kind}", to=str(to)) for kind, run in runs.items()}


@pytest.fixture(scope="module")
def served(exported, texts, fills, tmp_path_factory):
    """Every kind's SavedModel asked fill_mask_text (good texts, then a text without a mask) and encode,
    from one fresh process that cannot import keras_hub or keras_mlm."""
    work = tmp_path_factory.mktemp("client")
    arguments = []
    for kind, result in exported.items():
        rows = fills[kind].encode(texts[kind])
        requests = [
            {"signature": "fill_mask_text", "inputs": {"texts": texts[kind]}},
            {"signature": "fill_mask_text", "inputs": {"texts": [texts[kind][0], "no mask here"]}},
            {"signature": "encode", "inputs": {"token_ids": rows.tolist(), "segment_ids": np.zeros_like(rows).tolist(),
                                               "padding_mask": (rows != fills[kind].pad_id).astype(int).tolist()}},
        ]
        (work / f"{kind}.json").write_text(json.dumps(requests))
        arguments += [result.path, str(work / f"{kind}.json"), str(work / f"{kind}-out.json")]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    done = subprocess.run([sys.executable, str(CLIENT), *arguments], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return {kind: json.loads((work / f"{kind}-out.json").read_text()) for kind in exported}


@pytest.mark.slow
@pytest.mark.parametrize("kind, custom_ops", [
    ("bpe", ("RegexSplitWithOffsets",)),
    ("sentencepiece", ("SentencepieceOp", "SentencepieceTokenizeOp")),
])
def test_exported_text_signature_uses_the_kind_s_tokenizer_ops_stock_serving_has(kind, custom_ops, exported):
    result = exported[kind]
    assert result.signatures == ("fill_mask_text", "fill_mask", "encode") and result.serving_default == "fill_mask_text"
    assert result.check.needed["fill_mask_text"] == custom_ops and result.check.servable("fill_mask_text")


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_served_text_signature_gives_fill_mask_s_predictions(kind, served, fills, texts):
    out = served[kind]
    assert out["keras_mlm_modules"] == [] and out["warmup_replayed"] == 6
    assert set(out["signatures"]) == {"serving_default", "fill_mask_text", "fill_mask", "encode"}
    assert_same_predictions(out["results"][0], fills[kind], texts[kind], SERVED_TOLERANCE)
    mask = fills[kind].vocabulary.mask_token
    assert out["results"][1] == {"error": f"assertion failed: [fill_mask_text: text has no {mask}; rows:] [1]"}


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_served_encode_is_the_encoder_s_output(kind, served, runs, fills, texts):
    # The BPE run's encoder has no segment embedding (RoBERTa): segment ids must be 0, and are accepted.
    rows = fills[kind].encode(texts[kind])
    x = {"token_ids": rows, "segment_ids": np.zeros_like(rows), "padding_mask": (rows != fills[kind].pad_id).astype(np.int32)}
    expected = np.asarray(runs[kind].masked_lm.encoder(x, training=False))
    np.testing.assert_allclose(served[kind]["results"][2]["sequence_output"], expected, atol=1e-5, rtol=0)
