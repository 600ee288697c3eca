"""Which checkpoint format a local folder holds, told from its files alone (nothing is downloaded)."""

import glob
import os

from keras_mlm.checkpoints import google_format, hf_format, keras_hub_format
from keras_mlm.errors import UserInputError

FORMATS = {m.FORMAT: m for m in (keras_hub_format, hf_format, google_format)}
"""Format name -> its module (`read(folder)`; keras-hub and hf also `write`)."""


def detect_format(folder):
    """The format module for `folder`:

        config.json with a Keras `registered_name`     keras-hub preset
        config.json with a `model_type`                Hugging Face
        bert_config.json + a TF checkpoint (*.index)   google-research/bert
    """
    if not os.path.isdir(folder):
        raise UserInputError(f"{folder}: no such checkpoint folder")
    if keras_hub_format.is_preset(folder):
        return keras_hub_format
    if hf_format.is_folder(folder):
        return hf_format
    if google_format.is_folder(folder):
        return google_format
    if os.path.isfile(os.path.join(folder, google_format.CONFIG_FILE)):
        raise UserInputError(f"{folder}: has bert_config.json but no TF checkpoint (bert_model.ckpt.index and .data-* files)")
    pickled = sorted(os.path.basename(p) for p in glob.glob(os.path.join(folder, "*.bin")))
    if pickled:
        raise UserInputError(
            f"{folder}: holds only {', '.join(pickled)} without a config.json; keras-mlm reads safetensors "
            "(with config.json) and never loads pickled weights"
        )
    raise UserInputError(
        f"{folder}: not a checkpoint folder keras-mlm knows (expected a keras-hub preset's config.json, a Hugging Face "
        "config.json + model.safetensors, or google-research's bert_config.json + bert_model.ckpt.*)"
    )
