"""The BERT encoder backbone: token + position + segment embeddings, then N transformer blocks."""

import keras

from keras_mlm.layers.attention import padding_mask_to_attention_bias
from keras_mlm.layers.embeddings import EncoderEmbeddings
from keras_mlm.layers.transformer_block import TransformerBlock


def bert_initializer(stddev):
    return keras.initializers.TruncatedNormal(stddev=stddev)


@keras.saving.register_keras_serializable(package="keras_mlm")
class BertEncoder(keras.Model):
    """{token_ids, segment_ids, padding_mask} (batch, seq_len) -> sequence_output (batch, seq_len, hidden).

    A functional model whose constructor arguments are the fields of `EncoderConfig`. Unlike
    keras-hub's BertBackbone it builds no pooler: a [CLS] vector is `sequence_output[:, 0]`.
    `token_embedding` is the layer the masked-LM head ties its output projection to.
    """

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
        inputs = {
            "token_ids": keras.Input(shape=(None,), dtype="int32", name="token_ids"),
            "segment_ids": keras.Input(shape=(None,), dtype="int32", name="segment_ids"),
            "padding_mask": keras.Input(shape=(None,), dtype="int32", name="padding_mask"),
        }
        x = self.embeddings(inputs["token_ids"], inputs["segment_ids"])  # (batch, seq, hidden)
        attention_bias = padding_mask_to_attention_bias(inputs["padding_mask"], x.dtype)  # (batch, 1, 1, seq)
        for block in self.transformer_blocks:
            x = block(x, attention_bias=attention_bias)  # (batch, seq, hidden)
        super().__init__(inputs=inputs, outputs=x, **kwargs)
        # A functional model does not take a dtype; record the policy its layers were built with.
        self.dtype_policy = keras.dtype_policies.get(dtype if dtype is not None else keras.config.dtype_policy())

        self.vocabulary_size = vocabulary_size
        self.num_layers = num_layers
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.max_sequence_length = max_sequence_length
        self.num_segments = num_segments
        self.dropout = dropout
        self.layer_norm_epsilon = layer_norm_epsilon
        self.activation = activation
        self.initializer_range = initializer_range

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            "vocabulary_size": self.vocabulary_size,
            "num_layers": self.num_layers,
            "hidden_dim": self.hidden_dim,
            "num_heads": self.num_heads,
            "intermediate_dim": self.intermediate_dim,
            "max_sequence_length": self.max_sequence_length,
            "num_segments": self.num_segments,
            "dropout": self.dropout,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "activation": self.activation,
            "initializer_range": self.initializer_range,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    @classmethod
    def from_encoder_config(cls, config, dtype=None, **kwargs):
        """Builds the encoder an `EncoderConfig` describes."""
        return cls(**config.to_dict(), dtype=dtype, **kwargs)

    @property
    def token_embedding(self):
        """The `TokenEmbedding` whose table the masked-LM head's output projection is tied to."""
        return self.embeddings.token_embedding
