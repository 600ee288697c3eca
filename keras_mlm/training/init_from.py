"""Continued (domain-adaptive) pre-training: a new run that starts from another run's masked LM.

    pretrain(config, "legal_text/", "vocab.txt", "runs/legal", init_from="runs/general")

The source folder (a `pretrain` run, or an imported checkpoint laid out the same way: model.keras,
vocab.txt, config.yaml) decides the architecture: its config.yaml `architecture` (bert when absent)
the kind of model, its `model` section every size,
and its model.keras the weights of the encoder and the MLM head. The new run brings the text, the
masking, the training settings (a fresh optimizer and warm-up) and its own folder. The vocabulary must
be the source's (the embedding rows are its tokens); sizes given again (`--preset`, `--model
hidden_dim=...`) must agree with the source's, while the fields that do not shape or change what the
weights compute (`ADJUSTABLE`, e.g. dropout) may be changed.
"""

import dataclasses
import os

from keras_mlm.errors import UserInputError
from keras_mlm.training.run_config import LEGACY_ARCHITECTURE, config_class

REQUIRED = ("vocabulary_size", "num_layers", "hidden_dim", "num_heads", "intermediate_dim")
ADJUSTABLE = ("dropout", "initializer_range")
"""Encoder fields a continued run may set differently from its source: regularisation, and the
initializer (unused, the weights are loaded)."""


@dataclasses.dataclass
class Source:
    """The run a continued run starts from (a `LoadedRun` plus what was checked)."""

    directory: str
    run: object  # keras_mlm.inference.run.LoadedRun
    encoder: dict  # the source's config fields (of its architecture's config class)
    architecture: str = LEGACY_ARCHITECTURE


def read_source(init_from, vocab_path, tokens):
    """Loads and checks the source run folder; refuses a vocabulary other than the source's."""
    from keras_mlm.inference.run import load_run
    from keras_mlm.tokenizers.vocabulary import find_saved, vocabulary_digest

    directory = os.fspath(init_from)
    run = load_run(directory)  # model.keras, its vocabulary and config.yaml present, readable and consistent
    theirs = getattr(run, "vocabulary", None) or run.tokens
    given, source = vocabulary_digest(tokens), vocabulary_digest(theirs)
    if given != source:
        saved = find_saved(directory) or os.path.join(directory, "vocab.txt")
        raise UserInputError(
            f"--init-from {directory}: its vocabulary {saved} (sha256 {source[:12]}..., "
            f"{len(theirs)} tokens) differs from --vocab {vocab_path} (sha256 {given[:12]}..., {len(tokens)} tokens); "
            f"a continued run keeps its source's vocabulary: pass --vocab {saved}"
        )
    section = run.config.get("model")
    architecture = run.config.get("architecture") or LEGACY_ARCHITECTURE
    fields = [f.name for f in dataclasses.fields(config_class(architecture, f"--init-from {directory}: config.yaml"))]
    if not isinstance(section, dict) or any(name not in section for name in REQUIRED):
        raise UserInputError(f"--init-from {directory}: its config.yaml has no complete 'model' section (the encoder's sizes)")
    return Source(directory=directory, run=run, encoder={k: v for k, v in section.items() if k in fields}, architecture=architecture)


def continued_config(config, source):
    """`config` with the source's architecture: the source's sizes, the run's adjustable fields.

    Refuses a `preset` or `model` value that contradicts the source (naming the field, both values).
    """
    if config.architecture is not None and config.architecture != source.architecture:
        raise UserInputError(
            f"--architecture {config.architecture} conflicts with --init-from {source.directory} (architecture {source.architecture}); "
            "a continued run keeps its source's architecture (leave --architecture out)"
        )
    encoder = dict(source.encoder)
    if config.preset is not None:
        preset = config_class(source.architecture).presets().get(config.preset, {})
        conflicts = [f"{k} {v} (source {encoder.get(k)})" for k, v in preset.items() if k not in config.model and encoder.get(k) != v]
        if conflicts:
            raise UserInputError(
                f"--preset {config.preset} conflicts with the model of --init-from {source.directory}: "
                f"{', '.join(conflicts)}; a continued run keeps its source's sizes (leave --preset out)"
            )
    conflicts = []
    for key, value in config.model.items():
        if key in ADJUSTABLE:
            encoder[key] = value
        elif encoder.get(key) != value:
            conflicts.append(f"{key}={value!r} (source {encoder.get(key)!r})")
    if conflicts:
        raise UserInputError(
            f"--model {', '.join(conflicts)} conflicts with the model of --init-from {source.directory}; "
            f"a continued run keeps its source's architecture (only {', '.join(ADJUSTABLE)} may change)"
        )
    encoder.pop("vocabulary_size", None)  # always the vocabulary's
    preset = source.run.config.get("preset")
    continued = config.with_architecture(source.architecture)  # its masking/training defaults where none were given
    return dataclasses.replace(continued, preset=str(preset) if preset else "custom", model=encoder)


def load_source_weights(model, source):
    """Copies the source model's weights (encoder and MLM head) into `model`, built with the same architecture."""
    import numpy as np

    source_model = source.run.model
    if hasattr(model, "masked_lm") != hasattr(source_model, "masked_lm"):
        # One side has an NSP/SOP head (--objective mlm+nsp / mlm+sop), the other not: the masked LMs carry over.
        model, source_model = getattr(model, "masked_lm", model), getattr(source_model, "masked_lm", source_model)
    weights = source_model.get_weights()
    targets = model.get_weights()
    shapes = [np.shape(w) for w in weights], [np.shape(w) for w in targets]
    if shapes[0] != shapes[1]:
        raise UserInputError(
            f"--init-from {source.directory}: its model.keras holds {len(weights)} weights, the model built from its "
            f"config.yaml {len(targets)} (first differing shapes: "
            f"{next(((a, b) for a, b in zip(*shapes) if a != b), (len(weights), len(targets)))}); the folder is inconsistent"
        )
    model.set_weights(weights)


def head_options(source):
    """The source model's MLM-head options that differ from the encoder's (an imported checkpoint's), if any."""
    model = source.run.model
    return {k: getattr(model, k) for k in ("head_activation", "head_layer_norm_epsilon") if getattr(model, k, None) is not None}
