"""What pre-training buys downstream: the three recipes from a pre-trained encoder and from random init.

    python benchmarks/bench_transfer.py [--preset tiny] [--steps 3000] [--work runs/bench_transfer]

1. A WordPiece vocabulary and a masked LM pre-trained with `keras-mlm pretrain` on unlabelled English
   from ../shared/corpora (WikiText-2, the Gutenberg books, Shakespeare: no task text), `--steps` steps.
2. Each recipe twice with the same flags, vocabulary and encoder size: `--run` (the pre-trained encoder)
   and `--preset --vocab` (random init):
     SST-2     classification.py, full training set, dev accuracy
     WNUT-17   ner.py, train -> test entity F1 (seqeval-exact)
     SQuAD 2.0 qa.py on the 626-question sample, --split-dev 0.5 (one article trains, the other is dev), F1
3. One table: metric, pre-trained, random init, gain. Every step runs through the CLI and the recipe
   scripts exactly as a user would; the numbers are those the recipes write to metrics.json.

keras-hub has no token-classification or QA task for Keras 3 (keras-team/keras-hub#624, #625), so there
is no keras-hub column here; bench_model.py and bench_data.py compare speed with keras-hub.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPORA = ROOT / ".." / "shared" / "corpora"
TASKS = CORPORA / "tasks"


def run(command, log):
    """Runs a command, appending its output to `log`; stops the benchmark if it fails."""
    started = time.time()
    with open(log, "a", encoding="utf-8") as f:
        f.write(f"\n$ {' '.join(map(str, command))}\n")
        f.flush()
        done = subprocess.run([str(c) for c in command], stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    if done.returncode:
        sys.exit(f"failed ({done.returncode}): {' '.join(map(str, command))}; see {log}")
    return time.time() - started


def pretraining_text():
    books = sorted((CORPORA / "gutenberg").glob("*.txt"))
    return [CORPORA / "wikitext-2" / "valid.txt", CORPORA / "wikitext-2" / "test.txt", CORPORA / "tinyshakespeare" / "input.txt", *books]


def recipes(args):
    """(name, script, flags, metric path) of each task."""
    common = ["--epochs", str(args.epochs), "--batch-size", "32", "--seq-len", str(args.seq_len), "--learning-rate", str(args.learning_rate)]
    return [
        ("SST-2 dev accuracy", "classification.py",
         ["--train", TASKS / "sst2" / "train.tsv", "--dev", TASKS / "sst2" / "dev.tsv", *common], ("dev", "accuracy")),
        ("WNUT-17 test entity F1", "ner.py",
         ["--train", TASKS / "wnut17" / "train.conll", "--dev", TASKS / "wnut17" / "dev.conll", "--test", TASKS / "wnut17" / "test.conll", *common],
         ("test", "f1")),
        ("SQuAD 2.0 sample dev F1", "qa.py",
         ["--train", TASKS / "squad_v2_sample" / "dev_subset.json", "--split-dev", "0.5", *common[:4], "--seq-len", "192",
          "--learning-rate", str(args.learning_rate)], ("dev", "f1")),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--steps", type=int, default=3000, help="pre-training steps")
    parser.add_argument("--batch-size", type=int, default=32, help="pre-training batch")
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--epochs", type=int, default=3, help="fine-tuning epochs")
    parser.add_argument("--seq-len", type=int, default=128, help="fine-tuning row length (QA uses 192)")
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="fine-tuning peak learning rate (small encoders like it high)")
    parser.add_argument("--work", default="runs/bench_transfer")
    parser.add_argument("--tasks", default="all", help="comma-separated subset of sst2,ner,qa")
    args = parser.parse_args()
    work = (ROOT / args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    log = work / "log.txt"
    cli = [sys.executable, "-m", "keras_mlm.cli.main"]
    text = pretraining_text()

    vocab = work / "vocab.txt"
    if not vocab.exists():
        run([*cli, "vocab", *text[:3], *text[3:13], "--vocab-size", args.vocab_size, "--out", vocab], log)
    seconds = run([*cli, "pretrain", "--data", *text, "--vocab", vocab, "--preset", args.preset, "--steps", args.steps,
                   "--batch-size", args.batch_size, "--seq-len", 128, "--out", work / "pretrained"], log)
    summary = json.loads((work / "pretrained" / "summary.json").read_text())
    print(f"pre-trained {args.preset} for {summary['step']} steps in {seconds / 60:.1f} min: masked loss {summary.get('loss', float('nan')):.3f}")

    wanted = {"all": None}.get(args.tasks, set(args.tasks.split(",")))
    keys = {"classification.py": "sst2", "ner.py": "ner", "qa.py": "qa"}
    rows = []
    for name, script, flags, (split, field) in recipes(args):
        if wanted is not None and keys[script] not in wanted:
            continue
        values = {}
        for start, start_flags in (("pre-trained", ["--run", work / "pretrained"]), ("random init", ["--preset", args.preset, "--vocab", vocab])):
            out = work / f"{keys[script]}-{start.replace(' ', '-')}"
            elapsed = run([sys.executable, ROOT / "recipes" / script, *start_flags, *flags, "--out", out], log)
            values[start] = json.loads((out / "metrics.json").read_text())[split][field]
            print(f"  {name}, {start}: {values[start]:.4f} ({elapsed / 60:.1f} min)")
        rows.append((name, values["pre-trained"], values["random init"]))

    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores; preset {args.preset}, "
          f"{summary['step']} pre-training steps of {args.batch_size} x 128")
    print("| task, metric | pre-trained | random init | gain |\n|---|---:|---:|---:|")
    for name, pre, rand in rows:
        print(f"| {name} | {pre:.4f} | {rand:.4f} | {pre - rand:+.4f} |")


if __name__ == "__main__":
    main()
