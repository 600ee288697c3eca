"""Masking throughput in tf.data: keras-mlm's MLMMasker (token, whole_word, span) vs keras-hub's
MaskedLMMaskGenerator, on the same batches, one map call per batch (mapped after `batch`).

    python benchmarks/masking_throughput.py [--batch-size 32] [--sequence-length 128] [--batches 400]

Rows are [CLS] + random non-special ids + [SEP] from a BERT-sized vocabulary (30522 ids, 5 specials,
one id in five a '##' piece so that whole-word and span masking have multi-piece words). Each pipeline
runs entirely in the tf.data runtime (`Dataset.reduce`), sequentially (num_parallel_calls=None), so
the numbers are per map call stream; the best of --repeats interleaved runs is reported. The last
line, a pipeline that masks nothing, shows what the tf.data machinery itself costs per batch.
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from keras_mlm.masking import MLMMasker

VOCABULARY_SIZE = 30522
SPECIAL_IDS = [0, 1, 2, 3, 4]  # [PAD] [UNK] [CLS] [SEP] [MASK]
CLS, SEP, MASK = 2, 3, 4


def make_batches(num_batches, batch_size, sequence_length, seed):
    rng = np.random.default_rng(seed)
    ids = rng.integers(len(SPECIAL_IDS), VOCABULARY_SIZE, size=(num_batches, batch_size, sequence_length))
    ids[..., 0], ids[..., -1] = CLS, SEP
    return ids.astype(np.int32)


def pipeline(batches, fn):
    """A function that maps `fn(step, ids)` over `batches` inside the tf.data runtime and returns
    how long that took. Every output is consumed (one element of each summed) in the runtime."""
    dataset = tf.data.Dataset.from_tensor_slices(batches).enumerate().map(fn)

    def consume(*outputs):
        return tf.add_n([tf.cast(tf.reshape(t, [-1])[0], tf.float32) for t in tf.nest.flatten(outputs)])

    dataset = dataset.map(consume)

    def timed():
        start = time.perf_counter()
        dataset.reduce(tf.constant(0.0), lambda total, value: total + value)
        return time.perf_counter() - start

    timed()  # warm up: trace and build
    return timed


def measure(batches, fns, repeats):
    """Best-of-`repeats` rows/s of each pipeline; repeats are interleaved so that a busy machine
    slows every pipeline alike."""
    timers = {name: pipeline(batches, fn) for name, fn in fns.items()}
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, timed in timers.items():
            best[name] = min(best[name], timed())
    rows = batches.shape[0] * batches.shape[1]
    return {name: rows / seconds for name, seconds in best.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--sequence-length", type=int, default=128)
    parser.add_argument("--batches", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    batches = make_batches(args.batches, args.batch_size, args.sequence_length, args.seed)
    continuation_ids = np.arange(len(SPECIAL_IDS), VOCABULARY_SIZE)[::5]
    fns = {}
    for strategy in ("token", "whole_word", "span"):
        masker = MLMMasker(
            vocabulary_size=VOCABULARY_SIZE,
            mask_token_id=MASK,
            special_token_ids=SPECIAL_IDS,
            sequence_length=args.sequence_length,
            continuation_ids=continuation_ids,
            strategy=strategy,
            seed=args.seed,
        )
        fns[f"keras_mlm {strategy}"] = lambda step, ids, masker=masker: masker(ids, step=step)

    import keras_hub

    generator = keras_hub.layers.MaskedLMMaskGenerator(
        vocabulary_size=VOCABULARY_SIZE,
        mask_selection_rate=0.15,
        mask_token_id=MASK,
        mask_selection_length=masker.max_selections,
        unselectable_token_ids=SPECIAL_IDS,
    )
    fns["keras_hub MaskedLMMaskGenerator"] = lambda step, ids: generator(ids)
    fns["no masking (tf.data overhead)"] = lambda step, ids: ids
    results = measure(batches, fns, args.repeats)

    baseline = results["keras_hub MaskedLMMaskGenerator"]
    print(f"batch {args.batch_size} x {args.sequence_length} tokens, {args.batches} batches, best of {args.repeats}")
    for name, value in results.items():
        print(f"{name:36s} {value:10.0f} rows/s   {value / baseline:5.2f}x keras-hub")


if __name__ == "__main__":
    main()
