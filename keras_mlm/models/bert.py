"""The BERT encoder backbone: token + position + segment embeddings, then N transformer blocks."""

import keras

from keras_mlm.layers.attention import padding_mask_to_attention_bias
from keras_mlm.layers.embeddings import EncoderEmbeddings
from keras_mlm.layers.transformer_block import TransformerBlock
from keras_mlm.models.encoder_base import Encoder, encoder_inputs
from keras_mlm.models.presets import EncoderConfig


def bert_initializer(stddev):
    return keras.initializers.TruncatedNormal(stddev=stddev)


@keras.saving.register_keras_serializable(package="keras_mlm")
class BertEncoder(Encoder):
    """{token_ids, segment_ids, padding_mask} (batch, seq_len) -> sequence_output (batch, seq_len, hidden).

    A functional model whose constructor arguments are the fields of `EncoderConfig`. Unlike
    keras-hub's BertBackbone it builds no pooler: a [CLS] vector is `sequence_output[:, 0]`.
    `token_embedding` is the layer the masked-LM head ties its output projection to.
    """

    CONFIG = EncoderConfig

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
        dtype=None,
        **kwargs,
    ):
        initializer = bert_initializer(initializer_range)
        # Layers.
        self.embeddings = EncoderEmbeddings(
            vocabulary_size, hidden_dim, max_sequence_length=max_sequence_length, num_segments=num_segments,
            dropout=dropout, layer_norm_epsilon=layer_norm_epsilon, embeddings_initializer=initializer,
            dtype=dtype, name="embeddings",
        )
        self.transformer_blocks = [
            TransformerBlock(
                num_heads, intermediate_dim, dropout=dropout, activation=activation,
                layer_norm_epsilon=layer_norm_epsilon, kernel_initializer=initializer,
                dtype=dtype, name=f"transformer_block_{i}",
            )
            for i in range(num_layers)
        ]

        # Functional graph.
        inputs = encoder_inputs()
        x = self.embeddings(inputs["token_ids"], inputs["segment_ids"])  # (batch, seq, hidden)
        attention_bias = padding_mask_to_attention_bias(inputs["padding_mask"], x.dtype)  # (batch, 1, 1, seq)
        for block in self.transformer_blocks:
            x = block(x, attention_bias=attention_bias)  # (batch, seq, hidden)
        super().__init__(inputs=inputs, outputs=x, **kwargs)
        self._record_config(dtype, locals())  # every config field, as an attribute
