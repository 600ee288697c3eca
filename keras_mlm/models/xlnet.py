"""XLNet (Yang et al. 2019): pre-training by permutation language modelling.

The model predicts the targets of a row autoregressively in a random factorisation order, so every
target is conditioned on the real tokens of its context (never on [MASK] tokens standing in for it) and on the
targets before it. Two-stream self-attention makes that possible in one pass: the content stream is
the encoder (each position sees itself and what comes before it in the order), the query stream at
each target knows its position but not its token (see `layers.two_stream_attention`). Positions are
relative (Transformer-XL's sinusoid and XLNet's relative segment encoding), nowhere absolute.

Data: the masked-LM batches unchanged. `MLMMasker` run with `XLNET_MASKING` (selection rate 1/6, every
token kept) selects the targets, the last 1/K of the order with K = 6 (partial prediction, as in the
paper); `XLNetPretrainer` builds the order in the graph (`masking.permutation`) from a hash of (seed,
optimizer step, row), so a resumed run sees the orders the uninterrupted one saw. The targets' own
tokens are never visible to a prediction, so any masking config gives the same semantics ([MASK] or
random replacements at target positions are invisible) and only the target rate changes.

Evaluation and fill-mask: every target at the same rank, predicted from all the other tokens.
Fine-tuning and export: `.encoder`, the content stream with every token visible.

What comes from keras-hub (keras_hub/src/models/xlnet, 0.32) and what is written here, and why:

- reused, as math: the attention score (content, relative-position and segment terms with their
  per-head biases, projections without bias), the sinusoid and its row order, the relative shift of
  the content stream (the same transposes), post-norm blocks with one set of weights for both streams.
  Tests check our attention equals keras-hub's `TwoStreamRelativeAttention` given the same weights
  (1e-5) and our sinusoid equals `ContentAndQueryEmbedding`'s.
- not reused, as layers, measured: keras-hub's XLNet is a fine-tuning backbone with no pre-training
  path (`XLNetBackbone` never builds a query stream, a permutation or a target mapping). Its mask layer
  reshapes (batch, seq) to (seq, batch) where it should transpose: a batch of two rows with different
  padding gives outputs up to 6.5e-3 away from each row run alone (ours: equal, tested). Its
  attention computes the query stream at all L positions even with a target mapping: one layer,
  forward + backward, batch 32 x 128 tokens, hidden 128, 2 heads, 22 targets, 2 busy cores: 160 ms
  for keras-hub's, 103 ms for ours (query stream at the targets only, fused projections, the shift
  as above). Its sinusoid is computed in the compute dtype (distances past 256 rounded under
  bfloat16). Ours reuse keras-mlm's fused kernels
  (add + LayerNorm, GELU, dropout masks that differ per replica) and the tied, gather-first MLM head.
"""

import dataclasses
from typing import ClassVar

import keras
import tensorflow as tf
from keras import ops

from keras_mlm.errors import UserInputError
from keras_mlm.layers.embeddings import TokenEmbedding
from keras_mlm.layers.mlm_head import MaskedLMHead
from keras_mlm.layers.two_stream_attention import TwoStreamTransformer
from keras_mlm.masking.config import MaskingConfig
from keras_mlm.masking.permutation import factorisation_ranks, order_key, order_row_keys, permutation_masks
from keras_mlm.models.bert import bert_initializer
from keras_mlm.models.encoder_base import Encoder, encoder_inputs
from keras_mlm.models.presets import PRESETS, EncoderConfig

XLNET_PRESETS = {
    **PRESETS,
    # XLNet's own sizes (Yang et al. 2019): BERT-base and BERT-large shapes.
    "xlnet-base": {"num_layers": 12, "hidden_dim": 768, "num_heads": 12, "intermediate_dim": 3072},
    "xlnet-large": {"num_layers": 24, "hidden_dim": 1024, "num_heads": 16, "intermediate_dim": 4096},
}

PREDICTION_FRACTION = 1 / 6
"""1/K of the tokens are targets (partial prediction, K = 6 as in the paper)."""

XLNET_MASKING = MaskingConfig(selection_rate=PREDICTION_FRACTION, mask_token_rate=0.0, random_token_rate=0.0)
"""The masker's settings for XLNet: 1/K of the tokens selected as targets, none of them replaced."""


