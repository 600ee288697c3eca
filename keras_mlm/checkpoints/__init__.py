"""Published checkpoints in and out: import keras-hub presets, Hugging Face BERT (safetensors) and
google-research/bert TF checkpoints into run folders; export runs as keras-hub presets or HF folders.

    from keras_mlm.checkpoints import import_checkpoint, export_weights
    import_checkpoint("downloads/bert-base-uncased", "runs/bert-base")      # format detected from the files
    export_weights("runs/bert-base", "hf", "exports/bert-base-hf")

Nothing is downloaded: every source is a local folder. Names are imported on first use, so the CLI
can build its parser without importing TensorFlow.
"""

import importlib

_EXPORTS = {
    "import_checkpoint": "importer", "ImportResult": "importer", "DEFAULT_SEQ_LEN": "importer",
    "export_weights": "exporter", "ExportResult": "exporter", "EXPORT_FORMATS": "exporter",
    "detect_format": "detect", "FORMATS": "detect", "BertCheckpoint": "layout",
}  # fmt: skip

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
