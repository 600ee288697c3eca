"""The masked-LM head: gather the masked positions, transform them, project onto the tied vocabulary."""

import keras
import tensorflow as tf
from keras import ops

from keras_mlm.layers.activations import get_activation
from keras_mlm.layers.fused import activation, maybe_fused
from keras_mlm.layers.initializers import clone_initializer
from keras_mlm.layers.linear import dense
from keras_mlm.layers.normalization import LayerNorm


def gather_positions(sequence, positions):
    """sequence (batch, seq, hidden), positions (batch, n) int in [0, seq) -> (batch, n, hidden).

    One flat gather over (batch * seq) rows; no transpose or broadcast of the sequence output (the
    way keras.ops.take_along_axis does it), and its gradient is a single scatter of n rows.
    """
    batch, seq_len, hidden = ops.shape(sequence)[0], ops.shape(sequence)[1], sequence.shape[-1]
    positions = ops.cast(positions, "int32")
    offsets = ops.arange(batch, dtype="int32")[:, None] * seq_len  # (batch, 1)
    flat = ops.reshape(sequence, (-1, hidden))  # (batch * seq, hidden)
    rows = tf.gather(flat, ops.reshape(positions + offsets, (-1,)))  # (batch * n, hidden)
    return ops.reshape(rows, (batch, ops.shape(positions)[1], hidden))


@keras.saving.register_keras_serializable(package="keras_mlm")
class MaskedLMHead(keras.layers.Layer):
    """(sequence_output (batch, seq, hidden), mask_positions (batch, n)) -> logits (batch, n, vocab).

    Only the n masked rows are transformed (dense + activation + LayerNorm) and projected onto the
    vocabulary with the token embedding's transposed table plus a bias; the logits are float32.
    `token_embedding` is the encoder's `TokenEmbedding`: the head owns no copy of it.
    """

    def __init__(
        self,
        token_embedding,
        activation="gelu",
        layer_norm_epsilon=1e-12,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.token_embedding = token_embedding
        self.activation = activation
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        get_activation(activation)  # fail early on an unknown name

    def build(self, inputs_shape, mask_positions_shape=None):
        hidden_dim = self.token_embedding.output_dim
        self.transform_kernel = self.add_weight(
            name="transform_kernel", shape=(inputs_shape[-1], hidden_dim),
            initializer=clone_initializer(self.kernel_initializer),
        )
        self.transform_bias = self.add_weight(name="transform_bias", shape=(hidden_dim,), initializer="zeros")
        self.transform_norm = LayerNorm(self.layer_norm_epsilon, dtype=self.dtype_policy, name="transform_norm")
        self.transform_norm.build((None, hidden_dim))
        self.output_bias = self.add_weight(
            name="output_bias", shape=(self.token_embedding.vocabulary_size,), initializer="zeros",
            dtype="float32", autocast=False,
        )

    def call(self, inputs, mask_positions, training=None):
        x = gather_positions(inputs, mask_positions)  # (batch, n, hidden)
        batch, n_masks = ops.shape(x)[0], ops.shape(x)[1]
        x = ops.reshape(x, (-1, x.shape[-1]))  # (batch * n, hidden): transform only the masked rows
        x = dense(x, self.transform_kernel, self.transform_bias)
        x = self.transform_norm(maybe_fused(activation, training)(x, name=self.activation))
        logits = self.token_embedding.project(x)  # (batch * n, vocab), compute dtype
        logits = tf.nn.bias_add(ops.cast(logits, "float32"), self.output_bias)
        return ops.reshape(logits, (batch, n_masks, self.token_embedding.vocabulary_size))

    def compute_output_shape(self, inputs_shape, mask_positions_shape):
        return (*mask_positions_shape, self.token_embedding.vocabulary_size)

    def compute_output_spec(self, inputs, mask_positions):
        shape = self.compute_output_shape(inputs.shape, mask_positions.shape)
        return keras.KerasTensor(shape, dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "token_embedding": keras.layers.serialize(self.token_embedding),
                "activation": self.activation,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["token_embedding"] = keras.layers.deserialize(config["token_embedding"])
        return cls(**config)
