"""Hugging Face BERT folders: config.json + model.safetensors (or sharded, with its index) + vocab.txt.

Tensor names are `BertForMaskedLM`'s (`bert.` prefix; a `BertModel` folder has none): Linear weights
are (out, in), so kernels are transposed; LayerNorms are `weight`/`bias` (old checkpoints such as
bert-base-uncased: `gamma`/`beta`). The MLM head is `cls.predictions.*`, its decoder tied to the word
embeddings. Only safetensors are read: pickled `.bin` files can run code when loaded, so keras-mlm
never opens them.
"""

import json
import os

import numpy as np

from keras_mlm.checkpoints.layout import BertCheckpoint, bert_config_encoder, check_tensors, layer_names
from keras_mlm.errors import UserInputError

FORMAT = "hf"
CONFIG_FILE, WEIGHTS_FILE, INDEX_FILE = "config.json", "model.safetensors", "model.safetensors.index.json"
VOCAB_FILE, TOKENIZER_CONFIG_FILE, SPECIAL_TOKENS_FILE = "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"
UNSUPPORTED = {
    "roberta": "RoBERTa", "xlm-roberta": "XLM-RoBERTa", "albert": "ALBERT", "distilbert": "DistilBERT",
    "deberta": "DeBERTa", "deberta-v2": "DeBERTa-v2", "electra": "ELECTRA", "modernbert": "ModernBERT",
    "camembert": "CamemBERT", "xlnet": "XLNet",
}  # fmt: skip
PICKLED = (".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack")
# HF hidden_act -> keras-mlm activation. HF's "gelu" is the exact (erf) GELU; gelu_new,
# gelu_pytorch_tanh and gelu_fast are all the tanh approximation.
ACTIVATIONS = {
    "gelu": "gelu", "gelu_new": "gelu_approximate", "gelu_pytorch_tanh": "gelu_approximate",
    "gelu_fast": "gelu_approximate", "relu": "relu", "silu": "silu", "swish": "silu", "tanh": "tanh",
}  # fmt: skip
HF_ACTIVATIONS = {"gelu": "gelu", "gelu_approximate": "gelu_new", "relu": "relu", "silu": "silu", "tanh": "tanh"}
SPECIAL_TOKENS = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]"}


def is_folder(folder):
    """A Hugging Face model folder: its config.json names a `model_type`."""
    path = os.path.join(folder, CONFIG_FILE)
    if not os.path.isfile(path):
        return False
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(config, dict) and "model_type" in config


def tensor_names(num_layers):
    """Canonical name -> (HF name without the `bert.` prefix, transposed?). LayerNorm names are given
    as `.weight`/`.bias`; `gamma`/`beta` are accepted on reading."""
    names = {
        "embeddings/token": ("embeddings.word_embeddings.weight", False),
        "embeddings/position": ("embeddings.position_embeddings.weight", False),
        "embeddings/segment": ("embeddings.token_type_embeddings.weight", False),
        "embeddings/norm/gamma": ("embeddings.LayerNorm.weight", False),
        "embeddings/norm/beta": ("embeddings.LayerNorm.bias", False),
        "head/transform/kernel": ("cls.predictions.transform.dense.weight", True),
        "head/transform/bias": ("cls.predictions.transform.dense.bias", False),
        "head/transform_norm/gamma": ("cls.predictions.transform.LayerNorm.weight", False),
        "head/transform_norm/beta": ("cls.predictions.transform.LayerNorm.bias", False),
        "head/output_bias": ("cls.predictions.bias", False),
    }
    hf = {
        "attention/query": "attention.self.query", "attention/key": "attention.self.key",
        "attention/value": "attention.self.value", "attention/output": "attention.output.dense",
        "attention_norm": "attention.output.LayerNorm", "feed_forward/intermediate": "intermediate.dense",
        "feed_forward/output": "output.dense", "feed_forward_norm": "output.LayerNorm",
    }  # fmt: skip
    for i in range(num_layers):
        for name in layer_names(i):
            module, weight = name.split("/", 1)[1].rsplit("/", 1)
            suffix = {"kernel": "weight", "bias": "bias", "gamma": "weight", "beta": "bias"}[weight]
            names[name] = (f"encoder.layer.{i}.{hf[module]}.{suffix}", weight == "kernel")
    return names