@dataclasses.dataclass(frozen=True)
class XLNetConfig(EncoderConfig):
    """`EncoderConfig`'s fields, with XLNet's meaning where it differs; the keys are `XLNetEncoder`'s arguments.

    `max_sequence_length` has no table behind it (positions are relative sinusoids): it is the longest
    row accepted. `num_segments` is the range of segment ids accepted (by the export signatures); the
    model itself only asks whether two tokens are in the same segment, so it has no segment table.
    """

    MASKING_DEFAULTS: ClassVar[dict] = {
        "selection_rate": PREDICTION_FRACTION,
        "mask_token_rate": 0.0,
        "random_token_rate": 0.0,
    }
    """MaskingConfig fields that default differently for this architecture: `XLNET_MASKING`'s (1/K of the
    tokens are targets, none replaced; a replacement would be invisible to the model anyway)."""

    def __post_init__(self):
        super().__post_init__()
        if self.hidden_dim % 2:
            raise UserInputError(f"encoder config: XLNet's hidden_dim must be even (sinusoid pairs), got {self.hidden_dim}")

    @classmethod
    def presets(cls):
        return XLNET_PRESETS


@keras.saving.register_keras_serializable(package="keras_mlm")
class XLNetEncoder(Encoder):
    """{token_ids, segment_ids, padding_mask} (batch, seq_len) -> sequence_output (batch, seq_len, hidden).

    XLNet's content stream with every real token visible to every other: the encoder fine-tuning,
    `encode` and the task models use. `word_embedding` (`token_embedding`) is the table the
    pre-trainer's head ties to; `transformer` the `TwoStreamTransformer` the pre-trainer also runs
    with a query stream. Constructor arguments are the fields of `XLNetConfig`.
    """

    CONFIG = XLNetConfig

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
        self.word_embedding = TokenEmbedding(
            vocabulary_size, hidden_dim, embeddings_initializer=initializer, dtype=dtype, name="word_embedding"
        )
        self.transformer = TwoStreamTransformer(
            num_layers, num_heads, intermediate_dim, dropout=dropout, activation=activation,
            layer_norm_epsilon=layer_norm_epsilon, kernel_initializer=initializer,
            max_sequence_length=max_sequence_length, dtype=dtype, name="transformer",
        )

        # Functional graph.
        inputs = encoder_inputs()
        x = self.word_embedding(inputs["token_ids"])  # (batch, seq, hidden)
        x = self.transformer(x, inputs["segment_ids"], inputs["padding_mask"])  # (batch, seq, hidden)
        super().__init__(inputs=inputs, outputs=x, **kwargs)
        self._record_config(dtype, locals())  # every config field, as an attribute

    @property
    def token_embedding(self):
        """The `TokenEmbedding` whose table the masked-LM head's output projection is tied to."""
        return self.word_embedding

    @property
    def transformer_blocks(self):
        return self.transformer.blocks

    def two_streams(self, inputs, content_visible, query_positions, query, query_visible, training=None):
        """Both streams: (content (batch, seq, hidden), query (batch, n, hidden)) under the given
        visibility (see `TwoStreamTransformer`); `query` is the initial query stream (batch, n, hidden)."""
        content = self.word_embedding(inputs["token_ids"])  # (batch, seq, hidden)
        return self.transformer(
            content, inputs["segment_ids"], inputs["padding_mask"], content_visible=content_visible,
            query=query, query_positions=query_positions, query_visible=query_visible, training=training,
        )


def _slot_indices(positions):
    """(batch, n) -> (batch, n) int32 0 .. n-1: the query stream holds one row per slot already."""
    return tf.broadcast_to(tf.range(tf.shape(positions)[1], dtype=tf.int32)[None], tf.shape(positions))


