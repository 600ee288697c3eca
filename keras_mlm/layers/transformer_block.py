"""One transformer encoder layer: self-attention and feed-forward, each with a residual and LayerNorm."""

import keras

from keras_mlm.layers.attention import MultiHeadSelfAttention
from keras_mlm.layers.feed_forward import FeedForward
from keras_mlm.layers.fused import (
    add_norm,
    apply_dropout,
    dropout_keep_mask,
    maybe_fused,
)
from keras_mlm.layers.normalization import LayerNorm


@keras.saving.register_keras_serializable(package="keras_mlm")
class TransformerBlock(keras.layers.Layer):
    """BERT's post-norm layer (`normalize_first=False`):

        x = LayerNorm(x + Dropout(SelfAttention(x)))
        x = LayerNorm(x + Dropout(FeedForward(x)))

    In training each `LayerNorm(x + Dropout(.))` is one fused kernel. `normalize_first=True` gives
    the pre-norm order x + Dropout(f(LayerNorm(x))) (without a final norm, which belongs to the
    encoder).
    """

    def __init__(
        self,
        num_heads,
        intermediate_dim,
        dropout=0.0,
        activation="gelu",
        layer_norm_epsilon=1e-12,
        normalize_first=False,
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
        self.normalize_first = bool(normalize_first)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, inputs_shape, attention_bias_shape=None):
        self.attention = MultiHeadSelfAttention(
            self.num_heads, dropout=self.dropout, kernel_initializer=self.kernel_initializer,
            seed=None if self.seed is None else self.seed + 1, dtype=self.dtype_policy, name="attention",
        )
        self.attention.build(inputs_shape)
        self.attention_norm = LayerNorm(self.layer_norm_epsilon, dtype=self.dtype_policy, name="attention_norm")
        self.attention_norm.build(inputs_shape)
        self.feed_forward = FeedForward(
            self.intermediate_dim, activation=self.activation, kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy, name="feed_forward",
        )
        self.feed_forward.build(inputs_shape)
        self.feed_forward_norm = LayerNorm(self.layer_norm_epsilon, dtype=self.dtype_policy, name="feed_forward_norm")
        self.feed_forward_norm.build(inputs_shape)

    def _keep_mask(self, x, training):
        if training and self.dropout > 0:
            return dropout_keep_mask(keras.ops.shape(x), self.dropout, self.seed_generator)
        return None

    def _residual(self, sublayer, norm, x, attention_bias, training):
        """One sub-layer with its residual connection, post-norm or pre-norm."""
        kwargs = {"attention_bias": attention_bias} if sublayer is self.attention else {}
        if self.normalize_first:
            h = sublayer(norm(x), training=training, **kwargs)
            return x + apply_dropout(h, self._keep_mask(h, training), self.dropout)
        h = sublayer(x, training=training, **kwargs)  # (batch, seq, hidden)
        return maybe_fused(add_norm, training)(
            h, x, norm.gamma, norm.beta, self._keep_mask(h, training),
            rate=self.dropout, epsilon=self.layer_norm_epsilon,
        )

    def call(self, inputs, attention_bias=None, training=None):
        x = self._residual(self.attention, self.attention_norm, inputs, attention_bias, training)
        return self._residual(self.feed_forward, self.feed_forward_norm, x, None, training)

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
                "normalize_first": self.normalize_first,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "seed": self.seed,
            }
        )
        return config
