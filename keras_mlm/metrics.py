"""Masked-LM metrics: accuracy and perplexity over the weighted mask slots.

Compile them as `weighted_metrics=[MaskedAccuracy(), Perplexity()]` so Keras passes `mask_weights` as
`sample_weight` (under `metrics=` Keras passes none and padded slots would count). Both keep sums,
not means, so they are exact across batches of different weight and across replicas.
"""

import keras
import tensorflow as tf
from keras import ops

from keras_mlm.losses import masked_cross_entropy


def _weights_like(values, sample_weight):
    if sample_weight is None:
        return ops.ones_like(values)
    return ops.reshape(ops.cast(sample_weight, "float32"), ops.shape(values))


@keras.saving.register_keras_serializable(package="keras_mlm")
class MaskedAccuracy(keras.metrics.Metric):
    """sum(w * [argmax(logits) == mask_id]) / sum(w) over all batches seen."""

    def __init__(self, name="masked_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.correct = self.add_variable(shape=(), initializer="zeros", name="correct", dtype="float32")
        self.total = self.add_variable(shape=(), initializer="zeros", name="total", dtype="float32")

    def update_state(self, y_true, y_pred, sample_weight=None):
        # tf.argmax, not keras.ops.argmax: the latter adds five full-size passes over the logits to
        # tell -0.0 from 0.0 (measured: more time than the argmax itself on 640 x 8192 logits).
        predicted = tf.argmax(y_pred, axis=-1, output_type="int32")  # (batch, n)
        hits = ops.cast(ops.equal(predicted, ops.cast(y_true, "int32")), "float32")
        weights = _weights_like(hits, sample_weight)
        self.correct.assign_add(ops.sum(hits * weights))
        self.total.assign_add(ops.sum(weights))

    def result(self):
        return ops.divide_no_nan(self.correct, self.total)

    def reset_state(self):
        self.correct.assign(0.0)
        self.total.assign(0.0)


@keras.saving.register_keras_serializable(package="keras_mlm")
class Perplexity(keras.metrics.Metric):
    """exp(sum(w * ce) / sum(w)) over all batches seen: exp of the weighted mean masked-LM loss."""

    def __init__(self, name="perplexity", **kwargs):
        super().__init__(name=name, **kwargs)
        self.loss_sum = self.add_variable(shape=(), initializer="zeros", name="loss_sum", dtype="float32")
        self.total = self.add_variable(shape=(), initializer="zeros", name="total", dtype="float32")

    def update_state(self, y_true, y_pred, sample_weight=None):
        ce = masked_cross_entropy(y_true, y_pred)  # (batch, n)
        weights = _weights_like(ce, sample_weight)
        self.loss_sum.assign_add(ops.sum(ce * weights))
        self.total.assign_add(ops.sum(weights))

    def result(self):
        return ops.exp(ops.divide_no_nan(self.loss_sum, self.total))

    def reset_state(self):
        self.loss_sum.assign(0.0)
        self.total.assign(0.0)
