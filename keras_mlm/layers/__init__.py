"""Building blocks of the encoders: embeddings, attention, feed-forward, transformer block, MLM head."""

from keras_mlm.layers.activations import gelu_approximate, get_activation
from keras_mlm.layers.attention import (
    MultiHeadSelfAttention,
    padding_mask_to_attention_bias,
)
from keras_mlm.layers.embeddings import (
    EncoderEmbeddings,
    PositionEmbedding,
    TokenEmbedding,
)
from keras_mlm.layers.feed_forward import FeedForward
from keras_mlm.layers.mlm_head import MaskedLMHead, gather_positions
from keras_mlm.layers.normalization import LayerNorm
from keras_mlm.layers.transformer_block import TransformerBlock

__all__ = [
    "EncoderEmbeddings",
    "FeedForward",
    "LayerNorm",
    "MaskedLMHead",
    "MultiHeadSelfAttention",
    "PositionEmbedding",
    "TokenEmbedding",
    "TransformerBlock",
    "gather_positions",
    "gelu_approximate",
    "get_activation",
    "padding_mask_to_attention_bias",
]
