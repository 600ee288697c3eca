"""Is mixed_bfloat16 a correct default? Held-out loss after the same steps, and speed, against float32.

    python benchmarks/bench_precision.py [--steps 600] [--preset tiny] [--batch-size 32] [--seq-len 128]

Real text: a WordPiece vocabulary and the `tiny` encoder trained on five Project Gutenberg books of
../shared/corpora, evaluated (`keras-mlm evaluate`'s fixed mask, the first `--eval-tokens` tokens) on a
sixth book none of the training text comes from. Three runs of `pretrain`, identical but for precision
and seed: float32 seed 0, mixed_bfloat16 seed 0, float32 seed 1. The float32 seed-to-seed difference is
the yardstick: bfloat16 is as good as float32 when its difference from float32 is of that size.
The training curves (the loss logged every 25 steps, falling from ln(8192) = 9.0) are compared the same
way, over the whole run. Tokens/s is the median of the training log's intervals (tracing excluded).
Prints a JSON line and a table; `--out DIR` keeps the runs (and reuses the vocabulary). 11 minutes
with the defaults on 2 CPU cores shared with other jobs (measured).
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

CORPORA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "corpora", "gutenberg")
TRAIN_BOOKS = ("pg1342_pride_and_prejudice.txt", "pg11_alice_in_wonderland.txt", "pg1661_adventures_of_sherlock_holmes.txt",
               "pg35_time_machine.txt", "pg2591_grimms_fairy_tales.txt")  # fmt: skip
HELD_OUT_BOOK = "pg2852_hound_of_the_baskervilles.txt"
RUNS = (("float32", 0), ("mixed_bfloat16", 0), ("float32", 1))


def logged(run_dir, tag):
    """{step: value} of a scalar of a run's training log."""
    import tensorflow as tf
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(os.path.join(run_dir, "logs", "train"), size_guidance={"tensors": 0})
    events.Reload()
    return {e.step: float(tf.make_ndarray(e.tensor_proto)) for e in events.Tensors(tag)}


def tokens_per_second(run_dir):
    values = list(logged(run_dir, "tokens_per_second").values())
    return statistics.median(values[1:] or values)  # the first interval includes tracing


def largest_gap(run_a, run_b, tag="loss"):
    """The largest difference between two runs' training curves (the running mean of each interval)."""
    a, b = logged(run_a, tag), logged(run_b, tag)
    return max(abs(a[step] - b[step]) for step in a if step in b)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--eval-tokens", type=int, default=200_000)
    parser.add_argument("--out", default=None, help="keep the runs here (default: a temporary folder)")
    args = parser.parse_args(argv)

    from keras_mlm.evaluation.evaluate import evaluate
    from keras_mlm.inference.run import load_run
    from keras_mlm.tokenizers import train_vocabulary, write_vocabulary
    from keras_mlm.training.pretrain import pretrain
    from keras_mlm.training.run_config import build_run_config
    from keras_mlm.training.strategy import cpu_flags, resolve_precision

    root = args.out or tempfile.mkdtemp(prefix="keras-mlm-bench-precision-")
    books = [os.path.join(CORPORA, name) for name in TRAIN_BOOKS]
    vocab = os.path.join(root, "vocab.txt")
    if not os.path.exists(vocab):
        write_vocabulary(train_vocabulary(books, args.vocab_size), vocab)
    results, run_dirs = [], []
    for precision, seed in RUNS:
        run_dir = os.path.join(root, f"{precision}-seed{seed}")
        run_dirs.append(run_dir)
        training = {"steps": args.steps, "batch_size": args.batch_size, "learning_rate": args.learning_rate, "seed": seed,
                    "precision": precision, "checkpoint_every": args.steps, "log_every": 25, "sample_every": 10 * args.steps}  # fmt: skip
        config = build_run_config({"preset": args.preset, "data": {"seq_len": args.seq_len}, "training": training})
        begin = time.perf_counter()
        summary = pretrain(config, books, vocab, run_dir, verbose=0)
        seconds = time.perf_counter() - begin
        run = load_run(run_dir)
        held_out = evaluate(run.model, run.tokens, [os.path.join(CORPORA, HELD_OUT_BOOK)], seq_len=args.seq_len, max_tokens=args.eval_tokens)
        results.append({"precision": precision, "seed": seed, "train_loss": summary["loss"], "held_out_loss": held_out["loss"],
                        "held_out_accuracy": held_out["accuracy"], "tokens_per_second": tokens_per_second(run_dir), "seconds": seconds})  # fmt: skip
        print(json.dumps(results[-1]), flush=True)

    f32, bf16, f32_other_seed = results
    report = {
        "steps": args.steps, "preset": args.preset, "batch": [args.batch_size, args.seq_len],
        "auto_picks": resolve_precision("auto"),
        "cpu_bfloat16_flags": sorted(cpu_flags() & {"avx512_bf16", "amx_bf16"}),
        "bf16_minus_fp32_held_out_loss": bf16["held_out_loss"] - f32["held_out_loss"],
        "seed1_minus_seed0_fp32_held_out_loss": f32_other_seed["held_out_loss"] - f32["held_out_loss"],
        "training_curve_largest_gap_bf16_vs_fp32": largest_gap(run_dirs[0], run_dirs[1]),
        "training_curve_largest_gap_seed1_vs_seed0": largest_gap(run_dirs[0], run_dirs[2]),
        "bf16_speedup": bf16["tokens_per_second"] / f32["tokens_per_second"],
    }  # fmt: skip
    print(json.dumps(report))
    print(f"\n{args.preset}, {args.steps} steps of {args.batch_size} x {args.seq_len}, held-out: {HELD_OUT_BOOK} (first {args.eval_tokens:,} tokens)")
    print("| run | held-out loss | held-out accuracy | train tokens/s |\n|---|---:|---:|---:|")
    for r in results:
        print(f"| {r['precision']}, seed {r['seed']} | {r['held_out_loss']:.4f} | {r['held_out_accuracy']:.4f} | {r['tokens_per_second']:,.0f} |")


if __name__ == "__main__":
    main()
