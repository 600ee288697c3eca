"""CLI verbs of the model: pretrain, fill-mask, evaluate, score, demo."""

import argparse
import json
import os
import sys

from keras_mlm.cli.data_commands import MASKING_FLAGS, add_masking_arguments
from keras_mlm.errors import UserInputError

DEMO_EXAMPLES = ("paris is the [MASK] of france", "the [MASK] brown [MASK] jumps")

# Flag -> (section, key) of the run config; a flag left out keeps the file's (or the default) value.
TRAINING_FLAGS = {
    "steps": int, "batch_size": int, "learning_rate": float, "seed": int, "checkpoint_every": int,
    "keep_checkpoints": int, "warmup_fraction": float, "decay": str, "weight_decay": float, "clip_norm": float, "log_every": int,
    "sample_every": int, "precision": str, "strategy": str, "cpu_devices": int, "num_workers": int,
}


def add_training_arguments(parser):
    group = parser.add_argument_group("training (override --config)")
    group.add_argument("--config", default=None, help="YAML/JSON file with preset/model/data/masking/training sections")
    group.add_argument("--preset", default=None, help="tiny, mini, small, medium, base, large (default tiny)")
    for flag, kind in TRAINING_FLAGS.items():
        group.add_argument("--" + flag.replace("_", "-"), type=kind, default=None)
    group.add_argument("--jit-compile", action=argparse.BooleanOptionalAction, default=None, help="XLA-compile the train step")
    group.add_argument("--seq-len", type=int, default=None, help="row length when raw text is prepared on the fly")
    group.add_argument("--model", action="append", default=[], metavar="KEY=VALUE", help="override an encoder field, e.g. --model dropout=0.0")
    add_masking_arguments(parser)


def _parse_model_overrides(items):
    import yaml

    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise UserInputError(f"--model {item!r}: expected KEY=VALUE")
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides


def run_config_from_args(args):
    from keras_mlm.training.run_config import build_run_config, load_config_file

    file_values = load_config_file(args.config) if args.config else {}
    training = {k: getattr(args, k) for k in TRAINING_FLAGS}
    training["jit_compile"] = args.jit_compile
    overrides = {
        "preset": args.preset,
        "model": _parse_model_overrides(args.model),
        "data": {"seq_len": args.seq_len},
        "masking": {field: getattr(args, dest) for field, dest in MASKING_FLAGS.items()},
        "training": training,
    }
    return build_run_config(file_values, overrides, source=args.config or "flags")


def _pretrain(args):
    config = run_config_from_args(args)
    from keras_mlm.training.strategy import split_cpu

    split_cpu(config.training.cpu_devices)  # before TensorFlow runs its first op
    if config.training.num_workers > 1:
        from keras_mlm.training.multi_worker import launch_local_workers

        return launch_local_workers(sys.argv[1:], config.training.num_workers)
    from keras_mlm.training.pretrain import pretrain

    summary = pretrain(config, args.data, args.vocab, args.out)
    print(f"done: step {summary['step']}, loss {summary.get('loss', float('nan')):.4f}, model in {os.path.join(args.out, 'model.keras')}")


def _print_fill(results, as_json):
    if as_json:
        payload = [{"text": r["text"], "masks": r["masks"], "filled": r["filled"]} for r in results]
        print(json.dumps(payload[0] if len(payload) == 1 else payload, indent=2))
        return
    for r in results:
        print(r["text"])
        for n, mask in enumerate(r["masks"], start=1):
            guesses = "  ".join(f"{p['token']} {p['probability']:.3f}" for p in mask["predictions"])
            print(f"  [MASK] {n} (position {mask['position']}): {guesses}")
        print(f"  -> {r['filled']}")


def _fill_mask(args):
    from keras_mlm.inference.fill_mask import FillMask
    from keras_mlm.inference.run import load_run

    run = load_run(args.run_dir)
    fill = FillMask(run.model, run.tokens, run.sequence_length, run.lowercase)
    _print_fill(fill(args.text, top_k=args.top_k, iterative=args.iterative), args.json)


def _evaluate(args):
    from keras_mlm.evaluation.evaluate import evaluate
    from keras_mlm.inference.run import load_run

    run = load_run(args.run_dir)
    result = evaluate(run.model, run.tokens, args.data, batch_size=args.batch_size, seq_len=run.sequence_length)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"loss {result['loss']:.4f}  accuracy {result['accuracy']:.4f}  perplexity {result['perplexity']:.2f}  ({result['tokens']:,} masked tokens)")


def _score(args):
    from keras_mlm.evaluation.evaluate import score
    from keras_mlm.inference.run import load_run

    run = load_run(args.run_dir)
    results = score(run.model, run.tokens, args.sentences, run.sequence_length, lowercase=run.lowercase)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for r in results:
        print(f"{r['pll']:10.3f}  pseudo-ppl {r['pseudo_perplexity']:8.2f}  {r['text']}")


def _demo(args):
    from keras_mlm.demo import run_demo

    results = run_demo(args.out, steps=args.steps, seed=args.seed, verbose=args.verbose)
    _print_fill(results, args.json)


def register(verbs):
    p = verbs.add_parser("pretrain", help="pre-train a masked LM with model.fit")
    p.add_argument("--data", required=True, nargs="+", help="a shards directory, or text files/folders (prepared on the fly)")
    p.add_argument("--vocab", required=True)
    p.add_argument("--out", required=True, help="run directory (model, checkpoints, logs, config)")
    add_training_arguments(p)
    p.set_defaults(run=_pretrain)

    p = verbs.add_parser("fill-mask", help="predict the [MASK] tokens of a text")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("text", metavar="TEXT", nargs="+")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--iterative", action="store_true", help="fill the most confident mask first, then re-predict the rest")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_fill_mask)

    p = verbs.add_parser("evaluate", help="held-out masked loss, accuracy and perplexity")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("data", metavar="DATA", nargs="+", help="a shards directory or text files/folders")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_evaluate)

    p = verbs.add_parser("score", help="pseudo-log-likelihood of sentences")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("sentences", metavar="SENTENCE", nargs="+")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_score)

    p = verbs.add_parser("demo", help="train the tiny preset on the built-in demo corpus and fill masks")
    p.add_argument("--out", default=None, help="keep the run here (default: a temporary folder)")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2])
    p.set_defaults(run=_demo)
