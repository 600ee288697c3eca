"""MaskingConfig validation and MLMMasker argument checks: bad input raises UserInputError naming the field."""

import math

import numpy as np
import pytest

from keras_mlm.errors import UserInputError
from keras_mlm.masking import MaskingConfig, MLMMasker


def test_defaults_are_bert():
    config = MaskingConfig()
    assert (config.selection_rate, config.mask_token_rate, config.random_token_rate) == (0.15, 0.8, 0.1)
    assert config.keep_rate == 0.1  # derived: 1 - 0.8 - 0.1, rounded so that it reads as 0.1
    assert config.strategy == "token" and config.span_p == 0.2 and config.max_span_length == 10


def test_keep_rate_derived_or_checked():
    assert MaskingConfig(mask_token_rate=0.0, random_token_rate=0.0).keep_rate == 1.0
    assert MaskingConfig(mask_token_rate=0.5, random_token_rate=0.5).keep_rate == 0.0
    # Given explicitly and consistent: accepted as given.
    assert MaskingConfig(mask_token_rate=0.6, random_token_rate=0.2, keep_rate=0.2).keep_rate == 0.2


@pytest.mark.parametrize(
    "kwargs, field, allowed",
    [
        ({"selection_rate": -0.01}, "selection_rate", "[0, 1]"),
        ({"selection_rate": 1.5}, "selection_rate", "[0, 1]"),
        ({"selection_rate": math.nan}, "selection_rate", "[0, 1]"),
        ({"selection_rate": "0.15"}, "selection_rate", "[0, 1]"),
        ({"mask_token_rate": 1.2}, "mask_token_rate", "[0, 1]"),
        ({"random_token_rate": -0.1}, "random_token_rate", "[0, 1]"),
        ({"mask_token_rate": 0.8, "random_token_rate": 0.3}, "mask_token_rate + random_token_rate", "[0, 1]"),
        ({"keep_rate": 1.5}, "keep_rate", "[0, 1]"),
        ({"keep_rate": 0.2}, "keep_rate", "sum to 1"),  # 0.8 + 0.1 + 0.2 = 1.1
        ({"max_selections": 0}, "max_selections", "positive integer"),
        ({"max_selections": 2.5}, "max_selections", "positive integer"),
        ({"strategy": "wwm"}, "strategy", "token, whole_word, span"),
        ({"span_p": 0.0}, "span_p", "(0, 1]"),
        ({"span_p": 1.5}, "span_p", "(0, 1]"),
        ({"max_span_length": 0}, "max_span_length", "positive integer"),
    ],
)
def test_bad_config_names_field_and_range(kwargs, field, allowed):
    with pytest.raises(UserInputError) as error:
        MaskingConfig(**kwargs)
    message = str(error.value)
    assert field in message and allowed in message and "\n" not in message


@pytest.mark.parametrize(
    "sequence_length, rate, given, expected",
    [
        (128, 0.15, None, 20),  # ceil(19.2)
        (100, 0.15, None, 15),  # 100 * 0.15 = 15.000000000000002 in floating point: still 15
        (512, 0.15, None, 77),  # ceil(76.8)
        (12, 1.0, None, 12),
        (12, 0.0, None, 1),  # at least one slot, so shapes are never empty
        (128, 0.15, 7, 7),
    ],
)
def test_max_selections(sequence_length, rate, given, expected):
    config = MaskingConfig(selection_rate=rate, max_selections=given)
    assert config.resolve_max_selections(sequence_length) == expected


def test_max_selections_longer_than_rows_rejected():
    with pytest.raises(UserInputError, match=r"max_selections must be in \[1, sequence_length=10\]"):
        MaskingConfig(max_selections=11).resolve_max_selections(10)


def _masker(**overrides):
    kwargs = {"vocabulary_size": 20, "mask_token_id": 4, "special_token_ids": [0, 1, 2, 3, 4], "sequence_length": 10}
    kwargs.update(overrides)
    return MLMMasker(**kwargs)


@pytest.mark.parametrize(
    "overrides, needle",
    [
        ({"vocabulary_size": 0}, "vocabulary_size must be a positive integer"),
        ({"sequence_length": 0}, "sequence_length must be a positive integer"),
        ({"mask_token_id": 20}, "mask_token_id must be an id in [0, 20)"),
        ({"special_token_ids": [0, 25]}, "special_token_ids must be ids in [0, 20)"),
        ({"continuation_ids": [-1]}, "continuation_ids must be ids in [0, 20)"),
        ({"continuation_ids": np.zeros(7, bool)}, "boolean table must have shape (20,)"),
        ({"strategy": "whole_word"}, "continuation_ids is required for strategy='whole_word'"),
        ({"strategy": "span"}, "continuation_ids is required for strategy='span'"),
        ({"special_token_ids": list(range(20))}, "covers the whole vocabulary"),
        ({"seed": None}, "seed must be an integer"),
        ({"selection_rate": 2.0}, "selection_rate must be a number in [0, 1]"),
        ({"max_selections": 11}, "max_selections must be in [1, sequence_length=10]"),
    ],
)
def test_bad_masker_arguments(overrides, needle):
    with pytest.raises(UserInputError) as error:
        _masker(**overrides)
    assert needle in str(error.value)


def test_bad_inputs_at_call_time():
    masker = _masker()
    with pytest.raises(UserInputError, match=r"shape \(batch, 10\)"):
        masker(np.zeros((2, 9), np.int32), step=0)
    with pytest.raises(UserInputError, match="integer token ids"):
        masker(np.zeros((2, 10), np.float32), step=0)


def test_continuation_ids_as_boolean_table_or_ids():
    table = np.zeros(20, bool)
    table[[12, 13, 14, 18]] = True
    assert _masker(continuation_ids=table).continuation_ids == [12, 13, 14, 18]
    assert _masker(continuation_ids=[18, 12, 13, 14, 12]).continuation_ids == [12, 13, 14, 18]


def test_from_vocabulary_reads_specials_and_continuations(tiny_vocabulary):
    masker = MLMMasker.from_vocabulary(
        tiny_vocabulary, sequence_length=10, config=MaskingConfig(strategy="span", selection_rate=0.3), seed=5
    )
    assert masker.vocabulary_size == 20 and masker.mask_token_id == 4
    assert masker.special_token_ids == [0, 1, 2, 3, 4]
    assert masker.continuation_ids == [12, 13, 14, 18]  # ##s ##ed ##ing ##dy
    assert masker.masking_config == MaskingConfig(strategy="span", selection_rate=0.3)
    assert masker.max_selections == 3 and masker.seed == 5
    with pytest.raises(UserInputError, match=r"no \[MASK\] token"):
        MLMMasker.from_vocabulary([t for t in tiny_vocabulary if t != "[MASK]"], sequence_length=10)
