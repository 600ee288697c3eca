"""ALBERT (Lan et al. 2019): BERT with a factorised embedding and cross-layer parameter sharing.

Two changes to BERT, both to cut parameters, not compute:

- the embeddings are `embedding_dim` (E) wide, not `hidden_dim` (H), and one dense layer maps them
  to H: vocabulary * E + E * H parameters instead of vocabulary * H (E = 128 in every published size);
- the `num_layers` transformer layers share weights: `num_groups` sets of block weights (1 in every
  published size: one block applied `num_layers` times), so depth costs compute, not parameters.

The masked-LM head needs nothing new: `MaskedLMHead` transforms H -> E (the tied table's width,
`token_embedding.output_dim`) before projecting onto the vocabulary, which is ALBERT's head.
keras-hub's AlbertBackbone computes the same (plus a pooler, which this encoder does not build).
"""

import dataclasses

import keras

from keras_mlm.errors import UserInputError
from keras_mlm.layers.attention import padding_mask_to_attention_bias
from keras_mlm.layers.embeddings import EncoderEmbeddings
from keras_mlm.layers.linear import Projection
from keras_mlm.layers.transformer_block import TransformerBlock
from keras_mlm.models.bert import bert_initializer
from keras_mlm.models.encoder_base import Encoder, encoder_inputs
from keras_mlm.models.presets import PRESETS, EncoderConfig, require_positive_integers

ALBERT_PRESETS = {
    # The BERT sizes with a factorised embedding: E = 128 as in every published ALBERT, half the
    # width where 128 would not be smaller than the hidden size.
    **{name: {**size, "embedding_dim": min(128, size["hidden_dim"] // 2)} for name, size in PRESETS.items()},
    # ALBERT's own larger sizes (Lan et al. 2019, table 1).
    "xlarge": {"num_layers": 24, "hidden_dim": 2048, "num_heads": 32, "intermediate_dim": 8192, "embedding_dim": 128},
    "xxlarge": {"num_layers": 12, "hidden_dim": 4096, "num_heads": 64, "intermediate_dim": 16384, "embedding_dim": 128},
}


@dataclasses.dataclass(frozen=True)
class AlbertConfig(EncoderConfig):
    """`EncoderConfig` plus ALBERT's two fields; the keys are `AlbertEncoder`'s constructor arguments."""

    embedding_dim: int = 128
    """Width E of the token, position and segment embeddings (and of the tied MLM output projection)."""
    num_groups: int = 1
    """Sets of transformer-block weights; layer i uses set i * num_groups // num_layers (1: all shared)."""

    def __post_init__(self):
        super().__post_init__()
        require_positive_integers(self, "embedding_dim", "num_groups")
        if self.num_groups > self.num_layers:
            raise UserInputError(
                f"encoder config: num_groups={self.num_groups} is more than num_layers={self.num_layers}"
            )

    @classmethod
    def presets(cls):
        return ALBERT_PRESETS


@keras.saving.register_keras_serializable(package="keras_mlm")
class AlbertEncoder(Encoder):
    """{token_ids, segment_ids, padding_mask} (batch, seq_len) -> sequence_output (batch, seq_len, hidden).

    Embeddings of width `embedding_dim`, projected to `hidden_dim`, then `num_layers` BERT blocks
    drawn from `num_groups` shared sets of weights. The parameter count does not depend on
    `num_layers`. Constructor arguments are the fields of `AlbertConfig`; `token_embedding` is the
    (vocabulary, embedding_dim) table the masked-LM head ties to.
    """

    CONFIG = AlbertConfig

    def __init__(
        self,
        vocabulary_size,
        num_layers,
        hidden_dim,
        num_heads,
        intermediate_dim,
        max_sequence_length=512,
        num_segments=2,
        dropout=0.1,
        layer_norm_epsilon=1e-12,
        activation="gelu",
        initializer_range=0.02,
        embedding_dim=128,
        num_groups=1,
        dtype=None,
        **kwargs,
    ):
        if not 1 <= num_groups <= num_layers:
            raise ValueError(f"num_groups must be in [1, num_layers={num_layers}], got {num_groups}")
        initializer = bert_initializer(initializer_range)
        # Layers.
        self.embeddings = EncoderEmbeddings(
            vocabulary_size, embedding_dim, max_sequence_length=max_sequence_length, num_segments=num_segments,
            dropout=dropout, layer_norm_epsilon=layer_norm_epsilon, embeddings_initializer=initializer,
            dtype=dtype, name="embeddings",
        )
        self.embedding_projection = Projection(
            hidden_dim, kernel_initializer=initializer, dtype=dtype, name="embedding_projection"
        )
        self.transformer_blocks = [  # one per group, not per layer
            TransformerBlock(
                num_heads, intermediate_dim, dropout=dropout, activation=activation,
                layer_norm_epsilon=layer_norm_epsilon, kernel_initializer=initializer,
                dtype=dtype, name=f"transformer_group_{g}",
            )
            for g in range(num_groups)
        ]

        # Functional graph.
        inputs = encoder_inputs()
        x = self.embeddings(inputs["token_ids"], inputs["segment_ids"])  # (batch, seq, embedding_dim)
        x = self.embedding_projection(x)  # (batch, seq, hidden)
        attention_bias = padding_mask_to_attention_bias(inputs["padding_mask"], x.dtype)  # (batch, 1, 1, seq)
        for i in range(num_layers):
            x = self.transformer_blocks[i * num_groups // num_layers](x, attention_bias=attention_bias)
        super().__init__(inputs=inputs, outputs=x, **kwargs)
        self._record_config(dtype, locals())  # every config field, as an attribute
