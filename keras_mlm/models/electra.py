"""ELECTRA (Clark et al. 2020): pre-training by replaced-token detection.

A small generator (a masked LM) fills the masked slots with tokens sampled from its predictions; the
discriminator (the encoder kept for fine-tuning) reads the whole corrupted sequence and predicts, at
every real token, whether it was replaced. Every token gives the discriminator a training signal,
not only the ~15% masked ones. As in the paper and Google's code:

- the generator is the discriminator's architecture at `generator_fraction` of its width (hidden
  size, heads of the same size, feed-forward width), with the same number of layers;
- generator and discriminator share the embedding layer (token, position and segment tables and
  their LayerNorm); each projects it to its own width when the widths differ (`embedding_dim`);
- a sampled token equal to the original counts as original;
- loss = generator MLM loss + `discriminator_weight` (50) x discriminator loss, and no gradient
  flows through the sampling: the discriminator's loss never reaches generator-only weights.

`ElectraPretrainer.fit` consumes the masked-LM batches unchanged: x = {token_ids (masked by
`MLMMasker`), segment_ids, padding_mask, mask_positions}, y = mask_ids, sample_weight = mask_weights.
"""

import dataclasses

import keras
import tensorflow as tf
from keras import ops

from keras_mlm.errors import UserInputError
from keras_mlm.layers.attention import padding_mask_to_attention_bias
from keras_mlm.layers.embeddings import EncoderEmbeddings
from keras_mlm.layers.linear import Projection
from keras_mlm.layers.replaced_token_head import ReplacedTokenHead
from keras_mlm.layers.transformer_block import TransformerBlock
from keras_mlm.losses import MaskedLMLoss, global_sum
from keras_mlm.masking import hashing
from keras_mlm.metrics import MaskedAccuracy
from keras_mlm.models.bert import bert_initializer
from keras_mlm.models.encoder_base import ENCODER_INPUTS, encoder_inputs
from keras_mlm.models.masked_lm import MaskedLM
from keras_mlm.models.own_loss import OwnLossModel
from keras_mlm.models.presets import PRESETS, EncoderConfig, require_positive_integers

ELECTRA_PRESETS = {
    **{name: {**size, "embedding_dim": None} for name, size in PRESETS.items()},
    # ELECTRA's own sizes (Clark et al. 2020, appendix A; generator widths 1/4, 1/3, 1/4).
    "electra-small": {"num_layers": 12, "hidden_dim": 256, "num_heads": 4, "intermediate_dim": 1024,
                      "embedding_dim": 128, "generator_fraction": 0.25},
    "electra-base": {"num_layers": 12, "hidden_dim": 768, "num_heads": 12, "intermediate_dim": 3072,
                     "embedding_dim": None, "generator_fraction": 1 / 3},
    "electra-large": {"num_layers": 24, "hidden_dim": 1024, "num_heads": 16, "intermediate_dim": 4096,
                      "embedding_dim": None, "generator_fraction": 0.25},
}

_PRETRAINER_FIELDS = ("generator_fraction", "discriminator_weight")


@dataclasses.dataclass(frozen=True)
class ElectraConfig(EncoderConfig):
    """The discriminator's `EncoderConfig` plus `embedding_dim` (`ElectraEncoder`'s arguments, see
    `encoder_fields`) and the two `ElectraPretrainer` arguments."""

    embedding_dim: int | None = None
    """Width of the shared embeddings; None: hidden_dim (ELECTRA-small: 128 under hidden 256)."""
    generator_fraction: float = 0.25
    """Generator width as a fraction of the discriminator's (the paper's best: 1/4 to 1/2)."""
    discriminator_weight: float = 50.0
    """Weight of the discriminator loss against the generator's MLM loss (the paper's lambda)."""

    def __post_init__(self):
        super().__post_init__()
        if self.embedding_dim is not None:
            require_positive_integers(self, "embedding_dim")
        if not 0.0 < self.generator_fraction <= 1.0:
            raise UserInputError(
                f"encoder config: generator_fraction must be in (0, 1], got {self.generator_fraction!r}"
            )
        if not self.discriminator_weight > 0:
            raise UserInputError(f"encoder config: discriminator_weight must be > 0, got {self.discriminator_weight!r}")

    @classmethod
    def presets(cls):
        return ELECTRA_PRESETS

    def encoder_fields(self):
        """The fields that are `ElectraEncoder`'s constructor arguments (the discriminator's)."""
        return {k: v for k, v in self.to_dict().items() if k not in _PRETRAINER_FIELDS}


