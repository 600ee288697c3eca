"""Encoder backbones and task models."""

from keras_mlm.models.bert import BertEncoder
from keras_mlm.models.masked_lm import MaskedLM, build_masked_lm
from keras_mlm.models.presets import PRESETS, EncoderConfig
from keras_mlm.models.sequence_classifier import SequenceClassifier
from keras_mlm.models.span_extractor import SpanExtractor
from keras_mlm.models.token_classifier import TokenClassifier

__all__ = ["PRESETS", "BertEncoder", "EncoderConfig", "MaskedLM", "SequenceClassifier", "SpanExtractor", "TokenClassifier", "build_masked_lm"]
