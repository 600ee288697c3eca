"""The README's presets table: parameters and measured training tokens/s of every preset.

    python benchmarks/bench_presets.py [--vocab 30522] [--batch 16] [--seq-len 128] [--steps 5]

Parameters are counted for a BERT-sized vocabulary (30522) unless told; tokens/s is the median step
time of `--steps` timed train steps after one warm-up step, float32, graph mode, on this machine.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import tensorflow as tf

from keras_mlm.models import PRESETS, EncoderConfig, build_masked_lm
from keras_mlm.training.config import TrainingConfig
from keras_mlm.training.pretrain import compile_masked_lm


def batch(vocab, size, seq_len, slots, seed=0):
    rng = np.random.default_rng(seed)
    x = {
        "token_ids": tf.constant(rng.integers(5, vocab, (size, seq_len)), tf.int32),
        "segment_ids": tf.zeros((size, seq_len), tf.int32),
        "padding_mask": tf.ones((size, seq_len), tf.bool),
        "mask_positions": tf.constant(np.sort(rng.choice(seq_len, (size, slots)), axis=1), tf.int32),
    }
    return x, tf.constant(rng.integers(5, vocab, (size, slots)), tf.int32), tf.ones((size, slots))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--vocab", type=int, default=30522)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--presets", default=",".join(PRESETS))
    args = parser.parse_args()
    slots = int(np.ceil(args.seq_len * 0.15))
    print(f"| preset | layers | hidden | heads | parameters (V={args.vocab}) | train tokens/s (batch {args.batch} x {args.seq_len}, fp32) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in args.presets.split(","):
        config = EncoderConfig.from_preset(name, args.vocab)
        model = compile_masked_lm(build_masked_lm(config), TrainingConfig(steps=100))
        x, y, w = batch(args.vocab, args.batch, args.seq_len, slots)
        model.train_on_batch(x, y, w)
        times = []
        for _ in range(args.steps):
            start = time.perf_counter()
            model.train_on_batch(x, y, w)
            times.append(time.perf_counter() - start)
        tokens_per_second = args.batch * args.seq_len / statistics.median(times)
        params = model.count_params()
        print(f"| `{name}` | {config.num_layers} | {config.hidden_dim} | {config.num_heads} | {params / 1e6:.1f}M | {tokens_per_second:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
