"""How a pre-training run trains: one frozen dataclass, its keys the `pretrain` flags and YAML keys."""

import dataclasses
import math
import re

from keras_mlm.errors import UserInputError

DECAYS = ("linear", "cosine")
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
STRATEGIES = ("auto", "one-device", "mirrored", "multi-worker")
OBJECTIVES = ("mlm", "mlm+nsp", "mlm+sop")
SAMPLE_SENTENCES = ("paris is the [MASK] of france", "the [MASK] brown [MASK] jumps")
DEFAULT_STEPS = 1000
_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?")


def parse_duration(value):
    """Seconds of a duration such as 90, "90s", "20m", "2h", "1h30m" or "2.5h"."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        text = str(value).strip().lower().replace(" ", "")
        match = _DURATION.fullmatch(text)
        if not text or not match or not any(match.groups()):
            raise UserInputError(f"training.max_time must be a duration like 90s, 20m, 2h or 1h30m, got {value!r}")
        hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
        seconds += 60 * minutes + 3600 * hours
    if not math.isfinite(seconds) or seconds <= 0:
        raise UserInputError(f"training.max_time must be a positive duration, got {value!r}")
    return seconds


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    steps: int | None = None  # optimizer steps in the whole run (default 1000); with max_time: at most this many (default: as many as the time allows)
    batch_size: int = 32  # global batch (split across replicas)
    learning_rate: float = 1e-3  # peak, reached at the end of warm-up
    warmup_fraction: float = 0.1  # share of the planned steps spent warming up linearly from 0
    decay: str = "linear"  # after warm-up: "linear" or "cosine" down to end_learning_rate
    decay_fraction: float = 1.0  # share of the planned steps, at the end, spent decaying; before it the peak is held (1: all steps after warm-up)
    end_learning_rate: float = 0.0
    weight_decay: float = 0.01  # AdamW; LayerNorm parameters and biases are excluded
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-6
    clip_norm: float = 0.0  # global gradient-norm clipping (BERT: 1.0); 0 = off, as RoBERTa pre-trains.
    # Measured here: clipping at 1.0 kept the tiny preset on the unigram plateau 3x longer.
    seed: int = 0  # weights, shuffling and masking
    checkpoint_every: int = 500  # steps between checkpoints (and resumable backups)
    keep_checkpoints: int = 3  # newest checkpoints kept
    log_every: int = 50  # steps between TensorBoard scalars (and log lines when stdout is not a terminal)
    sample_every: int = 500  # steps between fill-mask text summaries in TensorBoard
    shuffle_buffer: int = 10_000  # rows
    jit_compile: bool = False  # XLA; measured slower than graph mode on CPU (see README)
    precision: str = "auto"  # "auto" (mixed_bfloat16 where the device computes bfloat16 natively, else float32) | "float32" | "mixed_bfloat16" | "mixed_float16"
    strategy: str = "auto"  # "auto" | "one-device" | "mirrored" | "multi-worker"
    cpu_devices: int = 0  # split the CPU into this many logical devices (0: leave as is)
    num_workers: int = 0  # >1: start that many local worker processes (multi-worker on one machine)
    sample_sentences: list = dataclasses.field(default_factory=lambda: list(SAMPLE_SENTENCES))
    # fill-mask examples shown in TensorBoard every `sample_every` steps
    max_time: str | float | None = None  # wall-clock budget ("90s", "20m", "2h"): the schedule is planned for it, the run stops when it is spent
    eval_every: int = 0  # steps between validations on --eval-data (0: every checkpoint_every steps); also at the end
    eval_tokens: int = 100_000  # validation reads at most this many tokens (rows x seq_len) of --eval-data
    keep_best: bool = False  # keep the model of the lowest validation loss as RUN_DIR/best.keras
    objective: str = "mlm"  # "mlm" | "mlm+nsp" (bert: next-sentence prediction) | "mlm+sop" (albert: sentence order)

    def __post_init__(self):
        if self.steps is None and self.max_time is None:
            object.__setattr__(self, "steps", DEFAULT_STEPS)
        if self.max_time is not None:
            parse_duration(self.max_time)
        names = ("batch_size", "checkpoint_every", "keep_checkpoints", "log_every", "sample_every", "eval_tokens")
        for name in names + (("steps",) if self.steps is not None else ()):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UserInputError(f"training.{name} must be a positive integer, got {value!r}")
        if not isinstance(self.eval_every, int) or isinstance(self.eval_every, bool) or self.eval_every < 0:
            raise UserInputError(f"training.eval_every must be a non-negative integer (0: every checkpoint), got {self.eval_every!r}")
        if not self.learning_rate > 0:
            raise UserInputError(f"training.learning_rate must be > 0, got {self.learning_rate}")
        if not 0 <= self.warmup_fraction < 1:
            raise UserInputError(f"training.warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        if not 0 < self.decay_fraction <= 1:
            raise UserInputError(f"training.decay_fraction must be in (0, 1], got {self.decay_fraction}")
        for name, allowed in (("decay", DECAYS), ("precision", PRECISIONS), ("strategy", STRATEGIES), ("objective", OBJECTIVES)):
            if getattr(self, name) not in allowed:
                raise UserInputError(f"training.{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")

    @property
    def max_seconds(self):
        """The wall-clock budget in seconds, or None."""
        return None if self.max_time is None else parse_duration(self.max_time)

    @property
    def validation_every(self):
        return self.eval_every or self.checkpoint_every

    def warmup_steps_of(self, total_steps):
        return int(total_steps * self.warmup_fraction)

    def decay_steps_of(self, total_steps):
        """Steps of the decay at the end (None: every step after warm-up)."""
        return None if self.decay_fraction >= 1 else max(1, round(total_steps * self.decay_fraction))

    @property
    def warmup_steps(self):
        return self.warmup_steps_of(self.steps)
