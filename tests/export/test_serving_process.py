"""The exported SavedModel, loaded by a fresh process with only tensorflow + tensorflow_text (and the
tensorflow-serving-api protos; keras_hub and keras_mlm blocked), gives the in-memory model's tokens
and probabilities.

Tolerance: probabilities agree to 2e-6 absolute (about 1e-3 relative at this vocabulary's ~1/190
probabilities); they come from the same float32 weights, and only the order of floating-point
operations (op fusion in the loaded graph) differs. The encoder output agrees to 1e-5.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from .conftest import MODEL_NAME

CLIENT = Path(__file__).resolve().parent / "serving_client.py"
README_SECTION = Path(__file__).resolve().parents[2] / "README.md"
PROBABILITY_TOLERANCE = 2e-6
ENCODER_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def fill(loaded_run):
    from keras_mlm.inference.fill_mask import FillMask

    return FillMask(loaded_run.model, loaded_run.tokens, loaded_run.sequence_length, loaded_run.lowercase)


@pytest.fixture(scope="module")
def rows(fill, texts):
    return fill.encode(texts)


@pytest.fixture(scope="module")
def segment_ids(rows):
    # Second segment from position 5 on (where the row has tokens), to exercise the segment embedding.
    return ((np.arange(rows.shape[1]) >= 5) & (rows != 0)).astype(np.int32)


@pytest.fixture(scope="module")
def served(exported, loaded_run, texts, rows, segment_ids, tmp_path_factory):
    work = tmp_path_factory.mktemp("client")
    request = {
        "texts": texts, "token_ids": rows.tolist(), "segment_ids": segment_ids.tolist(),
        "mask_id": loaded_run.tokens.index("[MASK]"), "vocabulary_size": len(loaded_run.tokens),
        "grpc_snippet": grpc_snippet(),
    }
    (work / "request.json").write_text(json.dumps(request))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    done = subprocess.run(
        [sys.executable, str(CLIENT), exported.path, str(work / "request.json"), str(work / "out.json")],
        cwd=work, env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((work / "out.json").read_text())


def grpc_snippet():
    """The README's gRPC client example, asking for the model this session exported."""
    if not README_SECTION.is_file():
        return None
    text = README_SECTION.read_text(encoding="utf-8")
    start = text.index("```python", text.index("### gRPC")) + len("```python")
    return text[start : text.index("```", start)].replace('"mlm"', f'"{MODEL_NAME}"')


def mask_positions(rows):
    return [np.flatnonzero(row == 4) for row in rows]


def test_fresh_process_needs_no_keras_code(served):
    # keras_hub / keras_mlm were blocked, and loading + serving imported no keras module beyond those
    # `import tensorflow` itself pulls in (see serving_client.py).
    assert served["blocked_modules_loaded"] == []
    assert served["keras_modules_added"] == []


def test_text_signature_tokenizes_and_packs_like_fill_mask(served, rows):
    assert served["fill_mask_text"]["token_ids"] == rows.tolist()
    expected = [list(p) + [-1] * (max(map(len, mask_positions(rows))) - len(p)) for p in mask_positions(rows)]
    assert served["fill_mask_text"]["mask_positions"] == expected


def test_probabilities_match_the_in_memory_model(served, fill, rows):
    positions = mask_positions(rows)
    slots = np.zeros((len(rows), max(map(len, positions))), np.int32)
    for i, p in enumerate(positions):
        slots[i, : len(p)] = p
    reference = fill.probabilities(rows, slots)  # (batch, n_masks, vocab), specials zeroed, renormalised
    ids = np.array(served["fill_mask_text"]["top_k_ids"])
    probabilities = np.array(served["fill_mask_text"]["top_k_probabilities"])
    tokens = served["fill_mask_text"]["top_k_tokens"]
    k = ids.shape[-1]
    assert k == 5
    for i, p in enumerate(positions):
        for slot in range(len(p)):
            # The returned probabilities are the reference's for the returned ids ...
            np.testing.assert_allclose(probabilities[i, slot], reference[i, slot, ids[i, slot]], atol=PROBABILITY_TOLERANCE, rtol=0)
            # ... sorted, and no other word is more likely than the k-th (ties within tolerance aside).
            assert np.all(np.diff(probabilities[i, slot]) <= 0)
            kth = np.sort(reference[i, slot])[-k]
            assert probabilities[i, slot, -1] >= kth - PROBABILITY_TOLERANCE
            assert tokens[i][slot] == [fill.tokens[j] for j in ids[i, slot]]
            assert not fill.special[ids[i, slot]].any()
        # Slots a row does not use.
        assert (ids[i, len(p) :] == -1).all() and (probabilities[i, len(p) :] == 0).all()
        assert all(t == "" for unused in tokens[i][len(p) :] for t in unused)


