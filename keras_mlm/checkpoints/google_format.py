"""google-research/bert TF checkpoints: bert_config.json + bert_model.ckpt.{index,data-*} + vocab.txt.

Variables carry the names of the original modeling.py (`bert/embeddings/word_embeddings`,
`bert/encoder/layer_0/attention/self/query/kernel`, ..., the MLM head `cls/predictions/transform/*`
and `cls/predictions/output_bias`); kernels are already (in, out). The original code's "gelu" is
the tanh approximation, and every LayerNorm has epsilon 1e-12. Read with `tf.train.load_checkpoint`.
"""

import glob
import json
import os

import numpy as np

from keras_mlm.checkpoints.layout import BertCheckpoint, bert_config_encoder, check_tensors, layer_names
from keras_mlm.errors import UserInputError

FORMAT = "google-research"
CONFIG_FILE, VOCAB_FILE = "bert_config.json", "vocab.txt"
LAYER_NORM_EPSILON = 1e-12
# bert_config.json hidden_act (modeling.get_activation) -> keras-mlm activation.
ACTIVATIONS = {"gelu": "gelu_approximate", "relu": "relu", "tanh": "tanh", "linear": "linear"}
OPTIMIZER_SLOTS = ("adam_m", "adam_v", "global_step")


def is_folder(folder):
    """A google-research/bert folder: bert_config.json beside a TF checkpoint."""
    return os.path.isfile(os.path.join(folder, CONFIG_FILE)) and bool(glob.glob(os.path.join(folder, "*.index")))


def tensor_names(num_layers):
    """Canonical name -> the variable name in the checkpoint."""
    names = {
        "embeddings/token": "bert/embeddings/word_embeddings",
        "embeddings/position": "bert/embeddings/position_embeddings",
        "embeddings/segment": "bert/embeddings/token_type_embeddings",
        "embeddings/norm/gamma": "bert/embeddings/LayerNorm/gamma",
        "embeddings/norm/beta": "bert/embeddings/LayerNorm/beta",
        "head/transform/kernel": "cls/predictions/transform/dense/kernel",
        "head/transform/bias": "cls/predictions/transform/dense/bias",
        "head/transform_norm/gamma": "cls/predictions/transform/LayerNorm/gamma",
        "head/transform_norm/beta": "cls/predictions/transform/LayerNorm/beta",
        "head/output_bias": "cls/predictions/output_bias",
    }
    scopes = {
        "attention/query": "attention/self/query", "attention/key": "attention/self/key",
        "attention/value": "attention/self/value", "attention/output": "attention/output/dense",
        "attention_norm": "attention/output/LayerNorm", "feed_forward/intermediate": "intermediate/dense",
        "feed_forward/output": "output/dense", "feed_forward_norm": "output/LayerNorm",
    }  # fmt: skip
    for i in range(num_layers):
        for name in layer_names(i):
            module, weight = name.split("/", 1)[1].rsplit("/", 1)
            names[name] = f"bert/encoder/layer_{i}/{scopes[module]}/{weight}"
    return names


def checkpoint_prefix(folder):
    """The checkpoint's path prefix: the `checkpoint` file's newest, else the one *.index file."""
    import tensorflow as tf

    latest = tf.train.latest_checkpoint(folder)
    if latest:
        return latest
    indexes = sorted(glob.glob(os.path.join(folder, "*.index")))
    if not indexes:
        raise UserInputError(f"{folder}: holds no TF checkpoint (expected bert_model.ckpt.index and .data-* files)")
    preferred = os.path.join(folder, "bert_model.ckpt.index")
    if preferred in indexes:
        return preferred[: -len(".index")]
    if len(indexes) > 1:
        raise UserInputError(f"{folder}: holds several checkpoints ({', '.join(map(os.path.basename, indexes))}); keep one")
    return indexes[0][: -len(".index")]


def encoder_config(config, path):
    """bert_config.json -> `EncoderConfig` (modeling.BertConfig's defaults; every LayerNorm at 1e-12)."""
    return bert_config_encoder(config, path, ACTIVATIONS, num_segments=16, layer_norm_epsilon=LAYER_NORM_EPSILON)


def read(folder):
    """A google-research/bert folder -> `BertCheckpoint` (and the vocabulary file to validate)."""
    import tensorflow as tf

    path = os.path.join(folder, CONFIG_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserInputError(f"{path}: not valid JSON ({str(e).splitlines()[0]})") from None
    encoder = encoder_config(config, path)
    prefix = checkpoint_prefix(folder)
    try:
        reader = tf.train.load_checkpoint(prefix)
        available = reader.get_variable_to_shape_map()
    except (tf.errors.OpError, ValueError) as e:
        raise UserInputError(f"{prefix}: cannot read the TF checkpoint ({str(e).splitlines()[0]})") from None
    names = tensor_names(encoder.num_layers)
    tensors = {canonical: np.asarray(reader.get_tensor(name), np.float32) for canonical, name in names.items() if name in available}
    source_names = {canonical: f"{name} (in {os.path.basename(prefix)})" for canonical, name in names.items()}
    checkpoint = BertCheckpoint(encoder=encoder, tensors=tensors, tokens=[], lowercase=None, source_names=source_names)
    check_tensors(checkpoint)
    if any(n.startswith("bert/pooler/") for n in available):
        checkpoint.notes.append("pooler not imported: keras-mlm encoders have none (a [CLS] vector is sequence_output[:, 0])")
    used = set(names.values())
    ignored = sorted(
        n for n in available
        if n not in used and not n.startswith(("bert/pooler/", "cls/seq_relationship/")) and not n.endswith(OPTIMIZER_SLOTS)
    )  # fmt: skip
    if ignored:
        checkpoint.notes.append(f"ignored {len(ignored)} variable(s) that are not part of a BERT masked LM: {', '.join(ignored[:4])}"
                                + (", ..." if len(ignored) > 4 else ""))
    vocab = os.path.join(folder, VOCAB_FILE)
    if not os.path.isfile(vocab):
        raise UserInputError(f"{vocab}: vocabulary file not found")
    return checkpoint, vocab
