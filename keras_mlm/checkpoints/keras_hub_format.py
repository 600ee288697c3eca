"""keras-hub preset folders (what `BertMaskedLM.save_to_preset` writes), read and written with keras-hub.

    config.json            the backbone: {"class_name": "BertBackbone", "registered_name": "keras_hub>BertBackbone", ...}
    model.weights.h5       its weights
    task.json, task.weights.h5    the task (BertMaskedLM: its MLM head), when saved from a task
    tokenizer.json, assets/tokenizer/vocabulary.txt   the WordPiece tokenizer and its vocabulary

keras-hub's BERT math is fixed by its classes: the encoder uses tanh-GELU and LayerNorm epsilon
1e-12, the MLM head (`MaskedLMHead` in `BertMaskedLM`) erf-GELU and epsilon 1e-5. An imported
model keeps exactly that; an exported model with other settings is computed by keras-hub with
keras-hub's (the export reports the measured difference).
"""

import json
import os

import numpy as np

from keras_mlm.checkpoints.layout import BertCheckpoint, check_tensors
from keras_mlm.errors import UserInputError

FORMAT = "keras-hub"
CONFIG_FILE, TASK_FILE, TOKENIZER_FILE = "config.json", "task.json", "tokenizer.json"
VOCABULARY_FILE = os.path.join("assets", "tokenizer", "vocabulary.txt")
HEAD_ACTIVATION, HEAD_LAYER_NORM_EPSILON = "gelu", 1e-5  # keras-hub's BertMaskedLM head
ENCODER_ACTIVATION, ENCODER_LAYER_NORM_EPSILON = "gelu_approximate", 1e-12  # keras-hub's BertBackbone
UNSUPPORTED = {
    "RobertaBackbone": "RoBERTa", "XLMRobertaBackbone": "XLM-RoBERTa", "AlbertBackbone": "ALBERT",
    "DistilBertBackbone": "DistilBERT", "DebertaV3Backbone": "DeBERTa-v3", "ElectraBackbone": "ELECTRA",
    "FNetBackbone": "FNet", "F5Backbone": "F5",
}  # fmt: skip


def is_preset(folder):
    """A keras-hub preset: its config.json is a serialized Keras object."""
    config = _read_json(os.path.join(folder, CONFIG_FILE), required=False)
    return isinstance(config, dict) and "registered_name" in config and "class_name" in config


def _read_json(path, required=True):
    if not os.path.isfile(path):
        if required:
            raise UserInputError(f"{path}: file not found")
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserInputError(f"{path}: not valid JSON ({str(e).splitlines()[0]})") from None


def _keras_hub_error(path, error):
    message = str(error).strip().splitlines()
    return UserInputError(f"{path}: keras-hub cannot load it ({message[0] if message else type(error).__name__})")


def _activation_name(fn):
    name = getattr(fn, "__name__", None) or str(fn)
    return "gelu_approximate" if name == "gelu_approximate" else name


def backbone_tensors(backbone):
    """Canonical arrays of a keras-hub `BertBackbone` (query/key/value kernels (hidden, heads, head_dim)
    and the attention output kernel (heads, head_dim, hidden) flattened to (hidden, hidden))."""
    h = backbone.hidden_dim
    t = {
        "embeddings/token": backbone.token_embedding.embeddings,
        "embeddings/position": backbone.position_embedding.position_embeddings,
        "embeddings/segment": backbone.segment_embedding.embeddings,
        "embeddings/norm/gamma": backbone.embeddings_layer_norm.gamma,
        "embeddings/norm/beta": backbone.embeddings_layer_norm.beta,
    }
    t = {k: np.asarray(v.numpy(), np.float32) for k, v in t.items()}
    for i, layer in enumerate(backbone.transformer_layers):
        p, mha = f"layer_{i}/", layer._self_attention_layer
        for part, dense in (("query", mha.query_dense), ("key", mha.key_dense), ("value", mha.value_dense)):
            t[p + f"attention/{part}/kernel"] = dense.kernel.numpy().reshape(h, h)
            t[p + f"attention/{part}/bias"] = dense.bias.numpy().reshape(h)
        t[p + "attention/output/kernel"] = mha.output_dense.kernel.numpy().reshape(h, h)
        t[p + "attention/output/bias"] = mha.output_dense.bias.numpy()
        for ours, dense in (("intermediate", layer._feedforward_intermediate_dense), ("output", layer._feedforward_output_dense)):
            t[p + f"feed_forward/{ours}/kernel"] = dense.kernel.numpy()
            t[p + f"feed_forward/{ours}/bias"] = dense.bias.numpy()
        for ours, norm in (("attention_norm", layer._self_attention_layer_norm), ("feed_forward_norm", layer._feedforward_layer_norm)):
            t[p + f"{ours}/gamma"] = norm.gamma.numpy()
            t[p + f"{ours}/beta"] = norm.beta.numpy()
    return {k: np.asarray(v, np.float32) for k, v in t.items()}


