"""ELECTRA's discriminator head: for every position, a logit of "this token was replaced"."""

import keras
import tensorflow as tf
from keras import ops

from keras_mlm.layers.activations import get_activation
from keras_mlm.layers.fused import activation, maybe_fused
from keras_mlm.layers.initializers import clone_initializer
from keras_mlm.layers.linear import dense


@keras.saving.register_keras_serializable(package="keras_mlm")
class ReplacedTokenHead(keras.layers.Layer):
    """sequence_output (batch, seq, hidden) -> logits float32 (batch, seq): dense + activation + dense(1).

    The head of ELECTRA's discriminator (Clark et al. 2020, `discriminator_predictions`); the logits
    are float32 so the sigmoid cross-entropy is safe under mixed precision.
    """

    def __init__(self, activation="gelu", kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.activation = activation
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        get_activation(activation)  # fail early on an unknown name

    def build(self, inputs_shape):
        hidden_dim = inputs_shape[-1]
        self.hidden_dim = hidden_dim
        self.transform_kernel = self.add_weight(
            name="transform_kernel", shape=(hidden_dim, hidden_dim),
            initializer=clone_initializer(self.kernel_initializer),
        )
        self.transform_bias = self.add_weight(name="transform_bias", shape=(hidden_dim,), initializer="zeros")
        self.output_kernel = self.add_weight(
            name="output_kernel", shape=(hidden_dim, 1), initializer=clone_initializer(self.kernel_initializer),
        )
        self.output_bias = self.add_weight(name="output_bias", shape=(1,), initializer="zeros")

    def call(self, inputs, training=None):
        batch, seq_len = ops.shape(inputs)[0], ops.shape(inputs)[1]
        x = ops.reshape(inputs, (-1, self.hidden_dim))  # (tokens, hidden)
        x = dense(x, self.transform_kernel, self.transform_bias)
        x = maybe_fused(activation, training)(x, name=self.activation)
        logits = dense(x, self.output_kernel, self.output_bias)  # (tokens, 1)
        return ops.reshape(tf.cast(logits, "float32"), (batch, seq_len))

    def compute_output_shape(self, inputs_shape):
        return tuple(inputs_shape[:-1])

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(self.compute_output_shape(inputs.shape), dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "activation": self.activation,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
