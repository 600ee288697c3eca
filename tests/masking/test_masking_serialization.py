"""MLMMasker round-trips through get_config, JSON and a .keras file with identical outputs."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_mlm.masking import MaskingConfig, MLMMasker

ROWS = np.array([[2, 5, 6, 12, 7, 8, 5, 9, 3, 0], [2, 5, 10, 11, 12, 3, 15, 17, 18, 3]], np.int32)


@pytest.fixture(params=["token", "whole_word", "span"])
def masker(request, tiny_vocabulary):
    config = MaskingConfig(strategy=request.param, selection_rate=0.4, mask_token_rate=0.5, random_token_rate=0.3)
    return MLMMasker.from_vocabulary(tiny_vocabulary, sequence_length=10, config=config, seed=123)


def assert_same_outputs(a, b):
    for step in (0, 1, 2**40):
        for x, y in zip(tf.nest.flatten(a(ROWS, step=step)), tf.nest.flatten(b(ROWS, step=step)), strict=True):
            np.testing.assert_array_equal(x, y)


def test_get_config_round_trip(masker):
    config = masker.get_config()
    for key in ("vocabulary_size", "mask_token_id", "special_token_ids", "sequence_length", "continuation_ids",
                "selection_rate", "mask_token_rate", "random_token_rate", "keep_rate", "max_selections",
                "strategy", "span_p", "max_span_length", "seed", "deterministic", "padding_token_id"):  # fmt: skip
        assert key in config, key
    assert config["keep_rate"] == 0.2 and config["seed"] == 123
    restored = MLMMasker.from_config(config)
    assert restored.get_config() == config
    assert_same_outputs(masker, restored)


def test_json_round_trip(masker):
    text = json.dumps(keras.saving.serialize_keras_object(masker))
    restored = keras.saving.deserialize_keras_object(json.loads(text))
    assert isinstance(restored, MLMMasker) and restored.get_config() == masker.get_config()
    assert_same_outputs(masker, restored)


def test_keras_file_round_trip(masker, tmp_path):
    inputs = keras.Input((10,), dtype="int32")
    model = keras.Model(inputs, masker(inputs))
    path = tmp_path / "masker.keras"
    model.save(path)
    restored = keras.saving.load_model(path).layers[-1]
    assert isinstance(restored, MLMMasker)
    assert_same_outputs(masker, restored)