def head_tensors(head):
    """Canonical arrays of the MLM head of a keras-hub `BertMaskedLM`."""
    t = {
        "head/transform/kernel": head._intermediate_dense.kernel,
        "head/transform/bias": head._intermediate_dense.bias,
        "head/transform_norm/gamma": head._intermediate_layer_norm.gamma,
        "head/transform_norm/beta": head._intermediate_layer_norm.beta,
        "head/output_bias": head._bias,
    }
    return {k: np.asarray(v.numpy(), np.float32) for k, v in t.items()}


def assign_backbone(backbone, tensors):
    """The inverse of `backbone_tensors` (the pooler is left as it is)."""
    h, heads = backbone.hidden_dim, backbone.num_heads
    backbone.token_embedding.embeddings.assign(tensors["embeddings/token"])
    backbone.position_embedding.position_embeddings.assign(tensors["embeddings/position"])
    backbone.segment_embedding.embeddings.assign(tensors["embeddings/segment"])
    backbone.embeddings_layer_norm.gamma.assign(tensors["embeddings/norm/gamma"])
    backbone.embeddings_layer_norm.beta.assign(tensors["embeddings/norm/beta"])
    for i, layer in enumerate(backbone.transformer_layers):
        p, mha = f"layer_{i}/", layer._self_attention_layer
        for part, dense in (("query", mha.query_dense), ("key", mha.key_dense), ("value", mha.value_dense)):
            dense.kernel.assign(tensors[p + f"attention/{part}/kernel"].reshape(h, heads, h // heads))
            dense.bias.assign(tensors[p + f"attention/{part}/bias"].reshape(heads, h // heads))
        mha.output_dense.kernel.assign(tensors[p + "attention/output/kernel"].reshape(heads, h // heads, h))
        mha.output_dense.bias.assign(tensors[p + "attention/output/bias"])
        layer._feedforward_intermediate_dense.kernel.assign(tensors[p + "feed_forward/intermediate/kernel"])
        layer._feedforward_intermediate_dense.bias.assign(tensors[p + "feed_forward/intermediate/bias"])
        layer._feedforward_output_dense.kernel.assign(tensors[p + "feed_forward/output/kernel"])
        layer._feedforward_output_dense.bias.assign(tensors[p + "feed_forward/output/bias"])
        for ours, norm in (("attention_norm", layer._self_attention_layer_norm), ("feed_forward_norm", layer._feedforward_layer_norm)):
            norm.gamma.assign(tensors[p + f"{ours}/gamma"])
            norm.beta.assign(tensors[p + f"{ours}/beta"])


def assign_head(head, tensors):
    head._intermediate_dense.kernel.assign(tensors["head/transform/kernel"])
    head._intermediate_dense.bias.assign(tensors["head/transform/bias"])
    head._intermediate_layer_norm.gamma.assign(tensors["head/transform_norm/gamma"])
    head._intermediate_layer_norm.beta.assign(tensors["head/transform_norm/beta"])
    head._bias.assign(tensors["head/output_bias"])


def read(folder):
    """A keras-hub BERT preset -> `BertCheckpoint` (and the vocabulary file to validate)."""
    import keras_hub

    from keras_mlm.models import EncoderConfig

    config_path = os.path.join(folder, CONFIG_FILE)
    config = _read_json(config_path)
    class_name = config.get("class_name")
    if class_name in UNSUPPORTED:
        raise UserInputError(
            f"{config_path}: the {UNSUPPORTED[class_name]} architecture ({class_name}) is not supported yet; "
            "keras-mlm imports BERT (BertBackbone) only"
        )
    if class_name != "BertBackbone":
        raise UserInputError(f"{config_path}: class_name {class_name!r} is not a BERT backbone (expected BertBackbone)")
    task = _read_json(os.path.join(folder, TASK_FILE), required=False)
    with_head = isinstance(task, dict) and task.get("class_name") == "BertMaskedLM"
    try:
        if with_head:
            hub = keras_hub.models.BertMaskedLM.from_preset(folder, preprocessor=None)
            backbone = hub.backbone
        else:
            backbone = keras_hub.models.BertBackbone.from_preset(folder)
    except (ValueError, KeyError, OSError, TypeError) as e:
        raise _keras_hub_error(os.path.join(folder, "task.weights.h5" if with_head else "model.weights.h5"), e) from None

    layer = backbone.transformer_layers[0]
    encoder = EncoderConfig(
        vocabulary_size=backbone.vocabulary_size, num_layers=backbone.num_layers, hidden_dim=backbone.hidden_dim,
        num_heads=backbone.num_heads, intermediate_dim=backbone.intermediate_dim,
        max_sequence_length=backbone.max_sequence_length, num_segments=backbone.num_segments,
        dropout=float(backbone.dropout), layer_norm_epsilon=float(layer.layer_norm_epsilon),
        activation=_activation_name(layer.activation), initializer_range=0.02,
    )
    tensors = backbone_tensors(backbone)
    head_activation = head_epsilon = None
    if with_head:
        tensors.update(head_tensors(hub.masked_lm_head))
        head_activation = _activation_name(hub.masked_lm_head.intermediate_activation)
        head_epsilon = float(hub.masked_lm_head.layer_norm_epsilon)
    tokenizer = (_read_json(os.path.join(folder, TOKENIZER_FILE), required=False) or {}).get("config", {})
    checkpoint = BertCheckpoint(
        encoder=encoder, tensors=tensors, tokens=[], lowercase=tokenizer.get("lowercase"),
        head_activation=head_activation, head_layer_norm_epsilon=head_epsilon,
    )
    checkpoint.source_names = {"embeddings/token": "token_embedding/embeddings (in model.weights.h5)"}
    check_tensors(checkpoint)
    return checkpoint, os.path.join(folder, VOCABULARY_FILE)


def differences(checkpoint):
    """How keras-hub would compute this model differently from keras-mlm (empty when it is exact)."""
    encoder = checkpoint.encoder
    out = []
    if encoder.activation != ENCODER_ACTIVATION or encoder.layer_norm_epsilon != ENCODER_LAYER_NORM_EPSILON:
        out.append(
            f"encoder activation {encoder.activation}, epsilon {encoder.layer_norm_epsilon:g} "
            f"(keras-hub's BertBackbone: {ENCODER_ACTIVATION}, {ENCODER_LAYER_NORM_EPSILON:g})"
        )
    head_activation = checkpoint.head_activation or encoder.activation
    head_epsilon = checkpoint.head_layer_norm_epsilon or encoder.layer_norm_epsilon
    if head_activation != HEAD_ACTIVATION or head_epsilon != HEAD_LAYER_NORM_EPSILON:
        out.append(
            f"MLM head activation {head_activation}, epsilon {head_epsilon:g} "
            f"(keras-hub's BertMaskedLM: {HEAD_ACTIVATION}, {HEAD_LAYER_NORM_EPSILON:g})"
        )
    return out


def build(checkpoint, sequence_length, seed=0):
    """A keras-hub `BertMaskedLM` (with its tokenizer and preprocessor) holding the checkpoint's
    weights; the pooler, which keras-mlm does not train, is newly initialised from `seed`."""
    import keras
    import keras_hub

    encoder = checkpoint.encoder
    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=encoder.vocabulary_size, num_layers=encoder.num_layers, num_heads=encoder.num_heads,
        hidden_dim=encoder.hidden_dim, intermediate_dim=encoder.intermediate_dim, dropout=encoder.dropout,
        max_sequence_length=encoder.max_sequence_length, num_segments=encoder.num_segments,
    )
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=list(checkpoint.tokens), lowercase=bool(checkpoint.lowercase))
    preprocessor = keras_hub.models.BertMaskedLMPreprocessor(tokenizer, sequence_length=sequence_length)
    hub = keras_hub.models.BertMaskedLM(backbone, preprocessor=preprocessor)
    assign_backbone(backbone, checkpoint.tensors)
    assign_head(hub.masked_lm_head, checkpoint.tensors)
    return hub


def write(checkpoint, folder, sequence_length, seed=0):
    """Writes a keras-hub preset folder (`BertMaskedLM.save_to_preset`); returns the keras-hub model."""
    hub = build(checkpoint, sequence_length, seed)
    hub.save_to_preset(folder)
    return hub
