"""Rotary position embeddings (RoFormer, Su et al. 2021) and the self-attention that uses them.

Query and key vectors are rotated, pair by pair, by an angle proportional to their position, so the
score q_i . k_j depends on the positions only through i - j. Pairs are (x_k, x_{k + dim/2}) with angle
position * max_wavelength ** (-2k / dim): the "rotate half" layout of GPT-NeoX, Hugging Face's
ModernBERT and keras-hub's `RotaryEmbedding` (whose outputs these equal; RoFormer's own code pairs
neighbours (x_2k, x_2k+1), the same math on permuted features).

Written here rather than calling keras_hub.layers.RotaryEmbedding, for speed: on (batch, heads, seq,
head_dim) tensors keras-hub moves the axes to (batch, seq, ..., dim) and back and runs each elementwise
op as its own pass. Forward + backward of one (32, 2, 128, 64) rotation, one core of the shared 2-core
machine, min of 40 runs: keras-hub 7.6 ms float32 / 8.3 ms bfloat16 (3.1 in a quieter run); plain ops
here 3.2 / 3.3 ms; the XLA kernel below 1.5 / 1.0 ms. Its gradient is the inverse rotation (a rotation
is orthogonal): the same kernel with -sin, so the backward computes no gradient for the cos/sin tables.
"""

import keras
import tensorflow as tf
from keras import ops

from keras_mlm.layers.attention import MultiHeadSelfAttention


def rotary_angles(sequence_length, rotary_dim, max_wavelength):
    """(seq, rotary_dim) float32 angles: position p, feature k -> p * max_wavelength ** (-2 (k mod dim/2) / dim)."""
    half = rotary_dim // 2
    inverse_frequency = ops.power(
        ops.cast(max_wavelength, "float32"), -ops.arange(half, dtype="float32") * (2.0 / rotary_dim)
    )  # (dim / 2,)
    positions = ops.arange(sequence_length, dtype="float32")
    angles = positions[:, None] * inverse_frequency[None, :]  # (seq, dim / 2)
    return ops.concatenate([angles, angles], axis=-1)  # (seq, dim): pair k and k + dim/2 share an angle


def rotate(x, cos, sin):
    """x (..., seq, dim) with each pair (x_k, x_{k + dim/2}) rotated by its angle, in float32:

        (x_k, x_{k+dim/2}) -> (x_k cos - x_{k+dim/2} sin, x_{k+dim/2} cos + x_k sin)
    """
    xf = tf.cast(x, "float32")
    first, second = tf.split(xf, 2, axis=-1)
    rotated_half = tf.concat([-second, first], axis=-1)  # (..., seq, dim)
    return tf.cast(xf * cos + rotated_half * sin, x.dtype)


_rotate_compiled = tf.function(rotate, jit_compile=True, autograph=False, reduce_retracing=True)


@tf.custom_gradient
def _rotate_fused(x, cos, sin):
    """`rotate` as one XLA loop; its gradient is the inverse rotation, also one loop."""

    def gradient(upstream):
        return _rotate_compiled(upstream, cos, -sin), None, None

    return _rotate_compiled(x, cos, sin), gradient


def apply_rotary(x, max_wavelength, training=None):
    """x (batch, heads, seq, head_dim) rotated by position; the XLA kernel in training, plain ops
    otherwise (serving graphs stay free of XLA, as with the other fused kernels)."""
    sequence_length, dim = ops.shape(x)[-2], x.shape[-1]
    angles = rotary_angles(sequence_length, dim, max_wavelength)  # (seq, dim)
    cos, sin = ops.cos(angles), ops.sin(angles)
    return _rotate_fused(x, cos, sin) if training else rotate(x, cos, sin)


@keras.saving.register_keras_serializable(package="keras_mlm")
class RotarySelfAttention(MultiHeadSelfAttention):
    """`MultiHeadSelfAttention` with rotary position embeddings on query and key (no learned positions).

    `max_wavelength` is RoFormer's 10000; ModernBERT uses 160000 in its global layers and 10000 in
    its local (sliding-window) ones.
    """

    def __init__(self, num_heads, max_wavelength=10000.0, **kwargs):
        super().__init__(num_heads, **kwargs)
        self.max_wavelength = float(max_wavelength)

    def build(self, inputs_shape, attention_bias_shape=None):
        super().build(inputs_shape, attention_bias_shape)
        if self.head_dim % 2:
            raise ValueError(f"rotary embeddings need an even head size, got {self.head_dim}")

    def encode_positions(self, query, key, training=None):
        return apply_rotary(query, self.max_wavelength, training), apply_rotary(key, self.max_wavelength, training)

    def get_config(self):
        config = super().get_config()
        config.update({"max_wavelength": self.max_wavelength})
        return config
