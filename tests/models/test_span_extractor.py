"""SpanExtractor: start/end logits per position, padding masked, float32 under mixed precision, JSON and
.keras round trips with identical outputs, and a plain `fit` that learns to point at a marker token."""

import json

import keras
import numpy as np
import pytest

from keras_mlm.models import BertEncoder, EncoderConfig, SpanExtractor
from keras_mlm.models.span_extractor import MASKED_LOGIT

CONFIG = EncoderConfig(vocabulary_size=20, num_layers=1, hidden_dim=16, num_heads=2, intermediate_dim=32,
                       max_sequence_length=12, dropout=0.0)


def _model(dtype=None, **kwargs):
    keras.utils.set_random_seed(0)
    return SpanExtractor(BertEncoder.from_encoder_config(CONFIG, dtype=dtype), **kwargs)


def _batch():
    token_ids = np.array([[2, 7, 8, 3, 9, 10, 11, 3, 0, 0], [2, 7, 3, 12, 3, 0, 0, 0, 0, 0]], "int32")
    segment_ids = np.array([[0, 0, 0, 0, 1, 1, 1, 1, 0, 0], [0, 0, 0, 1, 1, 0, 0, 0, 0, 0]], "int32")
    return {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": (token_ids != 0).astype("int32")}


def test_outputs_and_padding_mask():
    outputs = _model()(_batch())
    assert sorted(outputs) == ["end_logits", "start_logits"]
    mask = _batch()["padding_mask"]
    for logits in outputs.values():
        logits = np.asarray(logits)
        assert logits.shape == (2, 10) and logits.dtype == np.float32
        assert (logits[mask == 0] == MASKED_LOGIT).all() and (np.abs(logits[mask == 1]) < 10).all()


def test_float32_logits_under_mixed_precision():
    model = _model(dtype="mixed_float16")
    assert model.span_dense.compute_dtype == "float16"
    outputs = model(_batch())
    assert all(keras.backend.standardize_dtype(v.dtype) == "float32" for v in outputs.values())
    assert model.dtype_policy.name == "mixed_float16"


def test_json_and_keras_round_trip(tmp_path):
    model = _model(dropout=0.2)
    expected = model(_batch())
    rebuilt = keras.saving.deserialize_keras_object(json.loads(json.dumps(keras.saving.serialize_keras_object(model))))
    assert isinstance(rebuilt, SpanExtractor) and rebuilt.get_config() == model.get_config()
    model.save(tmp_path / "qa.keras")
    loaded = keras.saving.load_model(tmp_path / "qa.keras")
    assert isinstance(loaded, SpanExtractor) and loaded.dropout == 0.2
    got = loaded(_batch())
    for key in expected:
        np.testing.assert_array_equal(np.asarray(got[key]), np.asarray(expected[key]))


def test_fit_learns_to_point_at_a_marker():
    """Rows of random ids with one marker (19) in the second segment: start and end are its position."""
    rng = np.random.default_rng(0)
    n, seq = 256, 10
    token_ids = rng.integers(5, 19, size=(n, seq)).astype("int32")
    token_ids[:, 0], token_ids[:, 3] = 2, 3
    positions = rng.integers(4, seq, size=n)
    token_ids[np.arange(n), positions] = 19
    x = {"token_ids": token_ids, "segment_ids": (np.arange(seq) >= 4).astype("int32")[None].repeat(n, 0),
         "padding_mask": np.ones_like(token_ids)}
    y = {"start_logits": positions.astype("int32"), "end_logits": positions.astype("int32")}
    model = _model()
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss={"start_logits": loss, "end_logits": loss},
                  loss_weights={"start_logits": 0.5, "end_logits": 0.5})
    history = model.fit(x, y, batch_size=32, epochs=15, verbose=0)
    assert history.history["loss"][0] > 1.5  # about log(10) at the start
    assert history.history["loss"][-1] < 0.1, history.history["loss"]
    predicted = np.argmax(np.asarray(model(x)["start_logits"]), axis=1)
    assert (predicted == positions).mean() > 0.98


@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_dropout_only_in_training(dropout):
    model = _model(dropout=dropout)
    a, b = model(_batch(), training=False), model(_batch(), training=False)
    np.testing.assert_array_equal(np.asarray(a["start_logits"]), np.asarray(b["start_logits"]))
