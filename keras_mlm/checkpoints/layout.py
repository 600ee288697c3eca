"""A BERT masked LM as plain arrays under one set of names: what every checkpoint format reads into
and writes from, and how those arrays go into (and come out of) a keras-mlm `MaskedLM`.

Canonical names (kernels are (in, out), as `x @ kernel`):

    embeddings/token (vocab, hidden)   embeddings/position (max_len, hidden)   embeddings/segment (segments, hidden)
    embeddings/norm/{gamma,beta}
    layer_{i}/attention/{query,key,value,output}/{kernel,bias}    (hidden, hidden), (hidden,)
    layer_{i}/attention_norm/{gamma,beta}
    layer_{i}/feed_forward/intermediate/{kernel,bias}             (hidden, intermediate), (intermediate,)
    layer_{i}/feed_forward/output/{kernel,bias}                   (intermediate, hidden), (hidden,)
    layer_{i}/feed_forward_norm/{gamma,beta}
    head/transform/{kernel,bias}  head/transform_norm/{gamma,beta}  head/output_bias (vocab,)

The head's output projection is tied to embeddings/token in every format keras-mlm reads or writes.
"""

import dataclasses

import numpy as np

from keras_mlm.errors import UserInputError

HEAD_NAMES = (
    "head/transform/kernel", "head/transform/bias", "head/transform_norm/gamma", "head/transform_norm/beta",
    "head/output_bias",
)  # fmt: skip


@dataclasses.dataclass
class BertCheckpoint:
    """A BERT masked LM read from (or to be written to) a checkpoint folder."""

    encoder: object
    """The `EncoderConfig` (sizes, activation, epsilon, dropout) of the encoder."""
    tensors: dict
    """Canonical name -> float32 array; the head's names are absent when the source has no MLM head."""
    tokens: list
    """The vocabulary, id = index."""
    lowercase: bool
    """Whether the tokenizer lowercases text."""
    head_activation: str | None = None
    """The MLM head's transform activation when it is not the encoder's (keras-hub: "gelu")."""
    head_layer_norm_epsilon: float | None = None
    """The MLM head's LayerNorm epsilon when it is not the encoder's (keras-hub: 1e-5)."""
    notes: list = dataclasses.field(default_factory=list)
    """One-line remarks for the user (what was assumed, what was left out)."""
    source_names: dict = dataclasses.field(default_factory=dict)
    """Canonical name -> the tensor's name in the source files, for error messages."""

    def name_of(self, canonical):
        """The source's own name of a canonical tensor (the canonical name when it has none)."""
        return self.source_names.get(canonical, canonical)

    @property
    def has_head(self):
        return all(name in self.tensors for name in HEAD_NAMES)


def bert_config_encoder(config, path, activations, num_segments, layer_norm_epsilon, epsilon_field=None):
    """A BERT config mapping (google-research's bert_config.json or Hugging Face's config.json, which
    share their field names) -> `EncoderConfig`. The formats differ only in defaults and activation
    names: `activations` maps hidden_act to ours, `num_segments` is type_vocab_size's default, and the
    LayerNorm epsilon is `layer_norm_epsilon` unless `epsilon_field` (HF's layer_norm_eps) sets it."""
    from keras_mlm.models import EncoderConfig

    for field in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"):
        if field not in config:
            raise UserInputError(f"{path}: field '{field}' is missing")
    act = config.get("hidden_act", "gelu")
    if act not in activations:
        raise UserInputError(f"{path}: hidden_act {act!r} is not supported (allowed: {', '.join(activations)})")

    def number(field, default):
        value = config.get(field, default)
        try:
            return float(value)
        except (TypeError, ValueError):
            raise UserInputError(f"{path}: field '{field}' is {value!r}, not a number") from None

    try:
        return EncoderConfig(
            vocabulary_size=config["vocab_size"], num_layers=config["num_hidden_layers"], hidden_dim=config["hidden_size"],
            num_heads=config["num_attention_heads"], intermediate_dim=config["intermediate_size"],
            max_sequence_length=config.get("max_position_embeddings", 512), num_segments=config.get("type_vocab_size", num_segments),
            dropout=number("hidden_dropout_prob", 0.1), layer_norm_epsilon=number(epsilon_field, layer_norm_epsilon) if epsilon_field else layer_norm_epsilon,
            activation=activations[act], initializer_range=number("initializer_range", 0.02),
        )
    except UserInputError as e:
        raise UserInputError(f"{path}: {e}") from None


