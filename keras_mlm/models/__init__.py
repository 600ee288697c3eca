"""Encoder backbones and task models."""

from keras_mlm.models.bert import BertEncoder
from keras_mlm.models.masked_lm import MaskedLM, build_masked_lm
from keras_mlm.models.presets import PRESETS, EncoderConfig
from keras_mlm.models.sequence_classifier import SequenceClassifier
from keras_mlm.models.token_classifier import TokenClassifier
from keras_mlm.models.span_extractor import SpanExtractor

__all__ = ["PRESETS", "BertEncoder", "EncoderConfig", "MaskedLM", "SequenceClassifier", "SpanExtractor", "TokenClassifier", "build_masked_lm"]

# The MLM family (issue 9): ALBERT, the modern encoder, ELECTRA.
from keras_mlm.models.albert import AlbertConfig, AlbertEncoder  # noqa: E402
from keras_mlm.models.electra import (  # noqa: E402
    ElectraConfig,
    ElectraEncoder,
    ElectraPretrainer,
    build_electra_pretrainer,
)
from keras_mlm.models.modern import ModernConfig, ModernEncoder  # noqa: E402
from keras_mlm.models.roberta import RobertaConfig  # noqa: E402
from keras_mlm.models.pair_pretrainer import PairPretrainer, build_pair_pretrainer  # noqa: E402
from keras_mlm.models.xlnet import XLNetConfig, XLNetEncoder, XLNetPretrainer, build_xlnet_pretrainer  # noqa: E402

__all__ += ["AlbertConfig", "AlbertEncoder", "ElectraConfig", "ElectraEncoder", "ElectraPretrainer",
            "ModernConfig", "ModernEncoder", "PairPretrainer", "RobertaConfig", "XLNetConfig", "XLNetEncoder", "XLNetPretrainer",
            "build_electra_pretrainer", "build_pair_pretrainer", "build_xlnet_pretrainer"]
