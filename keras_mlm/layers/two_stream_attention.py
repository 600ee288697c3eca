"""XLNet's two-stream relative self-attention, its transformer block, and the stack of blocks.

Each position carries two vectors (Yang et al. 2019, section 2.3):

- the content stream h, which sees its own token (the usual encoder state);
- the query stream g, which knows its position but not its token, and predicts it.

Both streams read keys and values from the content stream only, with the weights of one attention
layer; they differ in their queries and in their visibility masks (see `masking.permutation`). The
attention score of query i and key j is Transformer-XL's, plus XLNet's relative segment term:

    ((q_i + u) . k_j  +  (q_i + v) . W_r R[i - j]  +  (q_i + s) . S[same segment(i, j)]) / sqrt(d)

with R the sinusoid of the distance (`relative_position`), u, v, s learned per head and S two learned
segment vectors per head. There are no absolute positions anywhere.

The query stream is computed only at the target slots (batch, n, hidden), not at all positions: keys
and values never come from it, so the rows of other positions would be wasted work (keras-hub's layer
scatters its targets back to full length and computes L rows).
"""

import keras
import tensorflow as tf
from keras import ops

from keras_mlm.layers.feed_forward import FeedForward
from keras_mlm.layers.fused import add_norm, attention_probabilities, dropout_keep_mask, maybe_fused
from keras_mlm.layers.initializers import clone_initializer
from keras_mlm.layers.linear import dense
from keras_mlm.layers.normalization import LayerNorm
from keras_mlm.layers.relative_position import gather_relative, relative_position_encoding, relative_shift


def _large_negative(dtype):
    return -3e4 if keras.backend.standardize_dtype(dtype) == "float16" else -1e9


def visibility_to_bias(visible, dtype):
    """bool (batch, queries | 1, keys) -> additive bias (batch, 1, queries | 1, keys): 0 or a large negative."""
    bias = tf.where(visible, tf.zeros((), dtype), tf.cast(_large_negative(dtype), dtype))
    return bias[:, None]


