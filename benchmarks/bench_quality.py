"""Quality per CPU-minute: keras-mlm's defaults against the keras.io guide recipe on keras-hub, at equal wall-clock.

    python benchmarks/bench_quality.py [--minutes 5 15 60] [--seeds 0 1 2] [--work runs/bench_quality] [--paired]
    python benchmarks/bench_quality.py --only keras-mlm --label wsd --pretrain-flag=--decay-fraction=0.2   # a candidate

Both recipes train on the same text with the same WordPiece vocabulary and the same model size (3 layers,
hidden 256, feed-forward 512, 4 heads; batch 32 x 128), each for the same wall-clock budget on this
machine, and both are scored on the same held-out rows with keras-mlm's fixed evaluation mask (15%,
80/10/10, a pure function of the row), built once from three whole books that neither trained on:
The Adventures of Sherlock Holmes, A Tale of Two Cities, Dracula. Printed per budget and seed: masked
loss (nats), accuracy and perplexity; then the mean over seeds and keras-mlm's margin.

keras-mlm runs through its CLI, defaults unless a flag is the point: `keras-mlm pretrain --max-time`
(its data preparation counts in the budget, as the guide's tokenization does). A gated feed-forward
(the modern encoder's GeGLU) gets 2/3 of the feed-forward width, so both models have the same parameters.
`--paired` runs the two recipes at the same time, one core each (taskset), so whatever else the machine
does falls on both alike; results of every invocation collect in WORK/results.json (label/minutes/seed).

The guide recipe ("Pretraining a Transformer from scratch with KerasHub", keras.io), written from its
description on keras-hub layers: TokenAndPositionEmbedding -> LayerNorm(1e-5) -> Dropout(0.1) -> 3 x
TransformerEncoder(post-norm, dropout 0.1, epsilon 1e-5) -> MaskedLMHead tied to the token embedding;
MaskedLMMaskGenerator with 25% selection (at most 32 per row, 80/10/10); AdamW at a constant 5e-4; one
document (a blank-line paragraph) per row, truncated or padded to 128. Deviations from the guide, to make
the comparison fair: our vocabulary (trained on the training text) instead of BERT's uncased one; our
training text instead of WikiText-103; batch 32 instead of 128 (the size the issue measured); stopped by
the same wall-clock budget instead of 8 epochs.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from machine import cpu  # benchmarks/machine.py, beside this script

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
CORPORA = ROOT / ".." / "shared" / "corpora"
HELD_OUT = ("pg1661_adventures_of_sherlock_holmes.txt", "pg98_tale_of_two_cities.txt", "pg345_dracula.txt")
MODEL = {"num_layers": 3, "hidden_dim": 256, "intermediate_dim": 512, "num_heads": 4}


def model_flags(pretrain_flags):
    """`--model` flags of MODEL's size for the architecture keras-mlm will train (its default unless a flag
    names one). A gated feed-forward (modern: GeGLU) has three matrices where BERT's has two, so its
    `intermediate_dim` (the width of each branch) is 2/3 of MODEL's, rounded to 8: the same parameters."""
    from keras_mlm.training.run_config import DEFAULT_ARCHITECTURE

    architecture = DEFAULT_ARCHITECTURE
    for flag in pretrain_flags:
        if flag.startswith("--architecture="):
            architecture = flag.split("=", 1)[1]
    sizes = dict(MODEL)
    if architecture == "modern":
        sizes["intermediate_dim"] = 8 * round(2 * MODEL["intermediate_dim"] / 3 / 8)
    return [f"--model={k}={v}" for k, v in sizes.items()]
SEQ_LEN, BATCH = 128, 32


def split_corpus():
    """(training files, held-out files): whole books held out, everything else trains."""
    books = sorted((CORPORA / "gutenberg").glob("*.txt"))
    held_out = [b for b in books if b.name in HELD_OUT]
    train = [b for b in books if b.name not in HELD_OUT]
    train += [CORPORA / "wikitext-2" / "valid.txt", CORPORA / "wikitext-2" / "test.txt", CORPORA / "tinyshakespeare" / "input.txt"]
    return train, held_out


