"""The picture of masked-LM learning: which tokens were masked and how, the context each masked
position attends to, and what the model predicts there; the same picture for TensorBoard.

    from keras_mlm.illustrate import illustrate_run
    path, summary = illustrate_run("runs/tiny", "the cat sat on the mat", "cat.svg", seed=0)

Modules: `attention` (attention probabilities recomputed from a layer's own weights),
`illustration` (the numbers), `figure` (layout and SVG), `render` (PNG and HTML), `tensorboard`
(image summaries and accuracy by corruption kind during pre-training). Names are imported on first
use, so the CLI can build its parser without importing TensorFlow.
"""

import importlib

_EXPORTS = {
    "AttentionProbe": "attention",
    "Illustration": "illustration",
    "Illustrator": "illustration",
    "illustrate_run": "illustration",
    "IllustrationSamples": "tensorboard",
    "accuracy_by_corruption": "tensorboard",
    "corruption_kinds": "illustration",
    "illustration_image": "tensorboard",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
