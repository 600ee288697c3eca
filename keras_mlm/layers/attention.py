"""Bidirectional multi-head self-attention with one fused query/key/value projection."""

import keras
import tensorflow as tf
from keras import ops

from keras_mlm.layers.fused import attention_probabilities, dropout_keep_mask
from keras_mlm.layers.initializers import clone_initializer
from keras_mlm.layers.linear import dense


def padding_mask_to_attention_bias(padding_mask, dtype):
    """(batch, seq_len) padding mask (1/True = real token) -> additive bias (batch, 1, 1, seq_len).

    0 for real keys, a large negative number for padded keys: after the softmax a padded key gets a
    weight of exactly 0, so the contents of padded positions never reach real positions. Built once
    per batch and broadcast over heads and queries, never materialised as (seq, seq).
    """
    large_negative = -3e4 if keras.backend.standardize_dtype(dtype) == "float16" else -1e9
    keep = ops.cast(padding_mask, dtype)
    bias = (1.0 - keep) * ops.cast(large_negative, dtype)  # (batch, seq_len)
    return bias[:, None, None, :]  # (batch, 1, 1, seq_len)


def local_attention_bias(sequence_length, window, dtype):
    """Additive bias (1, 1, seq, seq) letting query i see only keys j with |i - j| <= window // 2.

    ModernBERT's sliding window (`local_attention=128`: 64 tokens each side). Add it to the
    padding bias: (batch, 1, 1, seq) + (1, 1, seq, seq) broadcasts to (batch, 1, seq, seq). A real
    query always sees itself, so no row of a real token is fully masked.
    """
    large_negative = -3e4 if keras.backend.standardize_dtype(dtype) == "float16" else -1e9
    positions = ops.arange(sequence_length, dtype="int32")
    distance = ops.abs(positions[:, None] - positions[None, :])  # (seq, seq)
    bias = ops.where(distance <= window // 2, ops.cast(0.0, dtype), ops.cast(large_negative, dtype))
    return bias[None, None]  # (1, 1, seq, seq)


@keras.saving.register_keras_serializable(package="keras_mlm")
class MultiHeadSelfAttention(keras.layers.Layer):
    """softmax(q k^T / sqrt(head_dim) + bias) v over `num_heads` heads, then an output projection.

    Same math as keras.layers.MultiHeadAttention with query = key = value (dropout on the attention
    probabilities included). Differences, all for speed: q, k and v come from one
    (hidden, 3 * hidden) matmul and one split; the padding mask is a broadcast additive bias, not a
    (batch, seq, seq) mask rebuilt in every layer.
    """

    def __init__(self, num_heads, dropout=0.0, kernel_initializer="glorot_uniform", use_bias=True, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.dropout = float(dropout)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.use_bias = bool(use_bias)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, inputs_shape, attention_bias_shape=None):
        hidden_dim = inputs_shape[-1]
        if hidden_dim % self.num_heads:
            raise ValueError(f"hidden size {hidden_dim} is not divisible by num_heads={self.num_heads}")
        self.hidden_dim = hidden_dim
        self.head_dim = hidden_dim // self.num_heads
        self.qkv_kernel = self.add_weight(
            name="qkv_kernel", shape=(hidden_dim, 3 * hidden_dim),
            initializer=clone_initializer(self.kernel_initializer),
        )
        self.output_kernel = self.add_weight(
            name="output_kernel", shape=(hidden_dim, hidden_dim),
            initializer=clone_initializer(self.kernel_initializer),
        )
        if self.use_bias:
            self.qkv_bias = self.add_weight(name="qkv_bias", shape=(3 * hidden_dim,), initializer="zeros")
            self.output_bias = self.add_weight(name="output_bias", shape=(hidden_dim,), initializer="zeros")

    def call(self, inputs, attention_bias=None, training=None):
        batch, seq_len = ops.shape(inputs)[0], ops.shape(inputs)[1]
        heads, head_dim, hidden = self.num_heads, self.head_dim, self.hidden_dim
        # Fused q/k/v projection: one 2-D matmul over all tokens.
        x = ops.reshape(inputs, (-1, hidden))  # (tokens, hidden)
        qkv = dense(x, self.qkv_kernel, self.qkv_bias if self.use_bias else None)  # (tokens, 3 * hidden)
        # One transpose to (3, batch, heads, seq, head_dim), then a split along the outer axis, which
        # shares the buffer (indexing qkv[0] would be a strided slice whose gradient is a zero-filled
        # full-size copy per slice).
        qkv = ops.transpose(ops.reshape(qkv, (batch, seq_len, 3, heads, head_dim)), (2, 0, 3, 1, 4))
        query, key, value = (tf.squeeze(t, 0) for t in tf.split(qkv, 3, axis=0))  # (batch, heads, seq, head_dim)
        query, key = self.encode_positions(query, key, training)  # identity here; rotary in a subclass
        query = query * ops.cast(head_dim**-0.5, query.dtype)  # scale the smaller tensor
        scores = tf.matmul(query, key, transpose_b=True)  # (batch, heads, seq_q, seq_k)
        # Padding bias, softmax over keys, dropout. Plain ops on purpose: oneDNN's softmax and its
        # gradient beat an XLA-fused version here (one core, (32, 2, 128, 128): 3.5 ms vs 4.3 ms).
        keep = None
        if training and self.dropout > 0:
            keep = dropout_keep_mask(ops.shape(scores), self.dropout, self.seed_generator)
        probabilities = attention_probabilities(scores, attention_bias, keep, rate=self.dropout)
        context = tf.matmul(probabilities, value)  # (batch, heads, seq, head_dim)
        # Back to tokens, then the output projection.
        context = ops.reshape(ops.transpose(context, (0, 2, 1, 3)), (-1, hidden))  # (tokens, hidden)
        outputs = dense(context, self.output_kernel, self.output_bias if self.use_bias else None)
        return ops.reshape(outputs, (batch, seq_len, hidden))  # (batch, seq, hidden)

    def encode_positions(self, query, key, training=None):
        """Hook for relative position encodings of query and key, (batch, heads, seq, head_dim) each;
        none here (positions come from the embeddings). `RotarySelfAttention` rotates them."""
        return query, key

    def compute_output_shape(self, inputs_shape, attention_bias_shape=None):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "dropout": self.dropout,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "use_bias": self.use_bias,
                "seed": self.seed,
            }
        )
        return config