@keras.saving.register_keras_serializable(package="keras_mlm")
class XLNetPretrainer(keras.Model):
    """Permutation language modelling over `encoder` (an `XLNetEncoder`).

    `call(x, mask_weights=None, step=None)` -> logits float32 (batch, n, vocab) of the targets at
    x["mask_positions"], the masked-LM model's inputs and outputs. Slots with weight 0 are not targets;
    without weights the slots at position 0 are not ([CLS] sits there in every row our data and
    fill-mask build, and `MLMMasker` pads unused slots with 0). `step` None: every target predicted from
    its context alone (evaluation, fill-mask, export); an int: a random factorisation order, a hash of
    (`seed`, step, row). `fit` passes the optimizer's step; `evaluate` passes none.

    Compile it as the masked LM (`MaskedLMLoss`, weighted `MaskedAccuracy` and `Perplexity`): same
    metric names, same numbers in `keras-mlm evaluate` and TensorBoard. The head is the masked LM's
    (`MaskedLMHead`, tied to the word embedding) on the query stream; `query_embedding` is XLNet's
    learned initial query vector (its mask_emb).
    """

    def __init__(self, encoder, seed=0, **kwargs):
        dtype = kwargs.pop("dtype", None) or encoder.dtype_policy
        super().__init__(dtype=dtype, **kwargs)
        self.encoder = encoder
        self.seed = int(seed)
        self._order_key = order_key(self.seed)
        initializer = bert_initializer(encoder.initializer_range)
        self.mlm_head = MaskedLMHead(
            encoder.token_embedding, activation=encoder.activation, layer_norm_epsilon=encoder.layer_norm_epsilon,
            kernel_initializer=initializer, dtype=encoder.dtype_policy, name="mlm_head",
        )
        self.mlm_head.build((None, None, encoder.hidden_dim))
        self.query_embedding = self.add_weight(name="query_embedding", shape=(encoder.hidden_dim,), initializer=initializer)
        self.built = True  # every layer above is built

    def targets(self, inputs, mask_weights=None, step=None):
        """(position_ranks (batch, seq), slot_ranks (batch, n)) of the batch's order (see `masking.permutation`)."""
        positions = ops.cast(inputs["mask_positions"], "int32")
        used = positions != 0 if mask_weights is None else ops.cast(mask_weights, "float32") > 0  # (batch, n)
        row_keys = None
        if step is not None:
            row_keys = order_row_keys(self._order_key, step, tf.shape(positions)[0])  # (batch,)
        return factorisation_ranks(positions, used, tf.shape(inputs["token_ids"])[1], row_keys)

    def call(self, inputs, mask_weights=None, step=None, training=None):
        positions = ops.cast(inputs["mask_positions"], "int32")  # (batch, n)
        # 1. The factorisation order and what each stream may see.
        position_ranks, slot_ranks = self.targets(inputs, mask_weights, step)
        content_visible, query_visible = permutation_masks(position_ranks, slot_ranks)  # (b, seq, seq), (b, n, seq)
        # 2. Both streams; the query stream starts from one learned vector at every target.
        query = ops.broadcast_to(ops.cast(self.query_embedding, self.compute_dtype),
                                 (ops.shape(positions)[0], ops.shape(positions)[1], self.encoder.hidden_dim))
        _, query = self.encoder.two_streams(inputs, content_visible, positions, query, query_visible, training=training)
        # 3. The tied head on the query stream, one row per slot.
        return self.mlm_head(query, mask_positions=_slot_indices(positions), training=training)  # (b, n, vocab)

    def train_step(self, data):
        """Keras' train step, with the targets' weights and the optimizer's step passed to `call`."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            y_pred = self(x, mask_weights=sample_weight, step=self.optimizer.iterations, training=True)
            loss = self._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
            self._track_loss(loss, x)
            scaled = self.optimizer.scale_loss(loss)  # loss scaling under mixed_float16
        weights = self.trainable_weights
        self.optimizer.apply_gradients(zip(tape.gradient(scaled, weights), weights))
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        y_pred = self(x, mask_weights=sample_weight, training=False)
        loss = self._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=False)
        self._track_loss(loss, x)
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def _track_loss(self, loss, x):
        # As Keras' own steps: the per-replica loss x replicas, averaged over replicas (see MaskedLMLoss).
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        self._loss_tracker.update_state(loss * replicas, sample_weight=tf.shape(x["token_ids"])[0])

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            "encoder": keras.layers.serialize(self.encoder),
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.layers.deserialize(config["encoder"])
        return cls(**config)


def build_xlnet_pretrainer(config, seed=0, dtype=None):
    """A fresh `XLNetPretrainer` for `config` (an `XLNetConfig`); dtype e.g. "mixed_bfloat16"."""
    encoder = XLNetEncoder.from_encoder_config(config, dtype=dtype, name="encoder")
    return XLNetPretrainer(encoder, seed=seed, dtype=dtype, name="xlnet")