def test_filled_text_is_fill_masks_detokenized_row(served, fill, texts):
    # The served `filled` is the filled row detokenized (lower-cased pieces, '##' glued), as
    # `FillMask.detokenize` writes it; `keras-mlm fill-mask` instead keeps the user's own casing.
    rows = fill.encode(texts)
    for i, result in enumerate(fill(texts)):
        for mask in result["masks"]:
            rows[i, mask["position"]] = fill.tokens.index(mask["predictions"][0]["token"])
    assert served["fill_mask_text"]["filled"] == [fill.detokenize(row) for row in rows]


def test_serving_default_is_the_text_signature(served):
    assert served["serving_default"] == served["fill_mask_text"]


def test_ids_signature_gives_the_text_signatures_predictions(served):
    for key in ("mask_positions", "top_k_ids"):
        assert served["fill_mask"][key] == served["fill_mask_text"][key]
    np.testing.assert_allclose(served["fill_mask"]["top_k_probabilities"], served["fill_mask_text"]["top_k_probabilities"], atol=1e-7)


def test_encode_is_the_encoders_output(served, loaded_run, rows, segment_ids):
    x = {"token_ids": rows, "segment_ids": segment_ids, "padding_mask": (rows != 0).astype(np.int32)}
    expected = np.asarray(loaded_run.model.encoder(x, training=False))
    np.testing.assert_allclose(served["encode"]["sequence_output"], expected, atol=ENCODER_TOLERANCE, rtol=0)
    np.testing.assert_allclose(served["encode"]["cls_vector"], expected[:, 0], atol=ENCODER_TOLERANCE, rtol=0)


def test_warmup_requests_replay_for_every_signature(served):
    replayed = {(r["signature"], r["batch"]) for r in served["warmup"]}
    assert replayed == {(s, b) for s in ("fill_mask_text", "fill_mask", "encode") for b in (1, 4)}


EXPECTED_ERRORS = {
    "texts rank 2": "fill_mask_text: texts must have rank 1, shape (batch,); got rank] [2]",
    "texts scalar": "fill_mask_text: texts must have rank 1, shape (batch,); got rank] [0]",
    "empty text": "fill_mask_text: empty text (give a sentence with a [MASK]); rows:] [1]",
    "blank text": "fill_mask_text: empty text (give a sentence with a [MASK]); rows:] [0]",
    "default empty text": "fill_mask_text: empty text",
    "text without mask": "fill_mask_text: text has no [MASK]; rows:] [1]",
    "text too long": "fill_mask_text: text longer than the model takes (32 tokens with [CLS] and [SEP]); rows:] [1] [lengths:] [43]",
    "invalid utf-8": "fill_mask_text: text is not valid UTF-8; rows:] [0]",
    "token_ids rank 3": "fill_mask: token_ids must have rank 2, shape (batch, 32); got rank] [3]",
    "token_ids rank 1": "fill_mask: token_ids must have rank 2, shape (batch, 32); got rank] [1]",
    "token_ids too short": "fill_mask: token_ids must have shape (batch, 32); got] [",
    "padding_mask other shape": "fill_mask: padding_mask must have shape (batch, 32) like token_ids; got] [1 32]",
    "token id out of range": "fill_mask: every token_ids value must be an id of the vocabulary, in [0, ",
    "padding_mask 2": "fill_mask: every padding_mask value must be 0 (padding) or 1 (token), in [0, 2); got] [2]",
    "row without mask": "fill_mask: row has no [MASK] (id 4) among its real tokens; rows:] [0 1 2",
    "segment id 5": "encode: every segment_ids value must be a segment id, in [0, 2); got] [5 5 5",
}


@pytest.mark.parametrize("case", sorted(EXPECTED_ERRORS))
def test_bad_request_fails_with_a_clear_message(served, case):
    status, message = served["bad_requests"][case]
    assert status == "error"
    assert EXPECTED_ERRORS[case] in message


def test_wrong_dtype_is_refused_before_the_graph_runs(served):
    status, message = served["bad_requests"]["token_ids int64"]
    assert status == "error" and "int64" in message and "int32" in message


def test_empty_batch_and_the_process_keeps_serving_after_bad_requests(served):
    assert served["bad_requests"]["empty batch"][0] == "ok"
    assert served["bad_requests"]["good after bad"] == ["ok", ["filled", "mask_positions", "token_ids", "top_k_ids", "top_k_probabilities", "top_k_tokens"]]


def test_readme_grpc_client_snippet_runs_against_a_prediction_service(served, fill):
    if served.get("grpc") is None:
        pytest.skip("README_SECTION.md not found")
    expected = fill("paris is the [MASK] of france", top_k=5)["masks"][0]["predictions"]
    assert served["grpc"]["printed"] == [f"{p['token']} {round(p['probability'], 3)}" for p in expected]
    code, details = served["grpc"]["bad_request"]
    assert code == "INVALID_ARGUMENT" and "fill_mask_text: text has no [MASK]; rows:] [0]" in details