@keras.saving.register_keras_serializable(package="keras_mlm")
class TwoStreamRelativeAttention(keras.layers.Layer):
    """Relative multi-head attention of a content stream and, optionally, a query stream over it.

    `call(content, position_encoding, attention_bias, different_segment, query=None, query_positions=None,
    query_attention_bias=None, query_different_segment=None)`:

        content (batch, L, hidden); position_encoding (2L, hidden), row k = distance L - k;
        attention_bias (batch, 1, L | 1, L) additive; different_segment (batch, 1, L, L) 0/1;
        query (batch, n, hidden) at query_positions (batch, n); query_attention_bias and
        query_different_segment (batch, 1, n, L).

    Returns the content output (batch, L, hidden), and with a query stream (content, query) outputs. A
    query row that sees no key gets a zero output (never a uniform average over hidden keys).
    Projections have no bias, as XLNet's; weights use keras-hub's `TwoStreamRelativeAttention` math
    (the tests check the two agree given the same weights).
    """

    def __init__(self, num_heads, dropout=0.0, kernel_initializer="glorot_uniform", seed=None, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.dropout = float(dropout)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, content_shape):
        hidden_dim = content_shape[-1]
        if hidden_dim % self.num_heads:
            raise ValueError(f"hidden size {hidden_dim} is not divisible by num_heads={self.num_heads}")
        self.hidden_dim, self.head_dim = hidden_dim, hidden_dim // self.num_heads
        heads, head_dim = self.num_heads, self.head_dim

        def kernel(name, shape):
            return self.add_weight(name=name, shape=shape, initializer=clone_initializer(self.kernel_initializer))

        self.query_kernel = kernel("query_kernel", (hidden_dim, hidden_dim))  # both streams' queries
        self.key_value_kernel = kernel("key_value_kernel", (hidden_dim, 2 * hidden_dim))  # content stream only
        self.position_kernel = kernel("position_kernel", (hidden_dim, hidden_dim))  # W_r
        self.output_kernel = kernel("output_kernel", (hidden_dim, hidden_dim))
        self.content_bias = self.add_weight(name="content_bias", shape=(heads, head_dim), initializer="zeros")  # u
        self.position_bias = self.add_weight(name="position_bias", shape=(heads, head_dim), initializer="zeros")  # v
        self.segment_bias = self.add_weight(name="segment_bias", shape=(heads, head_dim), initializer="zeros")  # s
        self.segment_embedding = kernel("segment_embedding", (2, heads, head_dim))  # S: same, different

    def _heads(self, x, length):
        """(batch * length, hidden) -> (batch, heads, length, head_dim)."""
        x = ops.reshape(x, (-1, length, self.num_heads, self.head_dim))
        return ops.transpose(x, (0, 2, 1, 3))

    def _attend(self, query, key, value, positions, attention_bias, different_segment, query_positions, training):
        """One stream's attention: (batch, heads, Q, head_dim) queries -> (batch * Q, hidden) output."""
        dtype = query.dtype
        scale = ops.cast(self.head_dim**-0.5, dtype)

        def biased(bias):  # (q + bias) / sqrt(d): scaling the small tensor, not the scores
            return (query + ops.cast(bias, dtype)[None, :, None, :]) * scale

        scores = tf.matmul(biased(self.content_bias), key, transpose_b=True)  # (batch, heads, Q, L)
        by_distance = tf.matmul(biased(self.position_bias), positions, transpose_b=True)  # (batch, heads, Q, 2L)
        if query_positions is None:
            scores += relative_shift(by_distance)  # queries at 0 .. L-1
        else:
            scores += gather_relative(by_distance, query_positions)
        segments = ops.transpose(ops.cast(self.segment_embedding, dtype), (1, 0, 2))[None]  # (1, heads, 2, head_dim)
        segment = tf.matmul(biased(self.segment_bias), segments, transpose_b=True)  # (batch, heads, Q, 2)
        scores += segment[..., :1] + different_segment * (segment[..., 1:] - segment[..., :1])  # (batch, heads, Q, L)
        keep = None
        if training and self.dropout > 0:
            keep = dropout_keep_mask(ops.shape(scores), self.dropout, self.seed_generator)
        probabilities = attention_probabilities(scores, attention_bias, keep, rate=self.dropout)
        if query_positions is not None:
            probabilities *= ops.cast(ops.equal(attention_bias, 0), dtype)  # a row seeing nothing outputs 0
        context = tf.matmul(probabilities, value)  # (batch, heads, Q, head_dim)
        context = ops.reshape(ops.transpose(context, (0, 2, 1, 3)), (-1, self.hidden_dim))  # (batch * Q, hidden)
        return dense(context, self.output_kernel)

    def call(self, content, position_encoding, attention_bias, different_segment, query=None, query_positions=None,
             query_attention_bias=None, query_different_segment=None, training=None):
        batch, length = ops.shape(content)[0], ops.shape(content)[1]
        dtype = content.dtype
        x = ops.reshape(content, (-1, self.hidden_dim))  # (batch * L, hidden)
        # Keys and values from the content stream: one matmul, one transpose, a split of the outer axis.
        kv = dense(x, self.key_value_kernel)  # (batch * L, 2 * hidden)
        kv = ops.transpose(ops.reshape(kv, (batch, length, 2, self.num_heads, self.head_dim)), (2, 0, 3, 1, 4))
        key, value = (tf.squeeze(t, 0) for t in tf.split(kv, 2, axis=0))  # (batch, heads, L, head_dim)
        # The distances' encodings, projected per head: (1, heads, 2L, head_dim).
        positions = dense(ops.cast(position_encoding, dtype), self.position_kernel)  # (2L, hidden)
        positions = ops.transpose(ops.reshape(positions, (-1, self.num_heads, self.head_dim)), (1, 0, 2))[None]
        different_segment = ops.cast(different_segment, dtype)

        query_content = self._heads(dense(x, self.query_kernel), length)  # (batch, heads, L, head_dim)
        content_out = self._attend(query_content, key, value, positions, attention_bias, different_segment, None, training)
        content_out = ops.reshape(content_out, (batch, length, self.hidden_dim))  # (batch, L, hidden)
        if query is None:
            return content_out
        n = ops.shape(query)[1]
        query_heads = self._heads(dense(ops.reshape(query, (-1, self.hidden_dim)), self.query_kernel), n)  # (b, h, n, d)
        query_out = self._attend(query_heads, key, value, positions, query_attention_bias,
                                 ops.cast(query_different_segment, dtype), query_positions, training)
        return content_out, ops.reshape(query_out, (batch, n, self.hidden_dim))  # (batch, n, hidden)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "dropout": self.dropout,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "seed": self.seed,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_mlm")