def _read_config(folder):
    path = os.path.join(folder, CONFIG_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except FileNotFoundError:
        raise UserInputError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserInputError(f"{path}: not valid JSON ({str(e).splitlines()[0]})") from None
    model_type = config.get("model_type")
    if model_type in UNSUPPORTED:
        raise UserInputError(
            f"{path}: the {UNSUPPORTED[model_type]} architecture (model_type {model_type!r}) is not supported yet; "
            "keras-mlm imports BERT (model_type 'bert') only"
        )
    if model_type != "bert":
        raise UserInputError(f"{path}: model_type {model_type!r} is not BERT (expected 'bert')")
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise UserInputError(
            f"{path}: position_embedding_type {config['position_embedding_type']!r} is not supported (only 'absolute')"
        )
    return config, path


def encoder_config(config, path):
    """config.json -> `EncoderConfig` (BertConfig's defaults for the optional fields)."""
    return bert_config_encoder(config, path, ACTIVATIONS, num_segments=2, layer_norm_epsilon=1e-12, epsilon_field="layer_norm_eps")


def _weight_files(folder):
    """The safetensors files of a folder, or a one-line error saying what is there instead."""
    index = os.path.join(folder, INDEX_FILE)
    if os.path.isfile(index):
        try:
            with open(index, encoding="utf-8") as f:
                weight_map = json.load(f)["weight_map"]
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:
            raise UserInputError(f"{index}: not a safetensors index ({e})") from None
        files = sorted(set(weight_map.values()))
        for name in files:
            if not os.path.isfile(os.path.join(folder, name)):
                raise UserInputError(f"{index}: shard {name} is missing")
        return [os.path.join(folder, name) for name in files]
    single = os.path.join(folder, WEIGHTS_FILE)
    if os.path.isfile(single):
        return [single]
    others = sorted(n for n in os.listdir(folder) if n.endswith(PICKLED))
    if others:
        raise UserInputError(
            f"{folder}: holds no {WEIGHTS_FILE}, only {', '.join(others)}; keras-mlm reads safetensors only and never "
            "loads pickled weights (convert them where you trust the file, e.g. save_pretrained(..., safe_serialization=True))"
        )
    raise UserInputError(f"{folder}: holds no {WEIGHTS_FILE} (nor {INDEX_FILE})")


def _load_tensors(files):
    from safetensors import SafetensorError, safe_open

    tensors = {}
    for path in files:
        try:
            with safe_open(path, framework="np") as f:
                for key in f.keys():
                    tensors[key] = f.get_tensor(key)
        except (SafetensorError, OSError, ValueError, TypeError) as e:
            raise UserInputError(f"{path}: cannot read safetensors ({str(e).splitlines()[0]})") from None
    return tensors


def read(folder):
    """A Hugging Face BERT folder -> `BertCheckpoint` (and the vocabulary file to validate)."""
    config, config_path = _read_config(folder)
    encoder = encoder_config(config, config_path)
    files = _weight_files(folder)
    raw = _load_tensors(files)
    source = os.path.basename(files[0]) if len(files) == 1 else INDEX_FILE
    prefix = "bert." if "bert.embeddings.word_embeddings.weight" in raw else ""
    names = tensor_names(encoder.num_layers)
    tensors, used, notes = {}, set(), []
    for canonical, (hf_name, transposed) in names.items():
        full = (prefix if not hf_name.startswith("cls.") else "") + hf_name
        candidates = [full]
        if full.endswith("LayerNorm.weight"):
            candidates.append(full[: -len("weight")] + "gamma")
        elif full.endswith("LayerNorm.bias"):
            candidates.append(full[: -len("bias")] + "beta")
        elif full == "cls.predictions.bias":
            candidates.append("cls.predictions.decoder.bias")
        for candidate in candidates:
            if candidate in raw:
                array = np.asarray(raw[candidate], np.float32)
                tensors[canonical] = np.ascontiguousarray(array.T) if transposed else array
                used.add(candidate)
                break
    if "cls.predictions.decoder.bias" in raw:
        used.add("cls.predictions.decoder.bias")
    decoder = raw.get("cls.predictions.decoder.weight")
    if decoder is not None:
        used.add("cls.predictions.decoder.weight")
        word = tensors.get("embeddings/token")
        if word is not None and (decoder.shape != word.shape or not np.array_equal(np.asarray(decoder, np.float32), word)):
            raise UserInputError(
                f"{folder}: tensor cls.predictions.decoder.weight differs from {prefix}embeddings.word_embeddings.weight; "
                "an untied output projection does not map onto keras-mlm's tied MLM head"
            )

    source_names = {
        canonical: f"{'' if hf_name.startswith('cls.') else prefix}{hf_name} (in {source})"
        for canonical, (hf_name, _) in names.items()
    }
    checkpoint = BertCheckpoint(encoder=encoder, tensors=tensors, tokens=[], lowercase=None, notes=notes, source_names=source_names)
    check_tensors(checkpoint)
    pooler = [k for k in raw if k.startswith(prefix + "pooler.")]
    used.update(pooler)
    if pooler:
        notes.append("pooler not imported: keras-mlm encoders have none (a [CLS] vector is sequence_output[:, 0])")
    ignored = sorted(set(raw) - used - {k for k in raw if k.endswith("position_ids")})
    if ignored:
        notes.append(f"ignored {len(ignored)} tensor(s) that are not part of a BERT masked LM: {', '.join(ignored[:4])}"
                     + (", ..." if len(ignored) > 4 else ""))
    attention_dropout = config.get("attention_probs_dropout_prob", encoder.dropout)
    if attention_dropout != encoder.dropout:
        notes.append(f"dropout {encoder.dropout} everywhere (config: hidden {encoder.dropout}, attention {attention_dropout})")
    tokenizer_config = {}
    path = os.path.join(folder, TOKENIZER_CONFIG_FILE)
    if os.path.isfile(path):
        try:
            with open(path, encoding="utf-8") as f:
                tokenizer_config = json.load(f)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise UserInputError(f"{path}: not valid JSON ({str(e).splitlines()[0]})") from None
    checkpoint.lowercase = tokenizer_config.get("do_lower_case")
    vocab = os.path.join(folder, VOCAB_FILE)
    if not os.path.isfile(vocab):
        found = " (found tokenizer.json only: keras-mlm needs the WordPiece vocab.txt)" if os.path.isfile(os.path.join(folder, "tokenizer.json")) else ""
        raise UserInputError(f"{vocab}: vocabulary file not found{found}")
    return checkpoint, vocab


def hf_config(checkpoint):
    """The config.json of `BertForMaskedLM` for a checkpoint."""
    encoder = checkpoint.encoder
    if encoder.activation not in HF_ACTIVATIONS:
        raise UserInputError(
            f"activation {encoder.activation!r} has no Hugging Face hidden_act (exportable: {', '.join(HF_ACTIVATIONS)})"
        )
    return {
        "architectures": ["BertForMaskedLM"],
        "model_type": "bert",
        "vocab_size": encoder.vocabulary_size,
        "hidden_size": encoder.hidden_dim,
        "num_hidden_layers": encoder.num_layers,
        "num_attention_heads": encoder.num_heads,
        "intermediate_size": encoder.intermediate_dim,
        "hidden_act": HF_ACTIVATIONS[encoder.activation],
        "hidden_dropout_prob": encoder.dropout,
        "attention_probs_dropout_prob": encoder.dropout,
        "max_position_embeddings": encoder.max_sequence_length,
        "type_vocab_size": encoder.num_segments,
        "initializer_range": encoder.initializer_range,
        "layer_norm_eps": encoder.layer_norm_epsilon,
        "pad_token_id": checkpoint.tokens.index("[PAD]"),
        "position_embedding_type": "absolute",
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
    }


def differences(checkpoint):
    """How HF's BertForMaskedLM (one activation and epsilon for encoder and head) would compute this
    model differently from keras-mlm (empty when it is exact)."""
    encoder = checkpoint.encoder
    head_activation = checkpoint.head_activation or encoder.activation
    head_epsilon = checkpoint.head_layer_norm_epsilon or encoder.layer_norm_epsilon
    if head_activation == encoder.activation and head_epsilon == encoder.layer_norm_epsilon:
        return []
    return [
        f"MLM head activation {head_activation}, epsilon {head_epsilon:g}; HF's BertForMaskedLM uses the encoder's "
        f"({encoder.activation}, {encoder.layer_norm_epsilon:g}) in the head too"
    ]


def write(checkpoint, folder, seed=0):
    """Writes config.json, model.safetensors (BertForMaskedLM names, a newly initialised pooler) and
    the tokenizer files into `folder` (which exists and is empty)."""
    import keras
    from safetensors.numpy import save_file

    encoder = checkpoint.encoder
    config = hf_config(checkpoint)
    arrays = {}
    for canonical, (hf_name, transposed) in tensor_names(encoder.num_layers).items():
        array = np.asarray(checkpoint.tensors[canonical], np.float32)
        arrays[hf_name if hf_name.startswith("cls.") else "bert." + hf_name] = np.ascontiguousarray(array.T if transposed else array)
    # keras-mlm trains no pooler; HF's BertModel and keras-hub's converter expect one: initialised as
    # HF initialises a missing one (truncated normal, initializer_range; zero bias).
    initializer = keras.initializers.TruncatedNormal(stddev=encoder.initializer_range, seed=seed)
    kernel = np.asarray(initializer((encoder.hidden_dim, encoder.hidden_dim)), np.float32)
    arrays["bert.pooler.dense.weight"] = np.ascontiguousarray(kernel.T)
    arrays["bert.pooler.dense.bias"] = np.zeros((encoder.hidden_dim,), np.float32)
    save_file(arrays, os.path.join(folder, WEIGHTS_FILE), metadata={"format": "pt"})
    _write_json(os.path.join(folder, CONFIG_FILE), config)
    with open(os.path.join(folder, VOCAB_FILE), "w", encoding="utf-8") as f:
        f.write("\n".join(checkpoint.tokens) + "\n")
    _write_json(os.path.join(folder, TOKENIZER_CONFIG_FILE), {
        "tokenizer_class": "BertTokenizer",
        "do_lower_case": bool(checkpoint.lowercase),
        "strip_accents": False,  # keras-mlm's WordPiece tokenizer keeps accents
        "tokenize_chinese_chars": True,
        "model_max_length": encoder.max_sequence_length,
        **SPECIAL_TOKENS,
    })  # fmt: skip
    _write_json(os.path.join(folder, SPECIAL_TOKENS_FILE), dict(SPECIAL_TOKENS))


def _write_json(path, payload):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=2)
        f.write("\n")
