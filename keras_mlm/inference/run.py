"""A finished (or checkpointed) pre-training run folder, loaded for inference.

    RUN_DIR/
      model.keras        the final masked LM
      vocab.txt          its vocabulary
      config.yaml        the resolved run configuration (model, data, masking, training)
      checkpoints/       ckpt-<step>.keras, the newest few
      backup/            the resumable training state
      logs/              TensorBoard
"""

import dataclasses
import os

import yaml

from keras_mlm.errors import UserInputError

MODEL_FILE, VOCAB_FILE, CONFIG_FILE = "model.keras", "vocab.txt", "config.yaml"


@dataclasses.dataclass
class LoadedRun:
    model: object
    tokens: list
    config: dict
    directory: str

    @property
    def sequence_length(self):
        return int(self.config.get("data", {}).get("seq_len", 128))

    @property
    def lowercase(self):
        return self.config.get("data", {}).get("lowercase")


def read_run_config(run_dir):
    path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


def load_run(run_dir, model_path=None):
    """Loads RUN_DIR's model (or `model_path`, e.g. a checkpoint), vocabulary and config."""
    import keras

    import keras_mlm.models  # noqa: F401  (registers the serializable classes)
    from keras_mlm.tokenizers.vocab import load_vocabulary

    if not os.path.isdir(run_dir):
        raise UserInputError(f"{run_dir}: no such run directory")
    model_path = model_path or os.path.join(run_dir, MODEL_FILE)
    if not os.path.exists(model_path):
        raise UserInputError(f"{run_dir}: holds no {MODEL_FILE} (has `keras-mlm pretrain` finished?)")
    tokens = load_vocabulary(os.path.join(run_dir, VOCAB_FILE))
    model = keras.saving.load_model(model_path, compile=False)
    return LoadedRun(model=model, tokens=tokens, config=read_run_config(run_dir), directory=run_dir)
