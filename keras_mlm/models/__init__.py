"""Encoder backbones and task models."""

from keras_mlm.models.bert import BertEncoder
from keras_mlm.models.masked_lm import MaskedLM, build_masked_lm
from keras_mlm.models.presets import PRESETS, EncoderConfig
from keras_mlm.models.sequence_classifier import SequenceClassifier

__all__ = ["PRESETS", "BertEncoder", "EncoderConfig", "MaskedLM", "SequenceClassifier", "build_masked_lm"]