class TwoStreamTransformerBlock(keras.layers.Layer):
    """XLNet's post-norm layer, applied to each stream with the same weights:

        x = LayerNorm(x + Dropout(TwoStreamRelativeAttention(x)))
        x = LayerNorm(x + Dropout(FeedForward(x)))

    `call` takes `TwoStreamRelativeAttention`'s arguments and returns what it returns (the content
    stream, or both streams). In training each `LayerNorm(x + Dropout(.))` is one fused kernel.
    """

    def __init__(self, num_heads, intermediate_dim, dropout=0.0, activation="gelu", layer_norm_epsilon=1e-12,
                 kernel_initializer="glorot_uniform", seed=None, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.intermediate_dim = int(intermediate_dim)
        self.dropout = float(dropout)
        self.activation = activation
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, content_shape):
        self.attention = TwoStreamRelativeAttention(
            self.num_heads, dropout=self.dropout, kernel_initializer=self.kernel_initializer,
            seed=None if self.seed is None else self.seed + 1, dtype=self.dtype_policy, name="attention",
        )
        self.attention.build(content_shape)
        self.attention_norm = LayerNorm(self.layer_norm_epsilon, dtype=self.dtype_policy, name="attention_norm")
        self.attention_norm.build(content_shape)
        self.feed_forward = FeedForward(
            self.intermediate_dim, activation=self.activation, kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy, name="feed_forward",
        )
        self.feed_forward.build(content_shape)
        self.feed_forward_norm = LayerNorm(self.layer_norm_epsilon, dtype=self.dtype_policy, name="feed_forward_norm")
        self.feed_forward_norm.build(content_shape)

    def _add_norm(self, h, x, norm, training):
        keep = None
        if training and self.dropout > 0:
            keep = dropout_keep_mask(ops.shape(h), self.dropout, self.seed_generator)
        return maybe_fused(add_norm, training)(h, x, norm.gamma, norm.beta, keep, rate=self.dropout,
                                               epsilon=self.layer_norm_epsilon)

    def call(self, content, position_encoding, attention_bias, different_segment, query=None, query_positions=None,
             query_attention_bias=None, query_different_segment=None, training=None):
        attended = self.attention(
            content, position_encoding, attention_bias, different_segment, query=query, query_positions=query_positions,
            query_attention_bias=query_attention_bias, query_different_segment=query_different_segment, training=training,
        )
        if query is None:
            x, attended = content, attended  # (batch, L, hidden)
        else:
            # The rest is position-wise with shared weights: both streams as one (batch, L + n, hidden) tensor,
            # so each matmul and fused kernel runs once (and is compiled for one shape).
            x, attended = ops.concatenate([content, query], axis=1), ops.concatenate(attended, axis=1)
        x = self._add_norm(attended, x, self.attention_norm, training)
        x = self._add_norm(self.feed_forward(x, training=training), x, self.feed_forward_norm, training)
        if query is None:
            return x
        length = ops.shape(content)[1]
        return x[:, :length], x[:, length:]  # (batch, L, hidden), (batch, n, hidden)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim,
                "dropout": self.dropout,
                "activation": self.activation,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "seed": self.seed,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_mlm")
