"""A finished (or checkpointed) pre-training run folder, loaded for inference.

    RUN_DIR/
      model.keras        the final pre-training model (a MaskedLM; an ElectraPretrainer for `architecture: electra`)
      vocab.txt          its vocabulary, of the kind it was trained with (`Vocabulary.save_beside`):
        or vocab-bpe/    WordPiece vocab.txt, byte-level BPE vocab-bpe/ (vocab.json, merges.txt) or
        or vocab.model   SentencePiece vocab.model; `load_run` finds whichever is there
      config.yaml        the resolved run configuration (model, data, masking, training)
      checkpoints/       ckpt-<step>.keras, the newest few
      backup/            the resumable training state
      logs/              TensorBoard

RUN_DIR may be on any filesystem `tf.io.gfile` knows (`gs://...`), see `keras_mlm.fileio`.
"""

import dataclasses
import functools
import os

import yaml

from keras_mlm import fileio
from keras_mlm.errors import UserInputError

MODEL_FILE, VOCAB_FILE, CONFIG_FILE = "model.keras", "vocab.txt", "config.yaml"  # VOCAB_FILE: a WordPiece run's


def masked_lm_of(model):
    """The masked LM of a pre-training model: an ELECTRA pre-trainer's generator, an NSP/SOP pre-trainer's
    masked LM, any other model itself.
    Fill-mask, evaluation and scoring read it; fine-tuning and `encode` read `model.encoder` (for ELECTRA
    the discriminator)."""
    from keras_mlm.models import ElectraPretrainer, PairPretrainer

    if isinstance(model, PairPretrainer):  # --objective mlm+nsp / mlm+sop: the masked LM under the pair head
        return model.masked_lm
    return model.generator if isinstance(model, ElectraPretrainer) else model


@dataclasses.dataclass
class LoadedRun:
    model: object
    vocabulary: object
    """The run's `Vocabulary` (any kind): what fill-mask, evaluation, scoring and export take."""
    config: dict
    directory: str

    @functools.cached_property
    def tokens(self):
        """The vocabulary's pieces as a list, id = index (what WordPiece-only code reads)."""
        return list(self.vocabulary.tokens)

    @property
    def masked_lm(self):
        """The model that fills masks (see `masked_lm_of`)."""
        return masked_lm_of(self.model)

    @property
    def architecture(self):
        return self.config.get("architecture") or "bert"

    @property
    def sequence_length(self):
        return int(self.config.get("data", {}).get("seq_len", 128))

    @property
    def lowercase(self):
        """Whether text is lower-cased before tokenization: the vocabulary's casing (for WordPiece
        config.yaml's `data.lowercase`, inferred from the tokens when unset)."""
        return self.vocabulary.lowercase


def read_run_config(run_dir):
    """RUN_DIR/config.yaml as a mapping ({} when there is none), with errors naming the file."""
    path = os.path.join(run_dir, CONFIG_FILE)
    if not fileio.exists(path):
        return {}
    try:
        with fileio.open(path, encoding="utf-8") as f:
            config = yaml.safe_load(f) or {}
    except (*fileio.read_errors(path), UnicodeDecodeError, yaml.YAMLError) as e:
        raise UserInputError(f"{path}: unreadable run configuration ({str(e).splitlines()[0]}); the file is damaged") from None
    if not isinstance(config, dict):
        raise UserInputError(f"{path}: not a run configuration (a mapping of sections); the file is damaged")
    return config


# Encoder fields config.yaml records that must agree with the model file.
_CHECKED_FIELDS = ("vocabulary_size", "num_layers", "hidden_dim", "num_heads", "intermediate_dim", "max_sequence_length")


