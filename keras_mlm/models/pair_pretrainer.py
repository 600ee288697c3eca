"""Masked LM plus a sentence-pair objective: BERT's next-sentence prediction, ALBERT's sentence order.

BERT (Devlin et al. 2019) pre-trains with MLM + NSP: is B the text that follows A, or a segment from
another document? ALBERT (Lan et al. 2020) found NSP too easy (topic alone gives it away) and replaced
it by SOP: are A and B, two consecutive segments of one document, in order or swapped? Both read the
pooled [CLS] vector: BERT's pooler (a tanh dense layer as wide as the encoder) and a 2-way classifier.

`PairPretrainer.fit` consumes `keras_mlm.data.pairs.pair_pretraining_dataset`: x = {token_ids,
segment_ids, padding_mask, mask_positions}, y = {mask_ids, pair_labels}, sample_weight =
{mask_weights, pair_weights}.
"""

import keras
import tensorflow as tf
from keras import ops

from keras_mlm.data.pairs import OBJECTIVES
from keras_mlm.errors import UserInputError
from keras_mlm.losses import MaskedLMLoss, global_sum
from keras_mlm.metrics import MaskedAccuracy, Perplexity
from keras_mlm.models.bert import bert_initializer
from keras_mlm.models.encoder_base import ENCODER_INPUTS
from keras_mlm.models.own_loss import OwnLossModel



