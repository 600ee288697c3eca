"""AdamW with linear warm-up, an optional hold at the peak, then linear or cosine decay.

BERT and RoBERTa decay over every step after warm-up (`decay_steps` None); warm-up-stable-decay (Hu et
al. 2024, MiniCPM; Hägele et al. 2024) holds the peak and decays over a last share of the steps only.
"""

import math

import keras
from keras import ops

NO_DECAY = ["bias", "gamma", "beta"]  # Keras names of biases and LayerNorm scale/offset


@keras.saving.register_keras_serializable(package="keras_mlm")
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """0 -> `peak` linearly over `warmup_steps`, held at `peak`, then down to `end` at `total_steps` (linear
    or cosine) over the last `decay_steps` (None: every step after warm-up, so no hold)."""

    def __init__(self, peak, warmup_steps, total_steps, decay="linear", end=0.0, decay_steps=None):
        self.peak, self.warmup_steps, self.total_steps = float(peak), int(warmup_steps), int(total_steps)
        self.decay, self.end = decay, float(end)
        self.decay_steps = None if decay_steps is None else int(decay_steps)

    @property
    def decay_start(self):
        """The step the decay begins at (warm-up end, or later when the peak is held)."""
        if self.decay_steps is None:
            return self.warmup_steps
        return max(self.warmup_steps, self.total_steps - self.decay_steps)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warmup = self.peak * step / max(self.warmup_steps, 1)
        start = self.decay_start
        progress = ops.clip((step - start) / max(self.total_steps - start, 1), 0.0, 1.0)
        if self.decay == "cosine":
            shape = 0.5 * (1.0 + ops.cos(math.pi * progress))
        else:
            shape = 1.0 - progress
        decayed = self.end + (self.peak - self.end) * shape
        return ops.where(step < self.warmup_steps, warmup, decayed)

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps, "decay": self.decay,
                "end": self.end, "decay_steps": self.decay_steps}


def make_optimizer(config, total_steps=None):
    """The AdamW optimizer of a `TrainingConfig` (weight decay off for LayerNorm and biases).

    The schedule spans `total_steps` (default `config.steps`; a `max_time` run passes the steps planned
    for its budget).
    """
    total_steps = total_steps or config.steps
    if not total_steps:
        raise ValueError("make_optimizer: the schedule needs a step count (config.steps or total_steps)")
    schedule = WarmupDecay(config.learning_rate, config.warmup_steps_of(total_steps), total_steps, config.decay,
                           config.end_learning_rate, config.decay_steps_of(total_steps))
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
