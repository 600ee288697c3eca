"""Tiny BERT checkpoints in each published format, written by the tests themselves, and a plain numpy
forward pass to check imports against.

The fixtures spell every tensor name out as the format's own code does (not through keras-mlm's
name tables), so a wrong mapping in the importer cannot be mirrored by the fixture. The vocabulary
puts the specials at odd ids ([PAD] 0, [UNK] 3, [CLS] 4, [SEP] 5, [MASK] 6), as published
vocabularies do, so nothing may assume [UNK]..[MASK] = 1..4.
"""

import json
import math
import os

import numpy as np

TOKENS = [
    "[PAD]", "hello", "world", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat",
    "on", "mat", "dog", "ran", "##s", "a", "big", "red", "blue", "sky",
]  # fmt: skip
VOCAB, HIDDEN, HEADS, INTERMEDIATE, LAYERS, MAX_LEN, SEGMENTS = len(TOKENS), 16, 2, 32, 2, 16, 2
SCALE = 0.5  # weights large enough that GELU variants and epsilons differ visibly


def write_vocab(folder, tokens=TOKENS, name="vocab.txt"):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
        f.write("\n".join(tokens) + "\n")


def write_json(path, payload):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=2)


# ---------------------------------------------------------------------------------------------------
# google-research/bert names, kernels (in, out): the reference layout of the numpy forward pass.


def google_tensors(seed=0, head=True):
    """Random tensors named as google-research/bert's modeling.py (and run_pretraining.py's head) names them."""
    rng = np.random.default_rng(seed)

    def r(*shape):
        return (rng.standard_normal(shape) * SCALE).astype(np.float32)

    def gamma():
        return (1.0 + rng.standard_normal(HIDDEN) * 0.2).astype(np.float32)

    t = {
        "bert/embeddings/word_embeddings": r(VOCAB, HIDDEN),
        "bert/embeddings/position_embeddings": r(MAX_LEN, HIDDEN),
        "bert/embeddings/token_type_embeddings": r(SEGMENTS, HIDDEN),
        "bert/embeddings/LayerNorm/gamma": gamma(),
        "bert/embeddings/LayerNorm/beta": r(HIDDEN),
        "bert/pooler/dense/kernel": r(HIDDEN, HIDDEN),
        "bert/pooler/dense/bias": r(HIDDEN),
    }
    for i in range(LAYERS):
        p = f"bert/encoder/layer_{i}/"
        for name in ("query", "key", "value"):
            t[p + f"attention/self/{name}/kernel"] = r(HIDDEN, HIDDEN)
            t[p + f"attention/self/{name}/bias"] = r(HIDDEN)
        t[p + "attention/output/dense/kernel"] = r(HIDDEN, HIDDEN)
        t[p + "attention/output/dense/bias"] = r(HIDDEN)
        t[p + "attention/output/LayerNorm/gamma"] = gamma()
        t[p + "attention/output/LayerNorm/beta"] = r(HIDDEN)
        t[p + "intermediate/dense/kernel"] = r(HIDDEN, INTERMEDIATE)
        t[p + "intermediate/dense/bias"] = r(INTERMEDIATE)
        t[p + "output/dense/kernel"] = r(INTERMEDIATE, HIDDEN)
        t[p + "output/dense/bias"] = r(HIDDEN)
        t[p + "output/LayerNorm/gamma"] = gamma()
        t[p + "output/LayerNorm/beta"] = r(HIDDEN)
    if head:
        t.update({
            "cls/predictions/transform/dense/kernel": r(HIDDEN, HIDDEN),
            "cls/predictions/transform/dense/bias": r(HIDDEN),
            "cls/predictions/transform/LayerNorm/gamma": gamma(),
            "cls/predictions/transform/LayerNorm/beta": r(HIDDEN),
            "cls/predictions/output_bias": r(VOCAB),
            "cls/seq_relationship/output_weights": r(2, HIDDEN),
            "cls/seq_relationship/output_bias": r(2),
        })  # fmt: skip
    return t


def bert_config(hidden_act="gelu"):
    """bert_config.json (and, with HF's extra keys, the basis of config.json)."""
    return {
        "vocab_size": VOCAB, "hidden_size": HIDDEN, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
        "intermediate_size": INTERMEDIATE, "hidden_act": hidden_act, "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1, "max_position_embeddings": MAX_LEN, "type_vocab_size": SEGMENTS,
        "initializer_range": 0.02,
    }  # fmt: skip


