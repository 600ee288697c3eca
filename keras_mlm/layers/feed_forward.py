"""The position-wise feed-forward networks: dense -> activation -> dense, and its gated form (GeGLU)."""

import keras
from keras import ops

from keras_mlm.layers.activations import get_activation
from keras_mlm.layers.fused import activation, gated_activation, maybe_fused
from keras_mlm.layers.initializers import clone_initializer
from keras_mlm.layers.linear import dense


@keras.saving.register_keras_serializable(package="keras_mlm")
class FeedForward(keras.layers.Layer):
    """(batch, seq, hidden) -> (batch, seq, hidden) through an `intermediate_dim` hidden layer.

    Both projections are 2-D matmuls over the flattened tokens (oneDNN fuses MatMul + BiasAdd; a
    3-D input would be a broadcasted batch matmul), and in training the activation is one fused
    kernel forward and backward. Dropout on the output belongs to the caller (the transformer
    block fuses it with the residual add and LayerNorm).
    """

    def __init__(self, intermediate_dim, activation="gelu", kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.intermediate_dim = int(intermediate_dim)
        self.activation = activation
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        get_activation(activation)  # fail early on an unknown name

    def build(self, inputs_shape):
        hidden_dim = inputs_shape[-1]
        self.hidden_dim = hidden_dim
        self.intermediate_kernel = self.add_weight(
            name="intermediate_kernel", shape=(hidden_dim, self.intermediate_dim),
            initializer=clone_initializer(self.kernel_initializer),
        )
        self.intermediate_bias = self.add_weight(
            name="intermediate_bias", shape=(self.intermediate_dim,), initializer="zeros"
        )
        self.output_kernel = self.add_weight(
            name="output_kernel", shape=(self.intermediate_dim, hidden_dim),
            initializer=clone_initializer(self.kernel_initializer),
        )
        self.output_bias = self.add_weight(name="output_bias", shape=(hidden_dim,), initializer="zeros")

    def call(self, inputs, training=None):
        x = ops.reshape(inputs, (-1, self.hidden_dim))  # (tokens, hidden)
        x = dense(x, self.intermediate_kernel, self.intermediate_bias)  # (tokens, intermediate)
        x = maybe_fused(activation, training)(x, name=self.activation)
        x = dense(x, self.output_kernel, self.output_bias)  # (tokens, hidden)
        return ops.reshape(x, ops.shape(inputs))

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "intermediate_dim": self.intermediate_dim,
                "activation": self.activation,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_mlm")
class GatedFeedForward(keras.layers.Layer):
    """(batch, seq, hidden) -> (batch, seq, hidden): W_out(act(x W_a) * (x W_g)), a gated linear unit.

    With activation "gelu" this is GeGLU (Shazeer 2020), ModernBERT's feed-forward. W_a and W_g are
    one (hidden, 2 * intermediate_dim) kernel and one matmul; the split, activation and gating are
    one fused kernel in training. `use_bias=False` (ModernBERT) drops both biases.
    """

    def __init__(self, intermediate_dim, activation="gelu", use_bias=False, kernel_initializer="glorot_uniform",
                 **kwargs):
        super().__init__(**kwargs)
        self.intermediate_dim = int(intermediate_dim)
        self.activation = activation
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        get_activation(activation)  # fail early on an unknown name

    def build(self, inputs_shape):
        hidden_dim = inputs_shape[-1]
        self.hidden_dim = hidden_dim
        self.input_kernel = self.add_weight(
            name="input_kernel", shape=(hidden_dim, 2 * self.intermediate_dim),
            initializer=clone_initializer(self.kernel_initializer),
        )
        self.output_kernel = self.add_weight(
            name="output_kernel", shape=(self.intermediate_dim, hidden_dim),
            initializer=clone_initializer(self.kernel_initializer),
        )
        self.input_bias = self.output_bias = None
        if self.use_bias:
            self.input_bias = self.add_weight(
                name="input_bias", shape=(2 * self.intermediate_dim,), initializer="zeros"
            )
            self.output_bias = self.add_weight(name="output_bias", shape=(hidden_dim,), initializer="zeros")

    def call(self, inputs, training=None):
        x = ops.reshape(inputs, (-1, self.hidden_dim))  # (tokens, hidden)
        x = dense(x, self.input_kernel, self.input_bias)  # (tokens, 2 * intermediate): [activated | gate]
        x = maybe_fused(gated_activation, training)(x, name=self.activation)  # (tokens, intermediate)
        x = dense(x, self.output_kernel, self.output_bias)  # (tokens, hidden)
        return ops.reshape(x, ops.shape(inputs))

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "intermediate_dim": self.intermediate_dim,
                "activation": self.activation,
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
