"""EncoderConfig and PRESETS."""

import dataclasses
import inspect

import pytest

from keras_mlm.errors import UserInputError
from keras_mlm.models import PRESETS, BertEncoder, EncoderConfig


def test_standard_sizes():
    sizes = {name: (p["num_layers"], p["hidden_dim"]) for name, p in PRESETS.items()}
    assert sizes == {
        "tiny": (2, 128), "mini": (4, 256), "small": (4, 512), "medium": (8, 512), "base": (12, 768), "large": (24, 1024),
    }
    for p in PRESETS.values():
        assert p["num_heads"] == p["hidden_dim"] // 64
        assert p["intermediate_dim"] == 4 * p["hidden_dim"]


def test_config_keys_are_the_encoder_constructor_arguments():
    fields = [f.name for f in dataclasses.fields(EncoderConfig)]
    arguments = [a for a in inspect.signature(BertEncoder.__init__).parameters if a not in ("self", "dtype", "kwargs")]
    assert fields == arguments


def test_from_preset_with_overrides():
    config = EncoderConfig.from_preset("base", 30522, num_layers=3, dropout=0.0)
    assert (config.vocabulary_size, config.num_layers, config.hidden_dim, config.num_heads) == (30522, 3, 768, 12)
    assert config.dropout == 0.0 and config.intermediate_dim == 3072
    assert EncoderConfig(**config.to_dict()) == config


def test_unknown_preset_lists_the_allowed_ones():
    with pytest.raises(UserInputError, match="unknown encoder preset 'huge'.*tiny, mini, small, medium, base, large"):
        EncoderConfig.from_preset("huge", 100)


def test_unknown_field_lists_the_allowed_ones():
    with pytest.raises(UserInputError, match="hidden_size.*allowed: vocabulary_size, num_layers"):
        EncoderConfig.from_preset("tiny", 100, hidden_size=64)


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"num_heads": 3}, "not divisible by num_heads=3"),
        ({"num_layers": 0}, "num_layers must be a positive integer"),
        ({"dropout": 1.0}, "dropout must be in"),
        ({"activation": "nope"}, "unknown activation 'nope'"),
    ],
)
def test_invalid_values_are_user_errors(overrides, message):
    with pytest.raises(UserInputError, match=message):
        EncoderConfig.from_preset("tiny", 100, **overrides)


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        EncoderConfig.from_preset("tiny", 100).num_layers = 3