def train_guide(train_files, tokens, seconds, seed, log):
    """The keras.io guide's model and training loop for `seconds` of wall-clock; returns (model, steps)."""
    import keras
    import keras_hub
    import tensorflow as tf

    from keras_mlm.data.readers import iterate_documents
    from keras_mlm.tokenizers import make_tokenizer

    keras.utils.set_random_seed(seed)
    documents = [d for d in iterate_documents([str(f) for f in train_files]) if len(d) > 100]
    tokenizer = make_tokenizer(tokens, lowercase=True, sequence_length=SEQ_LEN)
    masker = keras_hub.layers.MaskedLMMaskGenerator(
        vocabulary_size=len(tokens), mask_selection_rate=0.25, mask_selection_length=32,
        mask_token_id=tokens.index("[MASK]"), unselectable_token_ids=[tokens.index("[PAD]")],
    )

    def preprocess(texts):
        outputs = masker(tokenizer(texts))
        features = {"token_ids": outputs["token_ids"], "mask_positions": outputs["mask_positions"]}
        return features, outputs["mask_ids"], outputs["mask_weights"]

    data = (tf.data.Dataset.from_tensor_slices(documents).shuffle(len(documents), seed=seed).repeat()
            .batch(BATCH, drop_remainder=True).map(preprocess, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))

    token_ids = keras.Input(shape=(SEQ_LEN,), dtype="int32", name="token_ids")
    embedding = keras_hub.layers.TokenAndPositionEmbedding(len(tokens), SEQ_LEN, MODEL["hidden_dim"])
    x = embedding(token_ids)
    x = keras.layers.LayerNormalization(epsilon=1e-5)(x)
    x = keras.layers.Dropout(0.1)(x)
    for _ in range(MODEL["num_layers"]):
        x = keras_hub.layers.TransformerEncoder(MODEL["intermediate_dim"], MODEL["num_heads"], dropout=0.1, layer_norm_epsilon=1e-5)(x)
    mask_positions = keras.Input(shape=(None,), dtype="int32", name="mask_positions")
    logits = keras_hub.layers.MaskedLMHead(token_embedding=embedding.token_embedding, activation="softmax")(x, mask_positions=mask_positions)
    model = keras.Model({"token_ids": token_ids, "mask_positions": mask_positions}, logits)
    model.compile(optimizer=keras.optimizers.AdamW(5e-4), loss=keras.losses.SparseCategoricalCrossentropy(),
                  weighted_metrics=["sparse_categorical_accuracy"])

    class Budget(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.started = time.time()

        def on_train_batch_end(self, batch, logs=None):
            if time.time() - self.started >= seconds:
                self.model.stop_training = True

    started = time.time()
    model.fit(data, epochs=1, steps_per_epoch=10**9, callbacks=[Budget()], verbose=0)
    steps = int(model.optimizer.iterations.numpy())
    with open(log, "a", encoding="utf-8") as f:
        f.write(f"guide seed {seed}: {steps} steps in {time.time() - started:.0f} s\n")
    return model, steps


class GuideForEvaluation:
    """The guide's model called with keras-mlm's evaluation batches (probabilities -> log for the loss)."""

    def __init__(self, model):
        self.model = model

    def __call__(self, x, training=False):
        import tensorflow as tf

        probabilities = self.model({"token_ids": x["token_ids"], "mask_positions": x["mask_positions"]}, training=training)
        return tf.math.log(tf.maximum(tf.cast(probabilities, tf.float32), 1e-30))  # logits up to a constant per row


def print_table(results, minutes_list, seeds, paired=False, measured_on=None):
    """The per-budget table: mean +/- sd over the seeds present, steps, and keras-mlm's margin in nats.
    `results`: {("keras-mlm" | "guide", minutes, seed): score}."""
    print(f"\nmachine: {measured_on or f'{cpu()}, {os.cpu_count()} CPU cores'}{' (one core per recipe, both at once)' if paired else ''}; "
          f"held-out masked tokens: {next(iter(results.values()))['tokens']:,}")
    print("| budget | keras-mlm loss (mean +/- sd of seeds) | steps | guide loss | steps | keras-mlm margin (nats) |\n|---|---:|---:|---:|---:|---:|")
    for minutes in minutes_list:
        means = {}
        for recipe in ("keras-mlm", "guide"):
            scores = [results[(recipe, minutes, s)] for s in seeds if (recipe, minutes, s) in results]
            losses = [s["loss"] for s in scores]
            mean = sum(losses) / len(losses) if losses else float("nan")
            sd = (sum((x - mean) ** 2 for x in losses) / (len(losses) - 1)) ** 0.5 if len(losses) > 1 else 0.0
            steps = sum(s["steps"] for s in scores) / len(scores) if scores else float("nan")
            means[recipe] = (mean, sd, steps, len(scores))
        (ours, ours_sd, our_steps, n), (guide, guide_sd, guide_steps, m) = means["keras-mlm"], means["guide"]
        print(f"| {minutes:g} min ({n} and {m} seeds) | {ours:.3f} +/- {ours_sd:.3f} | {our_steps:.0f} | {guide:.3f} +/- {guide_sd:.3f} | "
              f"{guide_steps:.0f} | {guide - ours:+.3f} |")


def saved_results(paths, label):
    """{("keras-mlm" | "guide", minutes, seed): score} from results files (label/minutes/seed keys; where two
    files hold a key, the earlier file's); keras-mlm's are `label`'s."""
    results = {}
    for path in paths:
        if Path(path).exists():
            for key, score in json.loads(Path(path).read_text()).items():
                if key.count("/") != 2:  # e.g. a tracked file's "about"
                    continue
                name, minutes, seed = key.split("/")
                if name in (label, "guide"):
                    results.setdefault(("keras-mlm" if name == label else "guide", float(minutes), int(seed)), score)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[5, 15, 60])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--work", default="runs/bench_quality")
    parser.add_argument("--only", choices=["keras-mlm", "guide"], default=None)
    parser.add_argument("--label", default="keras-mlm", help="name of keras-mlm's runs under --work (tuning candidates share the vocabulary and held-out rows)")
    parser.add_argument("--paired", action="store_true", help="run keras-mlm and the guide at the same time, one core each (taskset)")
    parser.add_argument("--pretrain-flag", action="append", default=[], help="extra flag for keras-mlm pretrain (repeatable), e.g. --pretrain-flag=--learning-rate=2e-3")
    parser.add_argument("--summary", action="store_true", help="train nothing: print the table of --label and the guide at "
                        "--minutes/--seeds from WORK/results.json and --results files")
    parser.add_argument("--results", action="append", default=[], help="a results file of earlier invocations "
                        "(e.g. benchmarks/results/bench_quality.json, same machine) merged into --summary (repeatable)")
    args = parser.parse_args()
    if args.summary:
        work = (ROOT / args.work).resolve()
        results = saved_results([work / "results.json", *args.results], args.label)
        results = {k: v for k, v in results.items() if k[1] in args.minutes and k[2] in args.seeds}
        if not results:
            raise SystemExit(f"no results of {args.label} or the guide at {args.minutes} minutes, seeds {args.seeds}")
        machines = sorted({f"{v.get('machine', 'not recorded')} ({v.get('cpus', '?')} core(s) a run)" for v in results.values()})
        print_table(results, args.minutes, args.seeds, measured_on="; ".join(machines))
        return

    from keras_mlm.evaluation.evaluate import evaluate
    from keras_mlm.inference.run import load_run
    from keras_mlm.tokenizers import load_vocabulary

    work = (ROOT / args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    log = work / "log.txt"
    train_files, held_out = split_corpus()
    cli = [sys.executable, "-m", "keras_mlm.cli.main"]
    vocab = work / "vocab.txt"
    if not vocab.exists():
        subprocess.run([*cli, "vocab", *map(str, train_files), "--vocab-size", str(args.vocab_size), "--out", str(vocab)], check=True)
    tokens = load_vocabulary(str(vocab))
    held_out_shards = work / "held_out"
    if not (held_out_shards / "manifest.json").exists():
        subprocess.run([*cli, "prepare", *map(str, held_out), "--vocab", str(vocab), "--seq-len", str(SEQ_LEN), "--out", str(held_out_shards)], check=True)

    results = {}
    if args.paired:
        # Each (budget, seed): keras-mlm on core 1 and the guide on core 0, started together, so the two
        # recipes share whatever else the machine does; each process sees one core.
        for minutes in args.minutes:
            for seed in args.seeds:
                common = ["--minutes", f"{minutes:g}", "--seeds", str(seed), "--work", str(work), "--vocab-size", str(args.vocab_size)]
                ours = [*common, "--only", "keras-mlm", "--label", args.label, *(f"--pretrain-flag={f}" for f in args.pretrain_flag)]
                jobs = [subprocess.Popen(["taskset", "-c", core, sys.executable, __file__, *flags], stdout=subprocess.PIPE, text=True)
                        for core, flags in (("1", ours), ("0", [*common, "--only", "guide"]))]
                for job in jobs:
                    output, _ = job.communicate()
                    print("\n".join(line for line in output.splitlines() if " min seed " in line), flush=True)
                    if job.returncode:
                        raise SystemExit(f"a paired run failed (exit {job.returncode})")
        saved = saved_results([work / "results.json"], args.label)
        results = {k: v for k, v in saved.items() if k[1] in args.minutes and k[2] in args.seeds}
    for minutes in args.minutes if not args.paired else ():
        for seed in args.seeds:
            if args.only != "guide":
                out = work / f"{args.label}-{minutes:g}m-seed{seed}"
                subprocess.run([*cli, "pretrain", "--data", *map(str, train_files), "--vocab", str(vocab), "--out", str(out),
                                "--max-time", f"{minutes:g}m", "--batch-size", str(BATCH), "--seq-len", str(SEQ_LEN), "--seed", str(seed),
                                *model_flags(args.pretrain_flag), *args.pretrain_flag], check=True, stdout=open(log, "a"), stderr=subprocess.STDOUT)
                run = load_run(str(out))
                score = evaluate(run.model, tokens, str(held_out_shards))
                score["steps"] = json.loads((out / "summary.json").read_text())["step"]
                score.update(machine=cpu(), cpus=len(os.sched_getaffinity(0)), flags=args.pretrain_flag)
                results[("keras-mlm", minutes, seed)] = score
                print(f"keras-mlm {minutes:g} min seed {seed}: loss {score['loss']:.3f} accuracy {score['accuracy']:.3f} "
                      f"perplexity {score['perplexity']:.1f} ({score['steps']} steps)", flush=True)
            if args.only != "keras-mlm":
                model, steps = train_guide(train_files, tokens, minutes * 60, seed, log)
                score = evaluate(GuideForEvaluation(model), tokens, str(held_out_shards))
                score["steps"] = steps
                score.update(machine=cpu(), cpus=len(os.sched_getaffinity(0)))
                results[("guide", minutes, seed)] = score
                print(f"guide     {minutes:g} min seed {seed}: loss {score['loss']:.3f} accuracy {score['accuracy']:.3f} "
                      f"perplexity {score['perplexity']:.1f} ({steps} steps)", flush=True)

    print_table(results, args.minutes, args.seeds, paired=args.paired)
    # Every result of every invocation, keyed label/minutes/seed ("guide" for the guide recipe).
    import fcntl

    with open(work / "results.lock", "w") as lock:  # two invocations at once (one per core) merge in turn
        fcntl.flock(lock, fcntl.LOCK_EX)
        saved = json.loads((work / "results.json").read_text()) if (work / "results.json").exists() else {}
        saved.update({f"{args.label if r == 'keras-mlm' else r}/{m:g}/{s}": v for (r, m, s), v in results.items()})
        tmp = work / f"results.json.tmp{os.getpid()}"
        tmp.write_text(json.dumps(saved, indent=2))
        tmp.replace(work / "results.json")


if __name__ == "__main__":
    main()