def generator_sizes(hidden_dim, num_heads, intermediate_dim, fraction):
    """(hidden_dim, num_heads, intermediate_dim) of a generator `fraction` as wide: heads keep the
    discriminator's head size where they can (ELECTRA-small: 256/4 heads -> 64/1 head)."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"generator_fraction must be in (0, 1], got {fraction!r}")
    hidden = max(1, round(hidden_dim * fraction))
    heads = max(1, hidden // (hidden_dim // num_heads))
    while hidden % heads:
        heads -= 1
    return hidden, heads, max(1, round(intermediate_dim * fraction))


@keras.saving.register_keras_serializable(package="keras_mlm")
class ElectraEncoder(keras.Model):
    """{token_ids, segment_ids, padding_mask} (batch, seq_len) -> sequence_output (batch, seq_len, hidden).

    BERT's encoder with embeddings `embedding_dim` wide, projected to `hidden_dim` when the two
    differ (keras-hub's ElectraBackbone, without its pooler). `embeddings` shares an existing
    `EncoderEmbeddings` layer (the generator gets the discriminator's); it must be `embedding_dim`
    wide. Otherwise the arguments are the fields of `ElectraConfig.encoder_fields()`.
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
        embedding_dim=None,
        embeddings=None,
        dtype=None,
        **kwargs,
    ):
        embedding_dim = hidden_dim if embedding_dim is None else embedding_dim
        initializer = bert_initializer(initializer_range)
        # Layers.
        self.shares_embeddings = embeddings is not None
        if embeddings is None:
            embeddings = EncoderEmbeddings(
                vocabulary_size, embedding_dim, max_sequence_length=max_sequence_length,
                num_segments=num_segments, dropout=dropout, layer_norm_epsilon=layer_norm_epsilon,
                embeddings_initializer=initializer, dtype=dtype, name="embeddings",
            )
        shared = (embeddings.vocabulary_size, embeddings.hidden_dim, embeddings.max_sequence_length,
                  embeddings.num_segments)
        if shared != (vocabulary_size, embedding_dim, max_sequence_length, num_segments):
            raise ValueError(
                f"shared embeddings (vocabulary, width, positions, segments) = {shared} do not match "
                f"{(vocabulary_size, embedding_dim, max_sequence_length, num_segments)}"
            )
        self.embeddings = embeddings
        self.embedding_projection = None
        if embedding_dim != hidden_dim:
            self.embedding_projection = Projection(
                hidden_dim, kernel_initializer=initializer, dtype=dtype, name="embedding_projection"
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
        x = self.embeddings(inputs["token_ids"], inputs["segment_ids"])  # (batch, seq, embedding_dim)
        if self.embedding_projection is not None:
            x = self.embedding_projection(x)  # (batch, seq, hidden)
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
        self.embedding_dim = embedding_dim

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
            "embedding_dim": self.embedding_dim,
            # A shared layer is saved as its config: loaded alone, the encoder owns a copy.
            "embeddings": keras.layers.serialize(self.embeddings) if self.shares_embeddings else None,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if config.get("embeddings") is not None:
            config["embeddings"] = keras.layers.deserialize(config["embeddings"])
        return cls(**config)

    @classmethod
    def from_encoder_config(cls, config, dtype=None, **kwargs):
        """Builds the encoder an `ElectraConfig` (its `encoder_fields`) or `EncoderConfig` describes."""
        fields = config.encoder_fields() if isinstance(config, ElectraConfig) else config.to_dict()
        return cls(**fields, dtype=dtype, **kwargs)

    @property
    def token_embedding(self):
        """The `TokenEmbedding` whose table the masked-LM head's output projection is tied to."""
        return self.embeddings.token_embedding


def write_slots(token_ids, positions, values, used):
    """token_ids (batch, seq) with values (batch, n) written at positions (batch, n) where `used`.

    Adds (new - old) at used slots and 0 at unused ones, so unused slots (position 0, as
    `MLMMasker` pads them) change nothing even when several share a position.
    """
    batch, seq_len = ops.shape(token_ids)[0], ops.shape(token_ids)[1]
    flat = ops.reshape(token_ids, (-1,))  # (batch * seq,)
    indices = ops.reshape(positions + ops.arange(batch, dtype="int32")[:, None] * seq_len, (-1, 1))  # (batch * n, 1)
    current = ops.reshape(tf.gather(flat, indices[:, 0]), ops.shape(values))  # (batch, n)
    changes = ops.where(used, values - current, 0)
    flat = tf.tensor_scatter_nd_add(flat, indices, ops.reshape(changes, (-1,)))
    return ops.reshape(flat, (batch, seq_len))


def first_occurrences(positions):
    """(batch, n) bool: True where no earlier slot of the row has the same position."""
    n = ops.shape(positions)[1]
    same = ops.equal(positions[:, :, None], positions[:, None, :])  # (batch, n, n): slot i, slot j
    earlier = ops.arange(n)[None, :] < ops.arange(n)[:, None]  # (n, n): j < i
    return ops.logical_not(ops.any(ops.logical_and(same, earlier[None]), axis=-1))


_SAMPLING_SALT = 0x45C712A9  # keeps the sampling stream apart from the masker's, which uses the same seed


@keras.saving.register_keras_serializable(package="keras_mlm")
class ElectraPretrainer(OwnLossModel):
    """Replaced-token detection over `encoder` (the discriminator) and a generator built beside it.

    `encoder`: an `ElectraEncoder` (or any encoder with an `EncoderEmbeddings` as `.embeddings`);
    it is the model fine-tuning and export use. `.generator` is a `MaskedLM` (usable by `FillMask`)
    over an `ElectraEncoder` `generator_fraction` as wide, sharing `encoder.embeddings`.
    `seed` keys the generator's sampling: a hash of (seed, optimizer step, slot), so a resumed run
    samples what the uninterrupted one would have; evaluation always samples with step 0.

    `call(x, mask_weights=None, step=0)` returns {"generator_logits" (batch, n, vocab) float32,
    "corrupted_ids" (batch, seq) int32, "discriminator_logits" (batch, seq) float32}; slots with
    weight 0 are left as they are (mask_weights None: the first slot at each position is written, so a
    dummy batch of zeros builds the model safely).

    Compile with an optimizer only: the loss is built in, and so are the metrics: generator_loss,
    discriminator_loss, generator_accuracy (masked slots), discriminator_accuracy (real tokens),
    replaced_recall (the replaced real tokens the discriminator flags) and replaced_fraction (real
    tokens replaced: 1 - replaced_fraction is the accuracy of always answering "original").
    """

    def __init__(self, encoder, generator_fraction=0.25, discriminator_weight=50.0, seed=0, **kwargs):
        dtype = kwargs.pop("dtype", None) or encoder.dtype_policy
        super().__init__(dtype=dtype, **kwargs)
        self.encoder = encoder
        self.generator_fraction = float(generator_fraction)
        self.discriminator_weight = float(discriminator_weight)
        self.seed = int(seed)
        self._sampling_key = int(hashing.mix32_numpy(hashing.seed_key(self.seed, deterministic=False) ^ _SAMPLING_SALT))
        initializer = bert_initializer(encoder.initializer_range)

        # The generator: a narrower encoder over the same embedding layer, under the masked-LM head.
        hidden, heads, intermediate = generator_sizes(
            encoder.hidden_dim, encoder.num_heads, encoder.intermediate_dim, self.generator_fraction
        )
        shared = encoder.embeddings
        generator_encoder = ElectraEncoder(
            encoder.vocabulary_size, encoder.num_layers, hidden, heads, intermediate,
            max_sequence_length=shared.max_sequence_length, num_segments=shared.num_segments,
            dropout=encoder.dropout, layer_norm_epsilon=encoder.layer_norm_epsilon, activation=encoder.activation,
            initializer_range=encoder.initializer_range, embedding_dim=shared.hidden_dim, embeddings=shared,
            dtype=encoder.dtype_policy, name="generator_encoder",
        )
        self.generator = MaskedLM(generator_encoder, dtype=encoder.dtype_policy, name="generator")
        self.discriminator_head = ReplacedTokenHead(
            encoder.activation, kernel_initializer=initializer, dtype=encoder.dtype_policy, name="discriminator_head"
        )
        self.discriminator_head.build((None, None, encoder.hidden_dim))
        self._mlm_loss = MaskedLMLoss()

        # Metrics (sums over the epoch, exact across batches and replicas).
        self.generator_loss_tracker = keras.metrics.Mean(name="generator_loss")
        self.discriminator_loss_tracker = keras.metrics.Mean(name="discriminator_loss")
        self.generator_accuracy = MaskedAccuracy(name="generator_accuracy")
        self.discriminator_accuracy = keras.metrics.Mean(name="discriminator_accuracy")
        self.replaced_recall = keras.metrics.Mean(name="replaced_recall")
        self.replaced_fraction = keras.metrics.Mean(name="replaced_fraction")
        self.built = True  # every layer above is built

    # Forward pass.

    def sample(self, logits, step):
        """One token id per slot from softmax(logits) (batch, n, vocab) -> (batch, n) int32, no gradient.

        Inverse-CDF sampling with one uniform per slot, u = hash(seed, step, slot) from
        `masking.hashing` (as the masker's noise, on a salted key, so the two streams are independent):
        the same ids eagerly, in a graph, under XLA and after a restart at step k. Under a distribution
        strategy each slot is keyed by its index in the global batch (replica id x local slots + slot),
        so 2 replicas draw what 1 device draws for the same rows (tested). Measured on (640, 8192) logits, 2 cores:
        this 29 ms (20 ms under XLA); tf.random.stateless_categorical 11 ms but it has no XLA kernel
        (a jit-compiled step fails); Gumbel-max 21 ms, 104 ms under XLA (its CPU RNG), and its noise
        differs between the two modes.
        """
        logits = ops.stop_gradient(ops.cast(logits, "float32"))
        vocabulary_size = logits.shape[-1]
        flat = ops.reshape(logits, (-1, vocabulary_size))  # (slots, vocab)
        slots = tf.shape(flat)[0]
        context = tf.distribute.get_replica_context()
        first = 0
        if context is not None and context.num_replicas_in_sync > 1:
            first = tf.cast(context.replica_id_in_sync_group, tf.int32) * slots  # this replica's first global slot
        keys = hashing.training_row_keys(self._sampling_key, step, slots, first_row=first)  # (slots,) uint32
        uniform = tf.cast(tf.bitwise.right_shift(keys, 8), tf.float32) * 2.0**-24  # (slots,) in [0, 1)
        cdf = tf.cumsum(tf.exp(flat - tf.reduce_max(flat, axis=-1, keepdims=True)), axis=-1)  # unnormalised
        target = uniform * cdf[:, -1]  # (slots,)
        ids = tf.reduce_sum(tf.cast(cdf <= target[:, None], tf.int32), axis=-1)  # token i: cdf[i-1] <= t < cdf[i]
        return ops.reshape(tf.minimum(ids, vocabulary_size - 1), ops.shape(logits)[:-1])  # (batch, n)

    def call(self, inputs, mask_weights=None, step=0, training=None):
        unmasked = {k: inputs[k] for k in ENCODER_INPUTS}  # the encoder's inputs
        token_ids, positions = ops.cast(inputs["token_ids"], "int32"), ops.cast(inputs["mask_positions"], "int32")
        # 1. The generator predicts the masked slots.
        generator_logits = self.generator(
            {**unmasked, "mask_positions": positions}, training=training
        )  # (batch, n, vocab) float32
        # 2. Its samples replace them (integer ids: nothing to differentiate through).
        if mask_weights is None:
            used = first_occurrences(positions)  # each position written once, even padded slots all at 0
        else:
            used = ops.cast(mask_weights, "float32") > 0
        corrupted_ids = write_slots(token_ids, positions, self.sample(generator_logits, step), used)  # (batch, seq)
        # 3. The discriminator reads the corrupted sequence and scores every position.
        sequence = self.encoder({**unmasked, "token_ids": corrupted_ids}, training=training)  # (b, seq, hidden)
        return {
            "generator_logits": generator_logits,
            "corrupted_ids": corrupted_ids,
            "discriminator_logits": self.discriminator_head(sequence, training=training),  # (batch, seq)
        }

    # Loss and training.

    def compute_losses(self, x, mask_ids, mask_weights, outputs):
        """{"generator", "discriminator", "loss"} and the discriminator's labels and weights.

        Both losses are sums over this replica divided by the global batch's weight (as
        `MaskedLMLoss`), so replica gradients sum to the global-batch gradient.
        """
        generator_loss = self._mlm_loss(mask_ids, outputs["generator_logits"], sample_weight=mask_weights)
        used = ops.cast(mask_weights, "float32") > 0
        original_ids = write_slots(ops.cast(x["token_ids"], "int32"), ops.cast(x["mask_positions"], "int32"),
                                   ops.cast(mask_ids, "int32"), used)  # (batch, seq): the text before masking
        replaced = ops.cast(ops.not_equal(outputs["corrupted_ids"], original_ids), "float32")  # (batch, seq)
        real = ops.cast(ops.cast(x["padding_mask"], "bool"), "float32")  # (batch, seq)
        cross_entropy = tf.nn.sigmoid_cross_entropy_with_logits(labels=replaced, logits=outputs["discriminator_logits"])
        total_real = ops.stop_gradient(global_sum(ops.sum(real)))
        discriminator_loss = ops.divide_no_nan(ops.sum(cross_entropy * real), total_real)
        return {
            "generator": generator_loss,
            "discriminator": discriminator_loss,
            "loss": generator_loss + self.discriminator_weight * discriminator_loss,
            "replaced": replaced,
            "real": real,
        }

    def _unpack(self, data):
        x, mask_ids, mask_weights = keras.utils.unpack_x_y_sample_weight(data)
        if mask_weights is None:
            mask_weights = ops.ones_like(mask_ids, "float32")
        return x, mask_ids, mask_weights

    def _update_metrics(self, x, mask_ids, mask_weights, outputs, losses):
        # Losses are reported as Keras reports its own: x replicas, averaged over replicas (see MaskedLMLoss).
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        batch_size = ops.shape(x["token_ids"])[0]
        for tracker, key in ((self._loss_tracker, "loss"), (self.generator_loss_tracker, "generator"),
                             (self.discriminator_loss_tracker, "discriminator")):
            tracker.update_state(losses[key] * replicas, sample_weight=batch_size)
        self.generator_accuracy.update_state(mask_ids, outputs["generator_logits"], mask_weights)
        replaced, real = losses["replaced"], losses["real"]
        flagged = ops.cast(outputs["discriminator_logits"] > 0, "float32")  # (batch, seq)
        self.discriminator_accuracy.update_state(ops.cast(ops.equal(flagged, replaced), "float32"), sample_weight=real)
        self.replaced_recall.update_state(flagged, sample_weight=real * replaced)
        self.replaced_fraction.update_state(replaced, sample_weight=real)
        return self.get_metrics_result()

    def train_step(self, data):
        x, mask_ids, mask_weights = self._unpack(data)
        with tf.GradientTape() as tape:
            outputs = self(x, mask_weights=mask_weights, step=self.optimizer.iterations, training=True)
            losses = self.compute_losses(x, mask_ids, mask_weights, outputs)
            scaled = self.optimizer.scale_loss(losses["loss"])  # loss scaling under mixed_float16
        weights = self.trainable_weights
        self.optimizer.apply_gradients(zip(tape.gradient(scaled, weights), weights))
        return self._update_metrics(x, mask_ids, mask_weights, outputs, losses)

    def test_step(self, data):
        x, mask_ids, mask_weights = self._unpack(data)
        outputs = self(x, mask_weights=mask_weights, step=0, training=False)
        losses = self.compute_losses(x, mask_ids, mask_weights, outputs)
        return self._update_metrics(x, mask_ids, mask_weights, outputs, losses)

    # Serialization.

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            "encoder": keras.layers.serialize(self.encoder),
            "generator_fraction": self.generator_fraction,
            "discriminator_weight": self.discriminator_weight,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.layers.deserialize(config["encoder"])
        return cls(**config)


def build_electra_pretrainer(config, seed=0, dtype=None):
    """A fresh `ElectraPretrainer` for `config` (an `ElectraConfig`); dtype e.g. "mixed_bfloat16"."""
    encoder = ElectraEncoder.from_encoder_config(config, dtype=dtype, name="encoder")
    return ElectraPretrainer(
        encoder, generator_fraction=config.generator_fraction, discriminator_weight=config.discriminator_weight,
        seed=seed, dtype=dtype, name="electra",
    )
