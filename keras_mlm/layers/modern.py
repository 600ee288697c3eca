"""ModernBERT's layers: embeddings without positions, the sliding-window attention bias, and the
pre-norm encoder layer (rotary self-attention, GeGLU feed-forward, no biases)."""

import keras
from keras import ops

from keras_mlm.layers.attention import local_attention_bias
from keras_mlm.layers.embeddings import TokenEmbedding
from keras_mlm.layers.feed_forward import GatedFeedForward
from keras_mlm.layers.fused import apply_dropout, dropout_keep_mask, embeddings_norm, layer_norm, maybe_fused
from keras_mlm.layers.initializers import clone_initializer
from keras_mlm.layers.normalization import LayerNorm
from keras_mlm.layers.rotary import RotarySelfAttention


@keras.saving.register_keras_serializable(package="keras_mlm")
class ModernEmbeddings(keras.layers.Layer):
    """(token_ids, segment_ids) (batch, seq) -> dropout(LayerNorm(token [+ segment])), no positions.

    Positions enter through the rotary attention instead. The LayerNorm has no bias (ModernBERT).
    A segment embedding exists only for `num_segments` >= 2 (ModernBERT has none: with one segment
    it would be a constant). `max_sequence_length` is checked, not stored in a table.
    """

    def __init__(
        self,
        vocabulary_size,
        hidden_dim,
        num_segments=1,
        max_sequence_length=None,
        dropout=0.0,
        layer_norm_epsilon=1e-5,
        embeddings_initializer="uniform",
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocabulary_size = int(vocabulary_size)
        self.hidden_dim = int(hidden_dim)
        self.num_segments = int(num_segments)
        self.max_sequence_length = None if max_sequence_length is None else int(max_sequence_length)
        self.dropout = float(dropout)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, token_ids_shape, segment_ids_shape=None):
        self.token_embedding = TokenEmbedding(
            self.vocabulary_size, self.hidden_dim, clone_initializer(self.embeddings_initializer),
            dtype=self.dtype_policy, name="token_embedding",
        )
        self.token_embedding.build(token_ids_shape)
        self.segment_embedding = None
        if self.num_segments > 1:
            self.segment_embedding = TokenEmbedding(
                self.num_segments, self.hidden_dim, clone_initializer(self.embeddings_initializer),
                dtype=self.dtype_policy, name="segment_embedding",
            )
            self.segment_embedding.build(token_ids_shape)
        self.norm = LayerNorm(self.layer_norm_epsilon, center=False, dtype=self.dtype_policy, name="norm")
        self.norm.build((None, self.hidden_dim))

    def call(self, token_ids, segment_ids=None, training=None):
        seq_len = token_ids.shape[1]
        if self.max_sequence_length is not None and isinstance(seq_len, int) and seq_len > self.max_sequence_length:
            raise ValueError(f"sequence length {seq_len} exceeds max_sequence_length={self.max_sequence_length}")
        tokens = self.token_embedding(token_ids)  # (batch, seq, hidden)
        zero = ops.zeros((), tokens.dtype)
        segments = self.segment_embedding(segment_ids) if self.segment_embedding is not None else zero
        keep = None
        if training and self.dropout > 0:
            keep = dropout_keep_mask(ops.shape(tokens), self.dropout, self.seed_generator)
        return maybe_fused(embeddings_norm, training)(
            tokens, zero, segments, self.norm.gamma, None, keep, rate=self.dropout, epsilon=self.layer_norm_epsilon,
        )

    def compute_output_shape(self, token_ids_shape, segment_ids_shape=None):
        return (*token_ids_shape, self.hidden_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "hidden_dim": self.hidden_dim,
                "num_segments": self.num_segments,
                "max_sequence_length": self.max_sequence_length,
                "dropout": self.dropout,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
                "seed": self.seed,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_mlm")
class LocalAttentionBias(keras.layers.Layer):
    """padding bias (batch, 1, 1, seq) -> (batch, 1, seq, seq): plus `local_attention_bias`, so a
    query sees only the real keys within `window // 2` positions. Built once per batch and shared
    by every local layer."""

    def __init__(self, window, **kwargs):
        super().__init__(**kwargs)
        self.window = int(window)

    def call(self, padding_bias):
        seq_len = ops.shape(padding_bias)[-1]
        return padding_bias + local_attention_bias(seq_len, self.window, padding_bias.dtype)

    def compute_output_shape(self, padding_bias_shape):
        batch, seq_len = padding_bias_shape[0], padding_bias_shape[-1]
        return (batch, 1, seq_len, seq_len)

    def get_config(self):
        config = super().get_config()
        config.update({"window": self.window})
        return config


@keras.saving.register_keras_serializable(package="keras_mlm")
class ModernTransformerBlock(keras.layers.Layer):
    """The pre-norm layer of ModernBERT (Warner et al. 2024):

        x = x + Dropout(RotarySelfAttention(LayerNorm(x)))
        x = x + Dropout(GeGLU(LayerNorm(x)))

    with no bias in any dense layer or LayerNorm. `normalize_attention_input=False` skips the first
    LayerNorm (ModernBERT's first layer: the embeddings already end in one). Whether the layer is
    local or global is the caller's choice of `attention_bias` (padding bias, plus
    `local_attention_bias` for a sliding window) and of `rotary_max_wavelength`.
    """

    def __init__(
        self,
        num_heads,
        intermediate_dim,
        dropout=0.0,
        activation="gelu",
        layer_norm_epsilon=1e-5,
        rotary_max_wavelength=10000.0,
        normalize_attention_input=True,
        kernel_initializer="glorot_uniform",
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.intermediate_dim = int(intermediate_dim)
        self.dropout = float(dropout)
        self.activation = activation
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.rotary_max_wavelength = float(rotary_max_wavelength)
        self.normalize_attention_input = bool(normalize_attention_input)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, inputs_shape, attention_bias_shape=None):
        self.attention_norm = None
        if self.normalize_attention_input:
            self.attention_norm = LayerNorm(
                self.layer_norm_epsilon, center=False, dtype=self.dtype_policy, name="attention_norm"
            )
            self.attention_norm.build(inputs_shape)
        self.attention = RotarySelfAttention(
            self.num_heads, max_wavelength=self.rotary_max_wavelength, dropout=self.dropout,
            kernel_initializer=self.kernel_initializer, use_bias=False,
            seed=None if self.seed is None else self.seed + 1, dtype=self.dtype_policy, name="attention",
        )
        self.attention.build(inputs_shape)
        self.feed_forward_norm = LayerNorm(
            self.layer_norm_epsilon, center=False, dtype=self.dtype_policy, name="feed_forward_norm"
        )
        self.feed_forward_norm.build(inputs_shape)
        self.feed_forward = GatedFeedForward(
            self.intermediate_dim, activation=self.activation, use_bias=False,
            kernel_initializer=self.kernel_initializer, dtype=self.dtype_policy, name="feed_forward",
        )
        self.feed_forward.build(inputs_shape)

    def _norm(self, norm, x, training):
        if norm is None:
            return x
        return maybe_fused(layer_norm, training)(x, norm.gamma, None, epsilon=self.layer_norm_epsilon)

    def _residual(self, x, h, training):
        """x + Dropout(h)."""
        keep = None
        if training and self.dropout > 0:
            keep = dropout_keep_mask(keras.ops.shape(h), self.dropout, self.seed_generator)
        return x + apply_dropout(h, keep, self.dropout)

    def call(self, inputs, attention_bias=None, training=None):
        h = self.attention(self._norm(self.attention_norm, inputs, training), attention_bias=attention_bias,
                           training=training)  # (batch, seq, hidden)
        x = self._residual(inputs, h, training)
        h = self.feed_forward(self._norm(self.feed_forward_norm, x, training), training=training)
        return self._residual(x, h, training)  # (batch, seq, hidden)

    def compute_output_shape(self, inputs_shape, attention_bias_shape=None):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim,
                "dropout": self.dropout,
                "activation": self.activation,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "rotary_max_wavelength": self.rotary_max_wavelength,
                "normalize_attention_input": self.normalize_attention_input,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "seed": self.seed,
            }
        )
        return config