def layer_names(i):
    prefix = f"layer_{i}/"
    names = [f"attention/{p}/{w}" for p in ("query", "key", "value", "output") for w in ("kernel", "bias")]
    names += [f"feed_forward/{p}/{w}" for p in ("intermediate", "output") for w in ("kernel", "bias")]
    names += [f"{n}/{w}" for n in ("attention_norm", "feed_forward_norm") for w in ("gamma", "beta")]
    return [prefix + n for n in names]


def expected_shapes(config):
    """Canonical name -> shape for an `EncoderConfig` (encoder and head)."""
    v, h, f = config.vocabulary_size, config.hidden_dim, config.intermediate_dim
    shapes = {
        "embeddings/token": (v, h),
        "embeddings/position": (config.max_sequence_length, h),
        "embeddings/segment": (config.num_segments, h),
        "embeddings/norm/gamma": (h,),
        "embeddings/norm/beta": (h,),
    }
    for i in range(config.num_layers):
        for name in layer_names(i):
            kind = name.split("/", 1)[1]
            if kind.endswith("/kernel"):
                shape = {"feed_forward/intermediate/kernel": (h, f), "feed_forward/output/kernel": (f, h)}.get(kind, (h, h))
            else:
                shape = (f,) if kind == "feed_forward/intermediate/bias" else (h,)
            shapes[name] = shape
    shapes.update({
        "head/transform/kernel": (h, h), "head/transform/bias": (h,), "head/transform_norm/gamma": (h,),
        "head/transform_norm/beta": (h,), "head/output_bias": (v,),
    })  # fmt: skip
    return shapes


def check_tensors(checkpoint):
    """Raises a one-line `UserInputError` for the first missing or misshapen tensor, named as the
    source's files spell it (`checkpoint.source_names`). The head is all or nothing."""
    describe = checkpoint.name_of
    shapes = expected_shapes(checkpoint.encoder)
    head = [n for n in HEAD_NAMES if n in checkpoint.tensors]
    for name, shape in shapes.items():
        if name in HEAD_NAMES and not head:
            continue
        if name not in checkpoint.tensors:
            what = "the MLM head is incomplete: " if name in HEAD_NAMES else ""
            raise UserInputError(f"{what}tensor {describe(name)} is missing")
        got = tuple(checkpoint.tensors[name].shape)
        if got != tuple(shape):
            raise UserInputError(f"tensor {describe(name)} has shape {got}, the config implies {tuple(shape)}")


def _encoder_variables(encoder):
    """Canonical name -> variable of a keras-mlm `BertEncoder`, except q/k/v (see `encoder_tensors`)."""
    emb = encoder.embeddings
    out = {
        "embeddings/token": emb.token_embedding.embeddings,
        "embeddings/position": emb.position_embedding.embeddings,
        "embeddings/segment": emb.segment_embedding.embeddings,
        "embeddings/norm/gamma": emb.norm.gamma,
        "embeddings/norm/beta": emb.norm.beta,
    }
    for i, block in enumerate(encoder.transformer_blocks):
        p = f"layer_{i}/"
        attention, ff = block.attention, block.feed_forward
        out.update({
            p + "attention/output/kernel": attention.output_kernel,
            p + "attention/output/bias": attention.output_bias,
            p + "attention_norm/gamma": block.attention_norm.gamma,
            p + "attention_norm/beta": block.attention_norm.beta,
            p + "feed_forward/intermediate/kernel": ff.intermediate_kernel,
            p + "feed_forward/intermediate/bias": ff.intermediate_bias,
            p + "feed_forward/output/kernel": ff.output_kernel,
            p + "feed_forward/output/bias": ff.output_bias,
            p + "feed_forward_norm/gamma": block.feed_forward_norm.gamma,
            p + "feed_forward_norm/beta": block.feed_forward_norm.beta,
        })  # fmt: skip
    return out


