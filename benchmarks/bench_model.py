"""Training throughput of keras-mlm's MaskedLM next to keras-hub's BertMaskedLM, plus MFU.

    python benchmarks/bench_model.py [--presets tiny,mini] [--policy float32] [--steps 8] [--rounds 3]

Both models get the same sizes (heads = hidden / 64, intermediate = 4 * hidden, dropout 0.1), the
same activation (keras-hub's tanh GELU, so the math is the same), the same AdamW optimizer, the
same batches (32 x 128 tokens, 20 mask slots, vocabulary 8192), their own masked-LM loss and a
weighted accuracy metric, and run through `model.fit`. keras-hub's model is built directly from a
BertBackbone (no preset download). Timing alternates the two models in rounds of --steps steps
after a warm-up and reports the best round of each (the CPU is shared, so medians are printed too).

MFU = matmul FLOPs of one training step (forward x 3) x steps/s / peak, with the peak measured here
as a chain of 2048^3 matmuls in the same dtype (best of a try before and after). Elementwise work is
not counted as useful FLOPs. CPU-seconds per step (process time, best round) is printed too: on a
shared machine it moves less than wall-clock time.
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from keras_mlm.losses import MaskedLMLoss
from keras_mlm.metrics import MaskedAccuracy
from keras_mlm.models import EncoderConfig, build_masked_lm

BATCH, SEQ_LEN, N_MASKS, VOCAB = 32, 128, 20, 8192


def make_dataset(seed=0):
    rng = np.random.default_rng(seed)
    x = {
        "token_ids": rng.integers(5, VOCAB, (BATCH, SEQ_LEN)).astype("int32"),
        "segment_ids": (np.arange(SEQ_LEN) >= SEQ_LEN // 2).astype("int32")[None].repeat(BATCH, 0),
        "padding_mask": np.ones((BATCH, SEQ_LEN), "int32"),
        "mask_positions": np.sort(np.stack([rng.choice(SEQ_LEN, N_MASKS, replace=False) for _ in range(BATCH)]), -1)
        .astype("int32"),
    }
    mask_ids = rng.integers(5, VOCAB, (BATCH, N_MASKS)).astype("int32")
    mask_weights = np.ones((BATCH, N_MASKS), "float32")
    return tf.data.Dataset.from_tensors((x, mask_ids, mask_weights)).repeat().prefetch(2)


def build_ours(config, policy):
    model = build_masked_lm(config, dtype=policy)
    model.compile(
        optimizer=keras.optimizers.AdamW(1e-4), loss=MaskedLMLoss(), weighted_metrics=[MaskedAccuracy()],
        jit_compile=False,
    )
    return model


def build_keras_hub(config, policy):
    import keras_hub

    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=config.vocabulary_size, num_layers=config.num_layers, num_heads=config.num_heads,
        hidden_dim=config.hidden_dim, intermediate_dim=config.intermediate_dim, dropout=config.dropout,
        max_sequence_length=config.max_sequence_length, dtype=policy,
    )
    model = keras_hub.models.BertMaskedLM(backbone, preprocessor=None)
    model.compile(
        optimizer=keras.optimizers.AdamW(1e-4),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy()],
        jit_compile=False,
    )
    return model


def train_step_flops(config):
    """Matmul FLOPs of one training step (backward = 2 x forward)."""
    tokens, h, i = BATCH * SEQ_LEN, config.hidden_dim, config.intermediate_dim
    per_layer = 2 * tokens * (4 * h * h + 2 * h * i) + 2 * 2 * BATCH * SEQ_LEN * SEQ_LEN * h
    head = 2 * BATCH * N_MASKS * (h * h + h * config.vocabulary_size)
    return 3 * (config.num_layers * per_layer + head)


def matmul_peak(dtype, n=2048, chain=8, repeats=3):
    """FLOP/s of a dependent chain of n^3 matmuls (no common-subexpression shortcut possible)."""
    a = tf.random.normal((n, n), dtype="float32")
    w = tf.cast(tf.random.normal((n, n), stddev=n**-0.5), dtype)

    @tf.function
    def run(x):
        for _ in range(chain):
            x = tf.matmul(x, w)
        return tf.reduce_sum(tf.cast(x[:1, :1], "float32"))

    x = tf.cast(a, dtype)
    run(x).numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run(x).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 * chain / best


class EpochTimer(keras.callbacks.Callback):
    """Wall-clock and process CPU seconds of each epoch (one timed round)."""

    def __init__(self):
        super().__init__()
        self.seconds, self.cpu_seconds = [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.start, self.cpu_start = time.perf_counter(), time.process_time()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)
        self.cpu_seconds.append(time.process_time() - self.cpu_start)


def compare(preset, policy, steps, rounds, activation):
    config = EncoderConfig.from_preset(preset, VOCAB, activation=activation)
    dataset = make_dataset()
    models = {"keras-mlm": build_ours(config, policy), "keras-hub": build_keras_hub(config, policy)}
    timers = {name: EpochTimer() for name in models}
    for model in models.values():  # trace + first steps
        model.fit(dataset, steps_per_epoch=3, epochs=1, verbose=0)
    for _ in range(rounds):
        for name, model in models.items():
            model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[timers[name]])
    tokens = BATCH * SEQ_LEN * steps
    best = {name: tokens / min(t.seconds) for name, t in timers.items()}
    median = {name: tokens / float(np.median(t.seconds)) for name, t in timers.items()}
    cpu = {name: min(t.cpu_seconds) / steps for name, t in timers.items()}
    return config, best, median, cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default="tiny,mini")
    parser.add_argument("--policy", default="float32", help="float32 or mixed_bfloat16 (both models)")
    parser.add_argument("--activation", default="gelu_approximate", help="ours; keras-hub's is gelu_approximate")
    parser.add_argument("--steps", type=int, default=8, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    compute_dtype = "bfloat16" if "bfloat16" in args.policy else "float32"
    peak = matmul_peak(compute_dtype)
    print(f"batch {BATCH} x {SEQ_LEN}, {N_MASKS} mask slots, vocabulary {VOCAB}, policy {args.policy}, "
          f"{os.cpu_count()} CPUs")
    results = []
    for preset in args.presets.split(","):
        results.append((preset, *compare(preset, args.policy, args.steps, args.rounds, args.activation)))
    peak = max(peak, matmul_peak(compute_dtype))  # the better of two tries on a shared machine
    print(f"matmul peak ({compute_dtype}, 2048^3 chain): {peak / 1e9:.0f} GFLOP/s")
    for preset, config, best, median, cpu in results:
        flops = train_step_flops(config)
        for name in best:
            mfu = flops * best[name] / (BATCH * SEQ_LEN) / peak
            print(
                f"  {preset:6s} {name:10s} {best[name]:9.0f} tokens/s (median {median[name]:9.0f})  "
                f"{cpu[name]:.3f} CPU-s/step  MFU {mfu:6.1%}"
            )
        print(
            f"  {preset:6s} ratio keras-mlm / keras-hub: {best['keras-mlm'] / best['keras-hub']:.2f}x tokens/s (best), "
            f"{median['keras-mlm'] / median['keras-hub']:.2f}x (median), "
            f"{cpu['keras-hub'] / cpu['keras-mlm']:.2f}x CPU-seconds per step"
        )

if __name__ == "__main__":
    main()
