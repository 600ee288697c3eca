"""keras-mlm: masked language model pre-training of bidirectional encoders in TensorFlow/Keras 3.

The public API, importable from the top level (TensorFlow is imported on first use, so the
`keras-mlm` command starts fast):

    import keras_mlm as km
    tokens = km.load_vocabulary("vocab.txt")
    masker = km.MLMMasker.from_vocabulary(tokens, sequence_length=128)
    ds = km.pretraining_dataset("shards/", batch_size=32, masker=masker)
    model = km.build_masked_lm(km.EncoderConfig.from_preset("tiny", len(tokens)))
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "UserInputError": "keras_mlm.errors",
    "load_vocabulary": "keras_mlm.tokenizers.vocab",
    "train_vocabulary": "keras_mlm.tokenizers.vocab",
    "write_vocabulary": "keras_mlm.tokenizers.vocab",
    "make_tokenizer": "keras_mlm.tokenizers.tokenizer",
    "DataConfig": "keras_mlm.data.prepare",
    "prepare": "keras_mlm.data.prepare",
    "pretraining_dataset": "keras_mlm.data.dataset",
    "evaluation_dataset": "keras_mlm.data.dataset",
    "MaskingConfig": "keras_mlm.masking",
    "MLMMasker": "keras_mlm.masking",
    "PRESETS": "keras_mlm.models",
    "EncoderConfig": "keras_mlm.models",
    "BertEncoder": "keras_mlm.models",
    "MaskedLM": "keras_mlm.models",
    "build_masked_lm": "keras_mlm.models",
    "SequenceClassifier": "keras_mlm.models",
    "TokenClassifier": "keras_mlm.models",
    "SpanExtractor": "keras_mlm.models",
    "MaskedLMLoss": "keras_mlm.losses",
    "MaskedAccuracy": "keras_mlm.metrics",
    "Perplexity": "keras_mlm.metrics",
    "TrainingConfig": "keras_mlm.training.config",
    "make_optimizer": "keras_mlm.training.optimizer",
    "compile_masked_lm": "keras_mlm.training.pretrain",
    "pretrain": "keras_mlm.training.pretrain",
    "RunConfig": "keras_mlm.training.run_config",
    "FillMask": "keras_mlm.inference.fill_mask",
    "fill_mask": "keras_mlm.inference.fill_mask",
    "load_run": "keras_mlm.inference.run",
    "evaluate": "keras_mlm.evaluation.evaluate",
    "score": "keras_mlm.evaluation.evaluate",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'keras_mlm' has no attribute {name!r}")


def __dir__():
    return __all__ + ["__version__"]