def write_google(folder, tensors=None, config=None, tokens=TOKENS):
    """A google-research/bert folder: bert_config.json, bert_model.ckpt.{index,data-*} (TF1 name-based,
    written with the SaveV2 op the TF1 Saver uses), vocab.txt."""
    import tensorflow as tf

    tensors = google_tensors() if tensors is None else tensors
    os.makedirs(folder, exist_ok=True)
    write_json(os.path.join(folder, "bert_config.json"), config or bert_config())
    names = sorted(tensors)
    tf.raw_ops.SaveV2(
        prefix=os.path.join(folder, "bert_model.ckpt"), tensor_names=names, shape_and_slices=[""] * len(names),
        tensors=[tf.constant(tensors[n]) for n in names],
    )
    write_vocab(folder, tokens)
    return tensors


# ---------------------------------------------------------------------------------------------------
# Hugging Face BertForMaskedLM names, Linear weights (out, in).


def hf_from_google(g, layer_norm_names=("weight", "bias")):
    """The same tensors under BertForMaskedLM's state-dict names."""
    w, b = layer_norm_names
    t = {
        "bert.embeddings.word_embeddings.weight": g["bert/embeddings/word_embeddings"],
        "bert.embeddings.position_embeddings.weight": g["bert/embeddings/position_embeddings"],
        "bert.embeddings.token_type_embeddings.weight": g["bert/embeddings/token_type_embeddings"],
        f"bert.embeddings.LayerNorm.{w}": g["bert/embeddings/LayerNorm/gamma"],
        f"bert.embeddings.LayerNorm.{b}": g["bert/embeddings/LayerNorm/beta"],
        "bert.pooler.dense.weight": g["bert/pooler/dense/kernel"].T,
        "bert.pooler.dense.bias": g["bert/pooler/dense/bias"],
    }
    for i in range(LAYERS):
        gp, hp = f"bert/encoder/layer_{i}/", f"bert.encoder.layer.{i}."
        for name in ("query", "key", "value"):
            t[hp + f"attention.self.{name}.weight"] = g[gp + f"attention/self/{name}/kernel"].T
            t[hp + f"attention.self.{name}.bias"] = g[gp + f"attention/self/{name}/bias"]
        for hf, google in (("attention.output.dense", "attention/output/dense"), ("intermediate.dense", "intermediate/dense"),
                           ("output.dense", "output/dense")):
            t[hp + f"{hf}.weight"] = g[gp + f"{google}/kernel"].T
            t[hp + f"{hf}.bias"] = g[gp + f"{google}/bias"]
        for hf, google in (("attention.output.LayerNorm", "attention/output/LayerNorm"), ("output.LayerNorm", "output/LayerNorm")):
            t[hp + f"{hf}.{w}"] = g[gp + f"{google}/gamma"]
            t[hp + f"{hf}.{b}"] = g[gp + f"{google}/beta"]
    if "cls/predictions/output_bias" in g:
        t.update({
            "cls.predictions.transform.dense.weight": g["cls/predictions/transform/dense/kernel"].T,
            "cls.predictions.transform.dense.bias": g["cls/predictions/transform/dense/bias"],
            f"cls.predictions.transform.LayerNorm.{w}": g["cls/predictions/transform/LayerNorm/gamma"],
            f"cls.predictions.transform.LayerNorm.{b}": g["cls/predictions/transform/LayerNorm/beta"],
            "cls.predictions.bias": g["cls/predictions/output_bias"],
        })  # fmt: skip
    return {k: np.ascontiguousarray(v) for k, v in t.items()}


def write_hf(folder, tensors=None, hidden_act="gelu", do_lower_case=True, tokens=TOKENS, config_overrides=None):
    """A Hugging Face folder: config.json, model.safetensors, vocab.txt, tokenizer_config.json."""
    from safetensors.numpy import save_file

    tensors = hf_from_google(google_tensors()) if tensors is None else tensors
    os.makedirs(folder, exist_ok=True)
    config = {"architectures": ["BertForMaskedLM"], "model_type": "bert", **bert_config(hidden_act), "layer_norm_eps": 1e-12,
              "pad_token_id": 0, "position_embedding_type": "absolute", **(config_overrides or {})}
    write_json(os.path.join(folder, "config.json"), config)
    save_file(tensors, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
    write_vocab(folder, tokens)
    write_json(os.path.join(folder, "tokenizer_config.json"), {"do_lower_case": do_lower_case, "tokenizer_class": "BertTokenizer"})
    return tensors


# ---------------------------------------------------------------------------------------------------
# keras-hub presets.


def keras_hub_masked_lm(seed=0):
    """A keras-hub BertMaskedLM with every weight random (biases and LayerNorms included)."""
    import keras
    import keras_hub

    keras.utils.set_random_seed(seed)
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=list(TOKENS), lowercase=True)
    preprocessor = keras_hub.models.BertMaskedLMPreprocessor(tokenizer, sequence_length=8)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=VOCAB, num_layers=LAYERS, num_heads=HEADS, hidden_dim=HIDDEN, intermediate_dim=INTERMEDIATE,
        max_sequence_length=MAX_LEN, dropout=0.1,
    )
    model = keras_hub.models.BertMaskedLM(backbone, preprocessor=preprocessor)
    rng = np.random.default_rng(seed)
    model.set_weights([(rng.standard_normal(w.shape) * SCALE + (1.0 if "gamma" in w.path else 0.0)).astype(np.float32)
                       for w in model.weights])
    return model


