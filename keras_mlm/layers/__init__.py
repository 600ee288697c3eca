"""Building blocks of the encoders: embeddings, attention (rotary, local), feed-forward (plain, gated),
transformer blocks (BERT, ModernBERT), MLM and replaced-token heads."""

from keras_mlm.layers.activations import gelu_approximate, get_activation
from keras_mlm.layers.attention import (
    MultiHeadSelfAttention,
    local_attention_bias,
    padding_mask_to_attention_bias,
)
from keras_mlm.layers.embeddings import (
    EncoderEmbeddings,
    PositionEmbedding,
    TokenEmbedding,
)
from keras_mlm.layers.feed_forward import FeedForward, GatedFeedForward
from keras_mlm.layers.linear import Projection
from keras_mlm.layers.mlm_head import MaskedLMHead, gather_positions
from keras_mlm.layers.modern import LocalAttentionBias, ModernEmbeddings, ModernTransformerBlock
from keras_mlm.layers.normalization import LayerNorm
from keras_mlm.layers.replaced_token_head import ReplacedTokenHead
from keras_mlm.layers.rotary import RotarySelfAttention, apply_rotary
from keras_mlm.layers.transformer_block import TransformerBlock

__all__ = [
    "EncoderEmbeddings",
    "FeedForward",
    "GatedFeedForward",
    "LayerNorm",
    "LocalAttentionBias",
    "MaskedLMHead",
    "ModernEmbeddings",
    "ModernTransformerBlock",
    "MultiHeadSelfAttention",
    "PositionEmbedding",
    "Projection",
    "ReplacedTokenHead",
    "RotarySelfAttention",
    "TokenEmbedding",
    "TransformerBlock",
    "apply_rotary",
    "gather_positions",
    "gelu_approximate",
    "get_activation",
    "local_attention_bias",
    "padding_mask_to_attention_bias",
]
