"""Building blocks of the encoders: embeddings, attention, feed-forward, transformer block, MLM head."""

from keras_mlm.layers.activations import gelu_approximate, get_activation
from keras_mlm.layers.attention import MultiHeadSelfAttention, padding_mask_to_attention_bias
from keras_mlm.layers.embeddings import PositionEmbedding, TokenEmbedding
from keras_mlm.layers.feed_forward import FeedForward
from keras_mlm.layers.mlm_head import MaskedLMHead, gather_positions
from keras_mlm.layers.transformer_block import TransformerBlock
