"""Embedding layers of the encoder: token ids (tied to the output projection) and learned positions."""

import keras
import tensorflow as tf
from keras import ops

from keras_mlm.layers.fused import dropout_keep_mask, embeddings_norm, maybe_fused
from keras_mlm.layers.initializers import clone_initializer
from keras_mlm.layers.normalization import LayerNorm


@keras.saving.register_keras_serializable(package="keras_mlm")
class TokenEmbedding(keras.layers.Layer):
    """A lookup table `(vocabulary_size, output_dim)` that can also project back onto the vocabulary.

    `call(ids)` looks rows up; `project(x)` returns `x @ embeddings^T`, the tied output projection of
    the masked-LM head. The table stays float32 under mixed precision: rows are gathered first and
    cast after, so the whole table is never cast for a lookup.
    """

    def __init__(self, vocabulary_size, output_dim, embeddings_initializer="uniform", **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size = int(vocabulary_size)
        self.output_dim = int(output_dim)
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)

    def build(self, ids_shape=None):
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.vocabulary_size, self.output_dim),
            initializer=self.embeddings_initializer,
            autocast=False,
        )

    def call(self, ids):
        x = ops.take(self.embeddings, ops.cast(ids, "int32"), axis=0)  # (..., output_dim)
        return ops.cast(x, self.compute_dtype)

    def project(self, x):
        """Logits `x @ embeddings^T`: (..., output_dim) -> (..., vocabulary_size), in x's dtype."""
        leading = x.shape[:-1]
        table = ops.cast(self.embeddings, x.dtype)
        # A 2-D MatMul with transpose_b: no transposed copy of the table, no batched matmul.
        logits = tf.matmul(ops.reshape(x, (-1, self.output_dim)), table, transpose_b=True)
        return ops.reshape(logits, (*[-1 if d is None else d for d in leading], self.vocabulary_size))

    def compute_output_shape(self, ids_shape):
        return (*ids_shape, self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "output_dim": self.output_dim,
                "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_mlm")
class PositionEmbedding(keras.layers.Layer):
    """Learned absolute positions: `call(x)` for x (batch, seq_len, hidden) returns (1, seq_len, hidden)."""

    def __init__(self, sequence_length, output_dim, initializer="uniform", **kwargs):
        super().__init__(**kwargs)
        self.sequence_length = int(sequence_length)
        self.output_dim = int(output_dim)
        self.initializer = keras.initializers.get(initializer)

    def build(self, inputs_shape=None):
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.sequence_length, self.output_dim),
            initializer=self.initializer,
        )

    def call(self, inputs):
        seq_len = ops.shape(inputs)[1]
        if isinstance(inputs.shape[1], int) and inputs.shape[1] > self.sequence_length:
            raise ValueError(f"sequence length {inputs.shape[1]} exceeds max_sequence_length={self.sequence_length}")
        return ops.expand_dims(self.embeddings[:seq_len], 0)  # (1, seq_len, hidden), broadcasts on add

    def compute_output_shape(self, inputs_shape):
        return (1, inputs_shape[1], self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "sequence_length": self.sequence_length,
                "output_dim": self.output_dim,
                "initializer": keras.initializers.serialize(self.initializer),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_mlm")
class EncoderEmbeddings(keras.layers.Layer):
    """(token_ids, segment_ids) (batch, seq) -> dropout(LayerNorm(token + position + segment)).

    Owns the token embedding (`token_embedding`, the table an MLM head ties to), the learned
    position and segment embeddings, and the LayerNorm; in training the sum, norm and dropout are
    one fused kernel. `num_segments=0` drops the segment embedding.
    """

    def __init__(
        self,
        vocabulary_size,
        hidden_dim,
        max_sequence_length=512,
        num_segments=2,
        dropout=0.0,
        layer_norm_epsilon=1e-12,
        embeddings_initializer="uniform",
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocabulary_size = int(vocabulary_size)
        self.hidden_dim = int(hidden_dim)
        self.max_sequence_length = int(max_sequence_length)
        self.num_segments = int(num_segments)
        self.dropout = float(dropout)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, token_ids_shape, segment_ids_shape=None):
        self.token_embedding = TokenEmbedding(
            self.vocabulary_size, self.hidden_dim, clone_initializer(self.embeddings_initializer),
            dtype=self.dtype_policy, name="token_embedding",
        )
        self.token_embedding.build(token_ids_shape)
        self.position_embedding = PositionEmbedding(
            self.max_sequence_length, self.hidden_dim, clone_initializer(self.embeddings_initializer),
            dtype=self.dtype_policy, name="position_embedding",
        )
        self.position_embedding.build()
        if self.num_segments:
            self.segment_embedding = TokenEmbedding(
                self.num_segments, self.hidden_dim, clone_initializer(self.embeddings_initializer),
                dtype=self.dtype_policy, name="segment_embedding",
            )
            self.segment_embedding.build(token_ids_shape)
        self.norm = LayerNorm(self.layer_norm_epsilon, dtype=self.dtype_policy, name="norm")
        self.norm.build((None, self.hidden_dim))

    def call(self, token_ids, segment_ids=None, training=None):
        tokens = self.token_embedding(token_ids)  # (batch, seq, hidden)
        positions = self.position_embedding(tokens)  # (1, seq, hidden)
        if self.num_segments:
            segments = self.segment_embedding(segment_ids)  # (batch, seq, hidden)
        else:
            segments = ops.zeros((), tokens.dtype)
        keep = None
        if training and self.dropout > 0:
            keep = dropout_keep_mask(ops.shape(tokens), self.dropout, self.seed_generator)
        return maybe_fused(embeddings_norm, training)(
            tokens, positions, segments, self.norm.gamma, self.norm.beta, keep,
            rate=self.dropout, epsilon=self.layer_norm_epsilon,
        )

    def compute_output_shape(self, token_ids_shape, segment_ids_shape=None):
        return (*token_ids_shape, self.hidden_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "hidden_dim": self.hidden_dim,
                "max_sequence_length": self.max_sequence_length,
                "num_segments": self.num_segments,
                "dropout": self.dropout,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
                "seed": self.seed,
            }
        )
        return config
