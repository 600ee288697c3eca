"""AdamW with linear warm-up then linear or cosine decay, as BERT and RoBERTa pre-train."""

import math

import keras
from keras import ops

NO_DECAY = ["bias", "gamma", "beta"]  # Keras names of biases and LayerNorm scale/offset


@keras.saving.register_keras_serializable(package="keras_mlm")
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """0 -> `peak` linearly over `warmup_steps`, then down to `end` at `total_steps` (linear or cosine)."""

    def __init__(self, peak, warmup_steps, total_steps, decay="linear", end=0.0):
        self.peak, self.warmup_steps, self.total_steps = float(peak), int(warmup_steps), int(total_steps)
        self.decay, self.end = decay, float(end)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warmup = self.peak * step / max(self.warmup_steps, 1)
        progress = ops.clip((step - self.warmup_steps) / max(self.total_steps - self.warmup_steps, 1), 0.0, 1.0)
        if self.decay == "cosine":
            shape = 0.5 * (1.0 + ops.cos(math.pi * progress))
        else:
            shape = 1.0 - progress
        decayed = self.end + (self.peak - self.end) * shape
        return ops.where(step < self.warmup_steps, warmup, decayed)

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps, "decay": self.decay, "end": self.end}


def make_optimizer(config, total_steps=None):
    """The AdamW optimizer of a `TrainingConfig` (weight decay off for LayerNorm and biases).

    The schedule spans `total_steps` (default `config.steps`; a `max_time` run passes the steps planned
    for its budget).
    """
    total_steps = total_steps or config.steps
    if not total_steps:
        raise ValueError("make_optimizer: the schedule needs a step count (config.steps or total_steps)")
    schedule = WarmupDecay(config.learning_rate, config.warmup_steps_of(total_steps), total_steps, config.decay, config.end_learning_rate)
    optimizer = keras.optimizers.AdamW(
        learning_rate=schedule,
        weight_decay=config.weight_decay,
        beta_1=config.beta_1,
        beta_2=config.beta_2,
        epsilon=config.epsilon,
        global_clipnorm=config.clip_norm or None,
    )
    optimizer.exclude_from_weight_decay(var_names=NO_DECAY)
    return optimizer