def _head_variables(head):
    """Canonical name -> variable of a keras-mlm `MaskedLMHead` (its projection is the token embedding)."""
    return {
        "head/transform/kernel": head.transform_kernel,
        "head/transform/bias": head.transform_bias,
        "head/transform_norm/gamma": head.transform_norm.gamma,
        "head/transform_norm/beta": head.transform_norm.beta,
        "head/output_bias": head.output_bias,
    }


def encoder_tensors(encoder):
    """The canonical float32 arrays of a keras-mlm `BertEncoder`. q, k and v live in one fused
    (hidden, 3 * hidden) kernel: each canonical tensor is one column block of it."""
    tensors = {name: np.asarray(v.numpy(), np.float32) for name, v in _encoder_variables(encoder).items()}
    for i, block in enumerate(encoder.transformer_blocks):
        kernels = np.split(block.attention.qkv_kernel.numpy().astype(np.float32), 3, axis=1)  # 3 x (hidden, hidden)
        biases = np.split(block.attention.qkv_bias.numpy().astype(np.float32), 3)
        for part, kernel, bias in zip(("query", "key", "value"), kernels, biases):
            tensors[f"layer_{i}/attention/{part}/kernel"] = kernel
            tensors[f"layer_{i}/attention/{part}/bias"] = bias
    return tensors


def read_masked_lm(model):
    """The canonical float32 arrays of a keras-mlm `MaskedLM` (encoder and head)."""
    head = {name: np.asarray(v.numpy(), np.float32) for name, v in _head_variables(model.mlm_head).items()}
    return {**encoder_tensors(model.encoder), **head}


def assign_masked_lm(model, tensors):
    """Puts canonical arrays into a built keras-mlm `MaskedLM` (shapes already checked); head names
    that are absent leave the head as initialised."""
    variables = {**_encoder_variables(model.encoder), **_head_variables(model.mlm_head)}
    for name, variable in variables.items():
        if name in tensors:
            variable.assign(np.asarray(tensors[name], np.float32))
    for i, block in enumerate(model.encoder.transformer_blocks):
        p = f"layer_{i}/attention/"
        block.attention.qkv_kernel.assign(np.concatenate([tensors[p + f"{q}/kernel"] for q in ("query", "key", "value")], axis=1))
        block.attention.qkv_bias.assign(np.concatenate([tensors[p + f"{q}/bias"] for q in ("query", "key", "value")]))


def build_masked_lm_from(checkpoint, seed=0):
    """A keras-mlm `MaskedLM` holding the checkpoint's weights; an absent head is initialised from `seed`."""
    import keras

    from keras_mlm.models import build_masked_lm

    keras.utils.set_random_seed(seed)
    model = build_masked_lm(
        checkpoint.encoder,
        head_activation=checkpoint.head_activation,
        head_layer_norm_epsilon=checkpoint.head_layer_norm_epsilon,
    )
    model(probe_batch(checkpoint.encoder))  # builds every variable
    assign_masked_lm(model, checkpoint.tensors)
    return model


def probe_batch(config, seq_len=8, batch=2, seed=0):
    """A fixed small batch for an `EncoderConfig`: random ids, two segments, the second row padded,
    three mask slots per row among the real tokens. Used to build models and to check logits."""
    rng = np.random.default_rng(seed)
    seq_len = max(1, min(seq_len, config.max_sequence_length))
    real = seq_len - seq_len // 4  # real tokens of the padded rows
    token_ids = rng.integers(1, config.vocabulary_size, (batch, seq_len)).astype("int32")
    segment_ids = np.zeros((batch, seq_len), "int32")
    segment_ids[:, seq_len // 2:] = min(1, config.num_segments - 1)
    padding_mask = np.ones((batch, seq_len), "int32")
    padding_mask[1:, real:] = 0
    token_ids[padding_mask == 0] = 0
    n_masks = min(3, real)
    mask_positions = np.stack([np.sort(rng.choice(real, n_masks, replace=False)) for _ in range(batch)])
    return {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask,
            "mask_positions": mask_positions.astype("int32")}
