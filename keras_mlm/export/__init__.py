"""SavedModels for TF Serving: text in, predictions out.

    from keras_mlm.export import export_run
    result = export_run("runs/tiny", name="mlm", to="saved_models")  # saved_models/mlm/1/
    print(result.summary())

Signatures of a masked LM: fill_mask_text (raw strings), fill_mask (ids), encode (encoder output),
serving_default (the text one when stock TF Serving can run it). See signatures.py for the
per-model-type registry task models extend.

Names are imported on first use, so the CLI can read this package's defaults without importing
TensorFlow.
"""

import importlib

_EXPORTS = {
    "ExportResult": "exporter", "export_model": "exporter", "export_run": "exporter",
    "DEFAULT_SERVING_VERSION": "serving_ops", "SERVING_RELEASES": "serving_ops", "check_serving": "serving_ops",
    "SIGNATURES": "signatures", "ExportContext": "signatures", "Signature": "signatures",
    "register_signatures": "signatures", "signatures_for": "signatures",
}  # fmt: skip

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