# ---------------------------------------------------------------------------------------------------
# The reference: BERT's masked-LM forward pass in numpy, over google-research names.


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))


def gelu_erf(x):
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / np.sqrt(2.0)))


def _layer_norm(x, gamma, beta, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def reference_sequence_output(g, batch, act, eps=1e-12):
    """BERT's encoder (modeling.py) in float64 numpy: (batch, seq, hidden)."""
    g = {k: v.astype(np.float64) for k, v in g.items()}
    ids, segments, mask = batch["token_ids"], batch["segment_ids"], batch["padding_mask"]
    seq = ids.shape[1]
    x = g["bert/embeddings/word_embeddings"][ids] + g["bert/embeddings/position_embeddings"][:seq][None] \
        + g["bert/embeddings/token_type_embeddings"][segments]
    x = _layer_norm(x, g["bert/embeddings/LayerNorm/gamma"], g["bert/embeddings/LayerNorm/beta"], eps)
    bias = (1.0 - mask[:, None, None, :]) * -10000.0  # (batch, 1, 1, seq), as modeling.py
    head_dim = HIDDEN // HEADS
    for i in range(LAYERS):
        p = f"bert/encoder/layer_{i}/"

        def dense(h, name):
            return h @ g[p + name + "/kernel"] + g[p + name + "/bias"]

        def heads(h):
            return h.reshape(h.shape[0], seq, HEADS, head_dim).transpose(0, 2, 1, 3)  # (batch, heads, seq, head_dim)

        q, k, v = (heads(dense(x, f"attention/self/{n}")) for n in ("query", "key", "value"))
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(head_dim) + bias
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(x.shape)
        x = _layer_norm(x + dense(context, "attention/output/dense"), g[p + "attention/output/LayerNorm/gamma"],
                        g[p + "attention/output/LayerNorm/beta"], eps)
        h = act(dense(x, "intermediate/dense"))
        x = _layer_norm(x + dense(h, "output/dense"), g[p + "output/LayerNorm/gamma"], g[p + "output/LayerNorm/beta"], eps)
    return x


def reference_head_logits(g, sequence_output, mask_positions, act, eps=1e-12):
    """run_pretraining.py's get_masked_lm_output: gather, dense + act + LayerNorm, tied projection + bias."""
    g = {k: v.astype(np.float64) for k, v in g.items()}
    x = np.take_along_axis(sequence_output, mask_positions[..., None].astype(np.int64), axis=1)  # (batch, n, hidden)
    x = act(x @ g["cls/predictions/transform/dense/kernel"] + g["cls/predictions/transform/dense/bias"])
    x = _layer_norm(x, g["cls/predictions/transform/LayerNorm/gamma"], g["cls/predictions/transform/LayerNorm/beta"], eps)
    return x @ g["bert/embeddings/word_embeddings"].T + g["cls/predictions/output_bias"]


def reference_logits(g, batch, act, eps=1e-12, head_act=None, head_eps=None):
    sequence = reference_sequence_output(g, batch, act, eps)
    return reference_head_logits(g, sequence, batch["mask_positions"], head_act or act, head_eps or eps)


def probe(seed=1, batch=2, seq=10, n_masks=3):
    """Ids over the whole vocabulary, two segments, the second row padded, three mask slots per row."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, VOCAB, (batch, seq)).astype("int32")
    segments = np.zeros((batch, seq), "int32")
    segments[:, seq // 2:] = 1
    mask = np.ones((batch, seq), "int32")
    mask[1, seq - 3:] = 0
    ids[mask == 0] = 0
    positions = np.stack([np.sort(rng.choice(seq - 3, n_masks, replace=False)) for _ in range(batch)]).astype("int32")
    return {"token_ids": ids, "segment_ids": segments, "padding_mask": mask, "mask_positions": positions}
