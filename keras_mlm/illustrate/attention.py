"""The attention probabilities of one encoder layer, recomputed from that layer's own weights.

The encoder returns hidden states only. To show which tokens a masked position looked at, a
sub-model runs the encoder up to the chosen block's input (the hidden states and the attention
bias the block really receives), then the block's query and key projections are applied with its
own weight variables and softmax(q k^T / sqrt(head_dim) + bias) is taken, as
`MultiHeadSelfAttention.call` does (dropout off). `attention_output` combines probabilities with
the value and output projections; it equals the layer's real output, which the tests check, so the
probabilities drawn are the ones the model used.

    probe = AttentionProbe(masked_lm.encoder, layer=-1)
    probabilities = probe(inputs)  # (batch, heads, seq, seq) float32 numpy, rows sum to 1
"""

import keras
import numpy as np
import tensorflow as tf

from keras_mlm.errors import UserInputError


def resolve_layer(num_layers, layer):
    """A Python-style layer index (negative counts from the end) -> 0-based index, checked."""
    if not isinstance(layer, (int, np.integer)) or isinstance(layer, bool) or not -num_layers <= layer < num_layers:
        raise UserInputError(
            f"--layer {layer!r}: the encoder has {num_layers} layer(s); give 0..{num_layers - 1} or a negative index from the end"
        )
    return int(layer) % num_layers


def _projections(attention, x):
    """x (batch, seq, hidden) float32 -> query, key, value (batch, heads, seq, head_dim) float32,
    with the layer's fused q/k/v kernel and its position encoding of query and key (none for BERT)."""
    batch, seq_len, hidden = tf.shape(x)[0], tf.shape(x)[1], attention.hidden_dim
    heads, head_dim = attention.num_heads, attention.head_dim
    qkv = tf.matmul(tf.reshape(x, (-1, hidden)), tf.cast(attention.qkv_kernel, tf.float32))  # (tokens, 3 * hidden)
    if attention.use_bias:
        qkv += tf.cast(attention.qkv_bias, tf.float32)
    qkv = tf.transpose(tf.reshape(qkv, (batch, seq_len, 3, heads, head_dim)), (2, 0, 3, 1, 4))  # (3, batch, heads, seq, head_dim)
    query, key, value = qkv[0], qkv[1], qkv[2]
    encode_positions = getattr(attention, "encode_positions", None)
    if encode_positions is not None:
        query, key = encode_positions(query, key, training=False)
    return tf.cast(query, tf.float32), tf.cast(key, tf.float32), value


def attention_probabilities(attention, x, bias=None):
    """A `MultiHeadSelfAttention` layer, its input x (batch, seq, hidden) and additive bias
    (broadcastable to (batch, heads, seq, seq)) -> softmax(q k^T / sqrt(head_dim) + bias),
    (batch, heads, seq_q, seq_k) float32."""
    query, key, _ = _projections(attention, tf.cast(x, tf.float32))
    scores = tf.matmul(query, key, transpose_b=True) * (attention.head_dim**-0.5)  # (batch, heads, seq, seq)
    if bias is not None:
        scores += tf.cast(bias, tf.float32)
    return tf.nn.softmax(scores, axis=-1)


def attention_output(attention, x, probabilities):
    """The layer's output from given probabilities: (probabilities @ v) through the output projection,
    (batch, seq, hidden) float32. With `attention_probabilities` it equals `attention(x, bias)`."""
    _, _, value = _projections(attention, tf.cast(x, tf.float32))
    context = tf.matmul(probabilities, value)  # (batch, heads, seq, head_dim)
    batch, seq_len = tf.shape(x)[0], tf.shape(x)[1]
    context = tf.reshape(tf.transpose(context, (0, 2, 1, 3)), (-1, attention.hidden_dim))  # (tokens, hidden)
    out = tf.matmul(context, tf.cast(attention.output_kernel, tf.float32))
    if attention.use_bias:
        out += tf.cast(attention.output_bias, tf.float32)
    return tf.reshape(out, (batch, seq_len, attention.hidden_dim))


class AttentionProbe:
    """Attention probabilities of block `layer` of an encoder with `transformer_blocks` (a `BertEncoder`).

    The sub-model shares the encoder's layers, so it always reads the current weights (during
    training too). Calling it returns (batch, heads, seq, seq) float32 numpy.
    """

    def __init__(self, encoder, layer=-1):
        blocks = getattr(encoder, "transformer_blocks", None)
        if not blocks:
            raise UserInputError(f"{type(encoder).__name__}: the illustration reads attention from an encoder with transformer blocks (a BertEncoder)")
        self.layer = resolve_layer(len(blocks), layer)
        self.num_layers = len(blocks)
        self.block = blocks[self.layer]
        self.attention = getattr(self.block, "attention", None)
        if self.attention is None or not hasattr(self.attention, "qkv_kernel"):
            raise UserInputError(f"{type(self.block).__name__}: the illustration reads a fused q/k/v self-attention (MultiHeadSelfAttention)")
        self.num_heads = self.attention.num_heads
        if getattr(encoder, "num_layers", len(blocks)) != len(blocks):
            raise UserInputError(
                f"{type(encoder).__name__}: its layers share blocks (ALBERT); the illustration reads attention of encoders with one block per layer"
            )
        # The block's inputs in the encoder's graph: its hidden states and, when it takes one, its bias.
        block_inputs = self.block.input
        self._submodel = keras.Model(encoder.input, block_inputs if isinstance(block_inputs, list) else [block_inputs])

    def block_inputs(self, inputs):
        """Encoder inputs -> (x, bias): the hidden states entering the attention sub-layer (after the
        block's first LayerNorm when it normalises first) and the bias the block receives (or None)."""
        outputs = self._submodel({name: inputs[name] for name in self._submodel.input}, training=False)
        x, bias = outputs[0], (outputs[1] if len(outputs) > 1 else None)
        # Pre-norm blocks normalise before attending: TransformerBlock(normalize_first=True), and
        # ModernTransformerBlock unless it is ModernBERT's first layer (no attention_norm).
        pre_norm = getattr(self.block, "normalize_first", False) or getattr(self.block, "normalize_attention_input", False)
        norm = getattr(self.block, "attention_norm", None)
        if pre_norm and norm is not None:
            x = norm(x)
        return x, bias

    def __call__(self, inputs):
        x, bias = self.block_inputs(inputs)
        return attention_probabilities(self.attention, x, bias).numpy()