@keras.saving.register_keras_serializable(package="keras_mlm")
class PairPretrainer(OwnLossModel):
    """A `MaskedLM` (`.masked_lm`, its encoder `.encoder`) with BERT's pooler and a 2-way pair classifier.

    `objective`: "nsp" (label 1: B is not the text after A) or "sop" (label 1: A and B swapped).

    `call(x)` returns {"mlm_logits" (batch, n_masks, vocab) float32 (what `masked_lm(x)` returns),
    "pair_logits" (batch, 2) float32}.

    Compile with an optimizer only: the loss is built in, the masked-LM loss (`MaskedLMLoss`) plus
    the pair cross-entropy (weighted by `pair_weights`, over the global batch's weight as
    `MaskedLMLoss` does); so are the metrics: masked_accuracy and perplexity (named as for a plain
    masked LM), mlm_loss, and <objective>_loss / <objective>_accuracy (e.g. nsp_loss, nsp_accuracy).
    """

    def __init__(self, masked_lm, objective="nsp", **kwargs):
        if objective not in OBJECTIVES:
            raise UserInputError(f"sentence-pair objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
        dtype = kwargs.pop("dtype", None) or masked_lm.dtype_policy
        super().__init__(dtype=dtype, **kwargs)
        self.masked_lm = masked_lm
        self.objective = objective
        encoder = masked_lm.encoder
        self.pooler = keras.layers.Dense(
            encoder.hidden_dim, activation="tanh", kernel_initializer=bert_initializer(encoder.initializer_range),
            dtype=dtype, name="pooler",
        )
        self.pair_classifier = keras.layers.Dense(
            2, kernel_initializer=bert_initializer(encoder.initializer_range), dtype=dtype, name="pair_classifier"
        )
        self.pooler.build((None, encoder.hidden_dim))
        self.pair_classifier.build((None, encoder.hidden_dim))
        self._mlm_loss = MaskedLMLoss()

        # Metrics (sums over the epoch, exact across batches and replicas).
        self.masked_accuracy = MaskedAccuracy()
        self.perplexity = Perplexity()
        self.mlm_loss_tracker = keras.metrics.Mean(name="mlm_loss")
        self.pair_loss_tracker = keras.metrics.Mean(name=f"{objective}_loss")
        self.pair_accuracy = keras.metrics.Mean(name=f"{objective}_accuracy")
        self.built = True  # every layer above is built

    @property
    def encoder(self):
        """The encoder fine-tuning and export use (the masked LM's)."""
        return self.masked_lm.encoder

    # Forward pass.

    def call(self, inputs, training=None):
        # 1. One encoder pass serves both heads.
        sequence = self.masked_lm.encoder({k: inputs[k] for k in ENCODER_INPUTS}, training=training)  # (batch, seq, hidden)
        # 2. The masked LM's own head on the masked slots.
        mlm_logits = self.masked_lm.mlm_head(
            sequence, mask_positions=ops.cast(inputs["mask_positions"], "int32"), training=training
        )  # (batch, n_masks, vocab) float32
        # 3. The pooled [CLS] vector -> two classes.
        pooled = self.pooler(sequence[:, 0, :])  # (batch, hidden)
        pair_logits = ops.cast(self.pair_classifier(pooled), "float32")  # (batch, 2), float32 for the loss
        return {"mlm_logits": mlm_logits, "pair_logits": pair_logits}

    # Loss and training.

    def compute_losses(self, y, sample_weight, outputs):
        """{"mlm", "pair", "loss"}: each a sum over this replica divided by the global batch's weight,
        so replica gradients sum to the global-batch gradient (see `MaskedLMLoss`)."""
        mlm = self._mlm_loss(y["mask_ids"], outputs["mlm_logits"], sample_weight=sample_weight["mask_weights"])
        labels = ops.cast(y["pair_labels"], "int32")  # (batch,)
        weights = ops.cast(sample_weight["pair_weights"], "float32")  # (batch,)
        cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, outputs["pair_logits"])  # (batch,)
        total = ops.stop_gradient(global_sum(ops.sum(weights)))
        pair = ops.divide_no_nan(ops.sum(cross_entropy * weights), total)
        return {"mlm": mlm, "pair": pair, "loss": mlm + pair}

    def _unpack(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if not isinstance(y, dict) or not {"mask_ids", "pair_labels"} <= set(y):
            raise ValueError("PairPretrainer trains on y = {'mask_ids', 'pair_labels'} (see pair_pretraining_dataset)")
        sample_weight = dict(sample_weight or {})
        sample_weight.setdefault("mask_weights", ops.ones_like(y["mask_ids"], "float32"))
        sample_weight.setdefault("pair_weights", ops.ones_like(y["pair_labels"], "float32"))
        return x, y, sample_weight

    def _update_metrics(self, x, y, sample_weight, outputs, losses):
        # Losses are reported as Keras reports its own: x replicas, averaged over replicas (see MaskedLMLoss).
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        batch_size = ops.shape(x["token_ids"])[0]
        for tracker, key in ((self._loss_tracker, "loss"), (self.mlm_loss_tracker, "mlm"), (self.pair_loss_tracker, "pair")):
            tracker.update_state(losses[key] * replicas, sample_weight=batch_size)
        self.masked_accuracy.update_state(y["mask_ids"], outputs["mlm_logits"], sample_weight["mask_weights"])
        self.perplexity.update_state(y["mask_ids"], outputs["mlm_logits"], sample_weight["mask_weights"])
        predicted = tf.argmax(outputs["pair_logits"], axis=-1, output_type=tf.int32)  # (batch,)
        hits = ops.cast(ops.equal(predicted, ops.cast(y["pair_labels"], "int32")), "float32")
        self.pair_accuracy.update_state(hits, sample_weight=sample_weight["pair_weights"])
        return self.get_metrics_result()

    def train_step(self, data):
        x, y, sample_weight = self._unpack(data)
        with tf.GradientTape() as tape:
            outputs = self(x, training=True)
            losses = self.compute_losses(y, sample_weight, outputs)
            scaled = self.optimizer.scale_loss(losses["loss"])  # loss scaling under mixed_float16
        weights = self.trainable_weights
        self.optimizer.apply_gradients(zip(tape.gradient(scaled, weights), weights))
        return self._update_metrics(x, y, sample_weight, outputs, losses)

    def test_step(self, data):
        x, y, sample_weight = self._unpack(data)
        outputs = self(x, training=False)
        losses = self.compute_losses(y, sample_weight, outputs)
        return self._update_metrics(x, y, sample_weight, outputs, losses)

    # Serialization.

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            "masked_lm": keras.layers.serialize(self.masked_lm),
            "objective": self.objective,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["masked_lm"] = keras.layers.deserialize(config["masked_lm"])
        return cls(**config)


def build_pair_pretrainer(masked_lm, objective, dtype=None, name=None):
    """A `PairPretrainer` over `masked_lm` (e.g. from `build_masked_lm`) for "nsp" or "sop"; its dtype
    policy is the masked LM's unless given, its name `<objective>_pretrainer` unless given."""
    return PairPretrainer(masked_lm, objective, dtype=dtype, name=name or f"{objective}_pretrainer")