class TwoStreamTransformer(keras.layers.Layer):
    """XLNet's stack: `num_layers` `TwoStreamTransformerBlock`s over embedded tokens, with everything they
    share computed once per batch (the distances' encoding, the attention biases, the segment matrices).

    `call(content, segment_ids, padding_mask, content_visible=None, query=None, query_positions=None,
    query_visible=None)`:

        content (batch, L, hidden) token embeddings; segment_ids, padding_mask (batch, L);
        content_visible (batch, L, L) bool, None: every position sees every position;
        query (batch, n, hidden) initial query stream at query_positions (batch, n), seeing
        query_visible (batch, n, L) bool.

    Padding is never visible. Dropout is applied to both streams on the way in (XLNet's dropout on
    the word embeddings and on the query stream's initial vector). Returns the content stream
    (batch, L, hidden), or (content, query) with a query stream.
    """

    def __init__(self, num_layers, num_heads, intermediate_dim, dropout=0.0, activation="gelu",
                 layer_norm_epsilon=1e-12, kernel_initializer="glorot_uniform", max_sequence_length=512,
                 seed=None, **kwargs):
        super().__init__(**kwargs)
        self.num_layers = int(num_layers)
        self.num_heads = int(num_heads)
        self.intermediate_dim = int(intermediate_dim)
        self.dropout = float(dropout)
        self.activation = activation
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.max_sequence_length = int(max_sequence_length)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, content_shape):
        self.hidden_dim = content_shape[-1]
        self.blocks = []
        for i in range(self.num_layers):
            block = TwoStreamTransformerBlock(
                self.num_heads, self.intermediate_dim, dropout=self.dropout, activation=self.activation,
                layer_norm_epsilon=self.layer_norm_epsilon, kernel_initializer=self.kernel_initializer,
                seed=None if self.seed is None else self.seed + 10 * (i + 1), dtype=self.dtype_policy,
                name=f"transformer_block_{i}",
            )
            block.build(content_shape)
            self.blocks.append(block)

    def _dropout(self, x, training):
        if training and self.dropout > 0:
            keep = dropout_keep_mask(ops.shape(x), self.dropout, self.seed_generator)
            return tf.where(keep, x * ops.cast(1.0 / (1.0 - self.dropout), x.dtype), tf.zeros_like(x))
        return x

    def call(self, content, segment_ids, padding_mask, content_visible=None, query=None, query_positions=None,
             query_visible=None, training=None):
        length = ops.shape(content)[1]
        if isinstance(content.shape[1], int) and content.shape[1] > self.max_sequence_length:
            raise ValueError(f"sequence length {content.shape[1]} exceeds max_sequence_length={self.max_sequence_length}")
        dtype = content.dtype
        real = ops.cast(padding_mask, "bool")  # (batch, L)
        segment_ids = ops.cast(segment_ids, "int32")
        # Shared by every block: the distances' encoding, visibility as a bias, the segment matrix.
        position_encoding = ops.cast(relative_position_encoding(length, self.hidden_dim), dtype)  # (2L, hidden)
        visible = real[:, None, :] if content_visible is None else content_visible & real[:, None, :]  # (b, L | 1, L)
        attention_bias = visibility_to_bias(visible, dtype)  # (batch, 1, L | 1, L)
        different_segment = ops.not_equal(segment_ids[:, :, None], segment_ids[:, None, :])[:, None]  # (b, 1, L, L)
        content = self._dropout(content, training)
        stream_args = {}
        if query is not None:
            query_positions = ops.cast(query_positions, "int32")
            query_segments = tf.gather(segment_ids, query_positions, batch_dims=1)  # (batch, n)
            stream_args = {
                "query": self._dropout(query, training),
                "query_positions": query_positions,
                "query_attention_bias": visibility_to_bias(query_visible & real[:, None, :], dtype),  # (b, 1, n, L)
                "query_different_segment": ops.not_equal(query_segments[:, :, None], segment_ids[:, None, :])[:, None],
            }
        for block in self.blocks:
            outputs = block(content, position_encoding, attention_bias, different_segment, training=training, **stream_args)
            if query is None:
                content = outputs  # (batch, L, hidden)
            else:
                content, stream_args["query"] = outputs  # (batch, L, hidden), (batch, n, hidden)
        return content if query is None else (content, stream_args["query"])

    def compute_output_shape(self, content_shape, *args, **kwargs):
        return content_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_layers": self.num_layers,
                "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim,
                "dropout": self.dropout,
                "activation": self.activation,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "max_sequence_length": self.max_sequence_length,
                "seed": self.seed,
            }
        )
        return config
