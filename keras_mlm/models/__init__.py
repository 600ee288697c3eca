"""Encoder backbones and task models."""

from keras_mlm.models.bert import BertEncoder
from keras_mlm.models.masked_lm import MaskedLM, build_masked_lm
from keras_mlm.models.presets import PRESETS, EncoderConfig

__all__ = ["PRESETS", "BertEncoder", "EncoderConfig", "MaskedLM", "build_masked_lm"]
