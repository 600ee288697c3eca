"""A keras-mlm BERT run -> a keras-hub preset or a Hugging Face `BertForMaskedLM` folder.

    from keras_mlm.checkpoints import export_weights
    print(export_weights("runs/bert-base-domain", "hf", "exports/bert-domain-hf").summary())

keras-mlm trains no pooler, which both keras-hub's BertBackbone and HF's BertModel carry: the export
writes a newly initialised one (as HF does for a checkpoint without one). After writing, the folder
is loaded back with keras-hub and its outputs compared with the run's model on a probe batch.
"""

import dataclasses

import numpy as np

from keras_mlm import fileio
from keras_mlm.checkpoints import hf_format, keras_hub_format
from keras_mlm.checkpoints.layout import BertCheckpoint, probe_batch, read_masked_lm
from keras_mlm.checkpoints.staging import check_target, staged_folder
from keras_mlm.errors import UserInputError
from keras_mlm.models.encoder_base import ENCODER_INPUTS

EXPORT_FORMATS = {keras_hub_format.FORMAT: keras_hub_format, hf_format.FORMAT: hf_format}


@dataclasses.dataclass
class ExportResult:
    out: str
    format: str
    check: str | None
    """What loading the written folder back with keras-hub gave, in words; None when not checked."""
    notes: list

    def summary(self):
        lines = [f"wrote {self.format} folder {self.out}"]
        lines += [f"  note: {n}" for n in self.notes]
        if self.check:
            lines.append(f"  check: {self.check}")
        return "\n".join(lines)


def run_checkpoint(run):
    """The `BertCheckpoint` of a loaded run (a keras-mlm `MaskedLM` over a `BertEncoder`)."""
    from keras_mlm.models import BertEncoder, EncoderConfig, MaskedLM
    from keras_mlm.tokenizers.vocab import infer_lowercase

    model = run.model
    if not isinstance(model, MaskedLM) or not isinstance(model.encoder, BertEncoder):
        raise UserInputError(
            f"{run.directory}: export-weights writes BERT runs (a MaskedLM over a BertEncoder); "
            f"this run's model is a {type(model).__name__}"
        )
    encoder = EncoderConfig(**{f.name: getattr(model.encoder, f.name) for f in dataclasses.fields(EncoderConfig)})
    lowercase = run.lowercase if run.lowercase is not None else infer_lowercase(run.tokens)
    return BertCheckpoint(
        encoder=encoder, tensors=read_masked_lm(model), tokens=list(run.tokens), lowercase=bool(lowercase),
        head_activation=model.head_activation, head_layer_norm_epsilon=model.head_layer_norm_epsilon,
    )


def _max_difference(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def _check(fmt, out, model, encoder):
    """Loads `out` back with keras-hub and compares it with `model` on a probe batch."""
    import keras_hub

    batch = probe_batch(encoder)
    if fmt is keras_hub_format:
        hub = keras_hub.models.BertMaskedLM.from_preset(out, preprocessor=None)
        diff = _max_difference(hub(batch, training=False), model(batch, training=False))
        return f"keras_hub.models.BertMaskedLM.from_preset(OUT): masked-LM logits max |diff| {diff:.2e} on a probe batch"
    backbone = keras_hub.models.BertBackbone.from_preset(out)
    inputs = {k: batch[k] for k in ENCODER_INPUTS}
    diff = _max_difference(backbone(inputs, training=False)["sequence_output"], model.encoder(inputs, training=False))
    text = f"keras_hub.models.BertBackbone.from_preset(OUT) (keras-hub's HF converter): sequence output max |diff| {diff:.2e}"
    if encoder.activation != keras_hub_format.ENCODER_ACTIVATION:
        text += f" (that converter always computes tanh-GELU; this model's {encoder.activation} is what HF computes)"
    return text


def export_weights(run_dir, format, out, model_path=None, seed=0, overwrite=False, check=True):
    """Writes RUN_DIR's BERT masked LM as a `format` ("keras-hub" or "hf") folder at `out`, atomically.

    Args:
        model_path: export this checkpoint (e.g. RUN_DIR/checkpoints/ckpt-500.keras) instead of model.keras.
        seed: initialises the pooler, which keras-mlm does not train.
        check: load the written folder back with keras-hub and report the largest output difference.
    """
    from keras_mlm.inference.run import load_run

    if format not in EXPORT_FORMATS:
        raise UserInputError(f"--format {format!r}: allowed {', '.join(EXPORT_FORMATS)}")
    fmt = EXPORT_FORMATS[format]
    check_target(out, overwrite)
    run = load_run(run_dir, model_path)
    checkpoint = run_checkpoint(run)
    expects = "keras-hub's BertBackbone expects" if fmt is keras_hub_format else "HF's BertModel and keras-hub's converter expect"
    notes = [f"pooler: newly initialised (keras-mlm trains none; {expects} one): fine-tune it, or use sequence_output[:, 0]"]
    notes += [f"not exact: {d}" for d in fmt.differences(checkpoint)]
    with staged_folder(out, overwrite) as tmp:
        if fmt is keras_hub_format:
            keras_hub_format.write(checkpoint, tmp, run.sequence_length, seed=seed)
        else:
            hf_format.write(checkpoint, tmp, seed=seed)
    result = _check(fmt, fileio.abspath(out), run.model, checkpoint.encoder) if check else None
    return ExportResult(out=out, format=format, check=result, notes=notes)