def find_vocabulary(run_dir):
    """The path of the vocabulary saved in RUN_DIR, whatever its kind (`Vocabulary.save_beside`'s names).

    A folder with none is a `UserInputError` naming the folder and the three names; one with two (say a
    stale vocab.txt beside vocab-bpe/) is one too, since nothing says which the model was trained with.
    """
    from keras_mlm.tokenizers.vocabulary import SAVED_NAMES

    names = list(SAVED_NAMES.values())  # vocab.txt, vocab-bpe, vocab.model
    present = [n for n in names if fileio.exists(os.path.join(run_dir, n))]
    if not present:
        raise UserInputError(
            f"{os.path.join(run_dir, names[0])}: vocabulary file not found (nor {names[1]}/ nor {names[2]}): the run folder "
            f"holds no vocabulary; `keras-mlm pretrain` writes one of {names[0]}, {names[1]}/, {names[2]} beside {MODEL_FILE}"
        )
    if len(present) > 1:
        raise UserInputError(
            f"{run_dir}: holds {len(present)} vocabularies ({', '.join(present)}); keep only the one the model was trained with"
        )
    return os.path.join(run_dir, present[0])


def _check_consistent(run_dir, model, vocabulary, vocabulary_path, config):
    """The folder's three files describe one model: the vocabulary fills the embedding, config.yaml
    names the model's sizes, and its rows fit the position table."""
    encoder = getattr(model, "encoder", model)
    vocabulary_size = getattr(encoder, "vocabulary_size", None)
    if vocabulary_size is not None and vocabulary_size != len(vocabulary):
        raise UserInputError(
            f"{vocabulary_path}: holds {len(vocabulary)} tokens, the model in {MODEL_FILE} has "
            f"{vocabulary_size} embedding rows; the vocabulary is truncated or belongs to another run"
        )
    section = config.get("model") or {}
    for field in _CHECKED_FIELDS:
        if field in section and hasattr(encoder, field) and section[field] != getattr(encoder, field):
            raise UserInputError(
                f"{os.path.join(run_dir, CONFIG_FILE)}: says model {field} {section[field]!r}, {MODEL_FILE} has "
                f"{getattr(encoder, field)!r}; the files belong to different runs"
            )
    seq_len = (config.get("data") or {}).get("seq_len")
    if seq_len is not None and getattr(encoder, "max_sequence_length", None) and seq_len > encoder.max_sequence_length:
        raise UserInputError(
            f"{os.path.join(run_dir, CONFIG_FILE)}: data seq_len {seq_len} exceeds the model's "
            f"{encoder.max_sequence_length} positions"
        )


def load_run(run_dir, model_path=None):
    """Loads RUN_DIR's model (or `model_path`, e.g. a checkpoint), vocabulary (any kind) and config.

    A missing, truncated or mismatched model.keras, vocabulary or config.yaml is a `UserInputError`
    naming the file and what is wrong. A WordPiece vocabulary takes config.yaml's `data.lowercase`
    (inferred from the tokens when unset); BPE and SentencePiece carry their own casing.
    """
    import keras

    import keras_mlm.models  # noqa: F401  (registers the serializable classes)
    from keras_mlm.tokenizers.vocabulary import Vocabulary

    run_dir = os.fspath(run_dir)
    if not fileio.isdir(run_dir):
        raise UserInputError(f"{run_dir}: no such run directory")
    model_path = os.fspath(model_path) if model_path else os.path.join(run_dir, MODEL_FILE)
    if not fileio.exists(model_path):
        raise UserInputError(f"{run_dir}: holds no {os.path.basename(model_path)} (has `keras-mlm pretrain` finished?)")
    if not fileio.exists(os.path.join(run_dir, CONFIG_FILE)):
        raise UserInputError(f"{run_dir}: holds no {CONFIG_FILE} (the run's configuration); the folder is incomplete")
    config = read_run_config(run_dir)
    vocabulary_path = find_vocabulary(run_dir)
    vocabulary = Vocabulary.load(vocabulary_path, (config.get("data") or {}).get("lowercase"))
    try:
        model = keras.saving.load_model(model_path, compile=False)
    except Exception as e:  # a damaged zip, a missing member, a config Keras cannot rebuild
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserInputError(f"{model_path}: not a readable Keras model ({type(e).__name__}: {reason[:200]}); the file is truncated or damaged") from None
    _check_consistent(run_dir, model, vocabulary, vocabulary_path, config)
    return LoadedRun(model=model, vocabulary=vocabulary, config=config, directory=run_dir)
