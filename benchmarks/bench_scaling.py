"""Training throughput (tokens/s) for 1 vs 2 replicas, each precision, XLA on/off, side by side.

    python benchmarks/bench_scaling.py [--preset tiny] [--seq-len 128] [--batch-size 32] [--steps 10] [--repeats 3]

Each configuration runs in a fresh process (logical CPU devices must be set up before TensorFlow
starts): the masked LM of the preset is built and compiled in the strategy scope exactly as
`keras_mlm.training.pretrain` does, fed by the real input pipeline (`pretraining_dataset` over
shards of random words, masked per batch), and `fit` runs `--warmup` steps (tracing, XLA compilation)
then `--repeats` times `--steps` timed steps; the best repeat counts (the machine may be shared). A
configuration whose first timed step takes over `--slow-step` seconds is reported from that step
alone (mixed_float16 without XLA on a CPU: float16 kernels are emulated). XLA with 2 replicas is
refused by `check_jit_compile` and reported as such. Replicas are logical CPU devices (`--cpu-devices`) when there is no GPU,
so "2 replicas" on a CPU measures the cost of mirroring, not a second processor: both replicas share
the same cores. The global batch is the same for every row (per-replica batch = batch / replicas).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


def make_shards(directory, vocabulary_size, seq_len, rows, seed=0):
    """A vocabulary of `vocabulary_size` ids (specials + w0, w1, ...) and shards of random words."""
    import numpy as np

    from keras_mlm.data.prepare import DataConfig, prepare
    from keras_mlm.tokenizers import SPECIAL_TOKENS

    tokens = list(SPECIAL_TOKENS) + [f"w{i}" for i in range(vocabulary_size - len(SPECIAL_TOKENS))]
    rng = np.random.default_rng(seed)
    text = os.path.join(directory, "corpus.txt")
    with open(text, "w", encoding="utf-8") as f:
        documents = rng.integers(len(SPECIAL_TOKENS), len(tokens), (rows // 4, 4 * seq_len))  # of ~4 rows each
        f.writelines(" ".join(tokens[i] for i in document) + "\n\n" for document in documents)
    prepare([text], tokens, os.path.join(directory, "shards"), DataConfig(seq_len=seq_len), overwrite=True)
    return os.path.join(directory, "shards"), tokens


def measure(args, replicas, precision, jit_compile):
    """Tokens per second of `args.steps` training steps (after `args.warmup`), in this process."""
    from keras_mlm.training.strategy import split_cpu

    split_cpu(replicas if replicas > 1 else 0)
    import keras
    import tensorflow as tf

    from keras_mlm.data.dataset import pretraining_dataset
    from keras_mlm.masking import MLMMasker
    from keras_mlm.training.pretrain import _dummy_batch, compile_masked_lm
    from keras_mlm.training.run_config import build_run_config
    from keras_mlm.training.strategy import (
        check_jit_compile,
        distribute_dataset,
        keras_fit_fixes,
        make_strategy,
        set_precision,
    )

    with tempfile.TemporaryDirectory() as scratch:
        shards, tokens = make_shards(scratch, args.vocabulary_size, args.seq_len, rows=max(4 * args.batch_size, 512))
        config = build_run_config(
            {"preset": args.preset, "data": {"seq_len": args.seq_len}},
            {"training": {"steps": 10_000, "batch_size": args.batch_size, "precision": precision, "jit_compile": jit_compile}},
        )
        strategy = make_strategy("mirrored" if replicas > 1 else "auto", replicas if replicas > 1 else 0)
        assert strategy.num_replicas_in_sync == replicas, strategy
        check_jit_compile(strategy, jit_compile)
        keras.utils.set_random_seed(0)
        set_precision(precision)
        masker = MLMMasker.from_vocabulary(tokens, args.seq_len, config.masking, seed=0)
        with strategy.scope():
            from keras_mlm.models import build_masked_lm

            model = build_masked_lm(config.encoder_config(len(tokens)))
            compile_masked_lm(model, config.training)
            model(_dummy_batch(2, args.seq_len, masker.max_selections))

        def dataset_fn(context):
            return pretraining_dataset(shards, args.batch_size, masker, seed=0, shuffle_buffer=1000, input_context=context)

        dataset = distribute_dataset(strategy, dataset_fn, args.batch_size)

        def timed(steps):
            start = time.perf_counter()
            model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
            return (time.perf_counter() - start) / steps

        with keras_fit_fixes():
            model.fit(dataset, epochs=1, steps_per_epoch=args.warmup, verbose=0)  # trace / compile
            step_seconds, steps = timed(1), 1
            if step_seconds < args.slow_step:
                step_seconds, steps = min(timed(args.steps) for _ in range(args.repeats)), args.steps
        return {
            "replicas": replicas,
            "precision": precision,
            "jit_compile": jit_compile,
            "tokens_per_second": args.batch_size * args.seq_len / step_seconds,
            "seconds_per_step": step_seconds,
            "timed_steps": steps,
            "device": "GPU" if tf.config.list_logical_devices("GPU") else "CPU",
        }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--vocabulary-size", type=int, default=8000)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per configuration; the best counts")
    parser.add_argument("--slow-step", type=float, default=5.0, help="seconds: a slower first step is reported alone")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (tracing, XLA compilation)")
    parser.add_argument("--replicas", default="1,2")
    parser.add_argument("--precisions", default=",".join(PRECISIONS))
    parser.add_argument("--jit", default="off,on", help="XLA settings to measure: off, on or both")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: one configuration, JSON
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args, **json.loads(args.one))))
        return 0

    base = [a for a in (argv if argv is not None else sys.argv[1:])]
    rows = []
    for replicas in map(int, args.replicas.split(",")):
        for precision in args.precisions.split(","):
            for jit in args.jit.split(","):
                one = json.dumps({"replicas": replicas, "precision": precision, "jit_compile": jit == "on"})
                done = subprocess.run([sys.executable, os.path.abspath(__file__), *base, "--one", one], capture_output=True, text=True, check=False)
                if done.returncode:
                    lines = done.stderr.strip().splitlines()
                    refused = next((line.split("UserInputError: ", 1)[1] for line in lines if "UserInputError: " in line), None)
                    rows.append({"replicas": replicas, "precision": precision, "jit_compile": jit == "on", "error": f"refused: {refused[:70]}..." if refused else f"failed: {lines[-1]}"})
                else:
                    rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
                print(f"  measured {rows[-1]}", file=sys.stderr, flush=True)

    reference = next((r["tokens_per_second"] for r in rows if "error" not in r), None)
    print(f"\npreset {args.preset}, seq_len {args.seq_len}, global batch {args.batch_size}, best of {args.repeats} x {args.steps} timed steps, "
          f"device {next((r['device'] for r in rows if 'device' in r), '?')}, {os.cpu_count()} CPU cores")  # fmt: skip
    print(f"{'replicas':>8}  {'precision':<15}{'XLA':<5}{'tokens/s':>10}  {'ms/step':>8}  {'vs first':>8}")
    for r in rows:
        head = f"{r['replicas']:>8}  {r['precision']:<15}{'on' if r['jit_compile'] else 'off':<5}"
        if "error" in r:
            print(f"{head}{r['error']}")
        else:
            note = "  (1 step)" if r["timed_steps"] == 1 else ""
            print(f"{head}{r['tokens_per_second']:>10,.0f}  {1000 * r['seconds_per_step']:>8.1f}  {r['tokens_per_second'] / reference:>8.2f}{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
