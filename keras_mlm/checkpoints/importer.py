"""A local checkpoint folder -> a keras-mlm run folder (model.keras, vocab.txt, config.yaml).

    from keras_mlm.checkpoints import import_checkpoint
    result = import_checkpoint("downloads/bert-base-uncased", "runs/bert-base")
    print(result.summary())

Every later command (fill-mask, evaluate, score, export, pretrain --init-from, the recipes) then
reads the run folder as if `keras-mlm pretrain` had written it. config.yaml gets the usual sections
plus `imported: {format, source, head}`.
"""

import dataclasses
import os

from keras_mlm.checkpoints.detect import detect_format
from keras_mlm.checkpoints.layout import build_masked_lm_from
from keras_mlm.checkpoints.staging import check_target, staged_folder
from keras_mlm.errors import UserInputError
from keras_mlm.models.presets import PRESETS
from keras_mlm.tokenizers import vocab as vocab_lib

DEFAULT_SEQ_LEN = 128


@dataclasses.dataclass
class ImportResult:
    run_dir: str
    format: str
    source: str
    head: str
    """"imported" (the source's MLM head) or "initialised" (the source has none)."""
    encoder: object
    """The `EncoderConfig` of the imported model."""
    lowercase: bool
    notes: list

    def summary(self):
        e = self.encoder
        lines = [
            f"imported {self.format} checkpoint {self.source} -> {self.run_dir}",
            f"  model: {e.num_layers} layers, hidden {e.hidden_dim}, {e.num_heads} heads, intermediate {e.intermediate_dim}, "
            f"vocabulary {e.vocabulary_size}, activation {e.activation}, max length {e.max_sequence_length}",
            f"  lowercase: {self.lowercase}",
        ]
        if self.head == "imported":
            lines.append("  MLM head: imported")
        else:
            lines.append("  MLM head: initialised (the source has none): fill-mask is meaningless until you pre-train, "
                         "e.g. keras-mlm pretrain --init-from RUN")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _preset_name(encoder):
    """The preset with the same sizes (bert-base: "base"), else None; config.yaml's model section
    holds every size either way."""
    for name, sizes in PRESETS.items():
        if all(getattr(encoder, k) == v for k, v in sizes.items()):
            return name
    return None


def import_checkpoint(source, out, seq_len=None, seed=0, overwrite=False):
    """Imports the checkpoint folder `source` (format detected from its files) into the run folder `out`.

    Args:
        source: a keras-hub preset, Hugging Face BERT (safetensors) or google-research/bert folder.
        out: the run folder to write (whole or not at all; an existing non-empty one needs `overwrite`).
        seq_len: `data.seq_len` of the run (row length for fill-mask, evaluate and later pre-training);
            None: 128, or the model's max_sequence_length when that is shorter.
        seed: initialises the MLM head when the source has none.

    Raises `UserInputError` (one line naming the file, tensor or field) when the folder does not map.
    """
    from keras_mlm.data.prepare import DataConfig
    from keras_mlm.inference.run import CONFIG_FILE, MODEL_FILE, VOCAB_FILE
    from keras_mlm.training.run_config import RunConfig, save_config

    check_target(out, overwrite)
    fmt = detect_format(source)
    checkpoint, vocab_path = fmt.read(source)
    tokens = vocab_lib.load_vocabulary(vocab_path)
    rows = checkpoint.encoder.vocabulary_size
    if len(tokens) != rows:
        raise UserInputError(
            f"{vocab_path}: {len(tokens)} tokens, but the token embedding {checkpoint.name_of('embeddings/token')} "
            f"has {rows} rows"
        )
    checkpoint.tokens = tokens
    notes = list(checkpoint.notes)
    if checkpoint.lowercase is None:
        checkpoint.lowercase = vocab_lib.infer_lowercase(tokens)
        notes.append(f"lowercase={checkpoint.lowercase} inferred from the vocabulary (the source does not say)")
    if seq_len is None:
        seq_len = min(DEFAULT_SEQ_LEN, checkpoint.encoder.max_sequence_length)
    if seq_len > checkpoint.encoder.max_sequence_length:
        raise UserInputError(
            f"--seq-len {seq_len} exceeds the model's max_sequence_length {checkpoint.encoder.max_sequence_length}"
        )
    data = DataConfig(seq_len=seq_len, lowercase=bool(checkpoint.lowercase))
    model = build_masked_lm_from(checkpoint, seed=seed)
    head = "imported" if checkpoint.has_head else "initialised"
    model_fields = {k: v for k, v in checkpoint.encoder.to_dict().items() if k != "vocabulary_size"}
    run_config = RunConfig(architecture="bert", preset=_preset_name(checkpoint.encoder), model=model_fields, data=data)
    imported = {"format": fmt.FORMAT, "source": os.path.abspath(source), "head": head}
    if checkpoint.head_activation is not None:
        imported["head_activation"] = checkpoint.head_activation
    if checkpoint.head_layer_norm_epsilon is not None:
        imported["head_layer_norm_epsilon"] = checkpoint.head_layer_norm_epsilon

    with staged_folder(out, overwrite) as tmp:
        model.save(os.path.join(tmp, MODEL_FILE))
        vocab_lib.write_vocabulary(tokens, os.path.join(tmp, VOCAB_FILE))
        save_config(os.path.join(tmp, CONFIG_FILE), run_config, len(tokens), {"imported": imported})
    return ImportResult(
        run_dir=out, format=fmt.FORMAT, source=source, head=head, encoder=checkpoint.encoder,
        lowercase=bool(checkpoint.lowercase), notes=notes,
    )
