"""CLI verbs of the model: pretrain, fill-mask, evaluate, score, demo."""

import argparse
import dataclasses
import json
import os

from keras_mlm.cli.data_commands import MASKING_FLAGS, add_masking_arguments
from keras_mlm.errors import UserInputError

# Flag -> (type, help) of a TrainingConfig field; a flag left out keeps the file's (or the default) value.
TRAINING_FLAGS = {
    "steps": (int, "optimizer steps in the whole run (default 1000; with --max-time: at most this many, default no limit)"),
    "batch_size": (int, "global batch, split across replicas"),
    "learning_rate": (float, "peak learning rate, reached at the end of warm-up"),
    "seed": (int, "seeds weights, shuffling and masking"),
    "checkpoint_every": (int, "steps between checkpoints and resumable backups"),
    "keep_checkpoints": (int, "newest checkpoints kept"),
    "warmup_fraction": (float, "share of the planned steps spent warming up linearly from 0"),
    "decay": (str, "after warm-up: linear or cosine"),
    "decay_fraction": (float, "share of the planned steps, at the end, over which the learning rate decays; before it the peak is held "
                              "(1: decay over every step after warm-up, as BERT; 0.2: warm-up-stable-decay)"),
    "weight_decay": (float, "AdamW weight decay (not on LayerNorm and biases)"),
    "clip_norm": (float, "global gradient-norm clipping; 0: off"),
    "log_every": (int, "steps between TensorBoard scalars, and log lines when stdout is not a terminal"),
    "sample_every": (int, "steps between fill-mask samples in TensorBoard"),
    "precision": (str, "auto (mixed_bfloat16 where the device computes bfloat16 natively, else float32), float32, mixed_bfloat16 or mixed_float16"),
    "strategy": (str, "auto, one-device, mirrored or multi-worker"),
    "cpu_devices": (int, "split the CPU into this many logical devices (0: leave as is)"),
    "num_workers": (int, ">1: start that many local worker processes"),
    "max_time": (str, "wall-clock budget, e.g. 90s, 20m, 2h: the schedule is planned for it and the run stops when it is spent (default: none)"),
    "eval_every": (int, "steps between validations on --eval-data (0: every --checkpoint-every steps); also at the end"),
    "eval_tokens": (int, "validation reads at most this many tokens (rows x seq-len) of --eval-data"),
    "objective": (str, "mlm; mlm+nsp (bert: next-sentence prediction, as BERT was published); mlm+sop (albert: sentence-order prediction)"),
}


def _default_text(field):
    from keras_mlm.training.config import TrainingConfig

    default = {f.name: f.default for f in dataclasses.fields(TrainingConfig)}[field]
    return f" (default: {default})"


def add_training_arguments(parser):
    group = parser.add_argument_group("training (override --config)")
    group.add_argument("--config", default=None, help="YAML/JSON file with architecture/preset/model/data/masking/training sections (default: none)")
    group.add_argument("--architecture", default=None, help="modern, bert, roberta, albert, electra or xlnet (default: modern, the best held-out model per "
                       "CPU-minute measured by benchmarks/bench_quality.py; bert for a checkpoint other BERT tools read; with "
                       "--init-from: the source's). roberta reads a byte-level BPE vocabulary and defaults to RoBERTa's optimizer settings")
    group.add_argument("--preset", default=None, help="tiny, mini, small, medium, base, large, and the architecture's own (albert: xlarge, xxlarge; modern: "
                       "modernbert-base, modernbert-large; electra: electra-small, electra-base, electra-large; xlnet: xlnet-base, xlnet-large) "
                       "(default: tiny; with --init-from: the source's)")
    for flag, (kind, text) in TRAINING_FLAGS.items():
        if "default" not in text:
            text += _default_text(flag)
        group.add_argument("--" + flag.replace("_", "-"), type=kind, default=None, help=text)
    group.add_argument("--jit-compile", action=argparse.BooleanOptionalAction, default=None, help="XLA-compile the train step" + _default_text("jit_compile"))
    group.add_argument("--keep-best", action=argparse.BooleanOptionalAction, default=None,
                       help="keep the model of the lowest validation loss as RUN_DIR/best.keras" + _default_text("keep_best"))
    group.add_argument("--seq-len", type=int, default=None, help="row length when raw text is prepared on the fly (default: 128)")
    group.add_argument("--model", action="append", default=[], metavar="KEY=VALUE", help="override an encoder field, e.g. --model dropout=0.0 (default: the preset's)")
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
    training["keep_best"] = getattr(args, "keep_best", None)
    overrides = {
        "architecture": args.architecture,
        "preset": args.preset,
        "model": _parse_model_overrides(args.model),
        "data": {"seq_len": args.seq_len},
        "masking": {field: getattr(args, dest) for field, dest in MASKING_FLAGS.items()},
        "training": training,
    }
    return build_run_config(file_values, overrides, source=args.config or "flags", default_architecture=_folder_architecture(args))


def _folder_architecture(args):
    """The architecture of the --init-from source, or of the run --out already holds (a resume): what a
    command that names none continues with, its defaults and objectives included (None: neither)."""
    from keras_mlm.inference.run import read_run_config
    from keras_mlm.training.run_config import LEGACY_ARCHITECTURE

    folder = getattr(args, "init_from", None) or getattr(args, "out", None)
    config = read_run_config(folder) if folder else {}
    return (config.get("architecture") or LEGACY_ARCHITECTURE) if config else None


def _pretrain(args):
    config = run_config_from_args(args)
    from keras_mlm.training.strategy import split_cpu

    split_cpu(config.training.cpu_devices)  # before TensorFlow runs its first op
    if config.training.num_workers > 1:
        from keras_mlm.training.multi_worker import launch_local_workers

        return launch_local_workers(config, args.data, args.vocab, args.out, init_from=args.init_from, eval_data=args.eval_data)
    from keras_mlm.training.pretrain import pretrain

    summary = pretrain(config, args.data, args.vocab, args.out, init_from=args.init_from, eval_data=args.eval_data)
    stopped = {"steps": "", "max_time": " (time budget spent)"}.get(summary["stop_reason"], f" ({summary['stop_reason']})")
    validation = summary.get("validation")
    held_out = f", validation loss {validation['loss']:.4f}" if validation else ""
    print(f"done: step {summary['step']}{stopped}, loss {summary.get('loss', float('nan')):.4f}{held_out}, model in {os.path.join(args.out, 'model.keras')}")


def _print_fill(results, as_json):
    if as_json:
        payload = [{"text": r["text"], "masks": r["masks"], "filled": r["filled"]} for r in results]
        print(json.dumps(payload[0] if len(payload) == 1 else payload, indent=2))
        return
    for r in results:
        print(r["text"])
        for n, mask in enumerate(r["masks"], start=1):
            guesses = "  ".join(f"{p['text'].strip() or p['token']} {p['probability']:.3f}" for p in mask["predictions"])
            print(f"  [MASK] {n} (position {mask['position']}): {guesses}")
        print(f"  -> {r['filled']}")


def _fill_mask(args):
    from keras_mlm.inference.fill_mask import FillMask
    from keras_mlm.inference.run import load_run

    run = load_run(args.run_dir)
    fill = FillMask(run.masked_lm, run.vocabulary, run.sequence_length)
    _print_fill(fill(args.text, top_k=args.top_k, iterative=args.iterative), args.json)


def _evaluate(args):
    from keras_mlm.evaluation.evaluate import evaluate
    from keras_mlm.inference.run import load_run

    run = load_run(args.run_dir, model_path=args.model_path)
    result = evaluate(run.masked_lm, run.vocabulary, args.data, batch_size=args.batch_size, seq_len=run.sequence_length,
                      max_tokens=args.max_tokens)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"loss {result['loss']:.4f}  accuracy {result['accuracy']:.4f}  perplexity {result['perplexity']:.2f}  ({result['tokens']:,} masked tokens)")


def _score(args):
    from keras_mlm.evaluation.evaluate import score
    from keras_mlm.inference.run import load_run

    run = load_run(args.run_dir)
    results = score(run.masked_lm, run.vocabulary, args.sentences, run.sequence_length)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for r in results:
        print(f"{r['pll']:10.3f}  pseudo-ppl {r['pseudo_perplexity']:8.2f}  {r['text']}")


def _demo(args):
    from keras_mlm.demo import run_demo

    picture = os.path.join(args.out, "illustration.html") if args.out else "keras-mlm-demo.html"
    results = run_demo(args.out, steps=args.steps, seed=args.seed, verbose="auto" if args.verbose is None else args.verbose,
                       illustration=picture)
    _print_fill(results, args.json)
    if not args.json:
        print(f"illustration of the first sentence (masking, context on both sides, P(capital)): {picture}")


def register(verbs):
    p = verbs.add_parser("pretrain", help="pre-train a masked LM with model.fit")
    p.add_argument("--data", required=True, nargs="+", help="a shards directory, or text files/folders (prepared on the fly)")
    p.add_argument("--vocab", required=True, help="the vocabulary `keras-mlm vocab` wrote: WordPiece vocab.txt, byte-level BPE folder or SentencePiece .model")
    p.add_argument("--out", required=True, help="run directory (model, checkpoints, logs, config)")
    p.add_argument("--init-from", default=None, metavar="RUN_DIR",
                   help="continue pre-training this run's model (its sizes, weights and vocabulary) on --data: "
                        "domain-adaptive pre-training, with a fresh optimizer and warm-up (default: random weights)")
    p.add_argument("--eval-data", default=None, nargs="+", metavar="TEXT_OR_SHARDS",
                   help="held-out shards directory or text: loss, accuracy and perplexity every --eval-every steps "
                        "and at the end, as `keras-mlm evaluate` computes them (default: none)")
    add_training_arguments(p)
    p.set_defaults(run=_pretrain)

    p = verbs.add_parser("fill-mask", help="predict the [MASK] tokens of a text")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("text", metavar="TEXT", nargs="+")
    p.add_argument("--top-k", type=int, default=5, help="predictions per [MASK]")
    p.add_argument("--iterative", action="store_true", help="fill the most confident mask first, then re-predict the rest")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=_fill_mask)

    p = verbs.add_parser("evaluate", help="held-out masked loss, accuracy and perplexity")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("data", metavar="DATA", nargs="+", help="a shards directory or text files/folders")
    p.add_argument("--batch-size", type=int, default=64, help="rows per evaluation batch")
    p.add_argument("--max-tokens", type=int, default=None,
                   help="read only the first max-tokens // seq-len rows, as `pretrain --eval-tokens` does (default: all)")
    p.add_argument("--model-path", default=None, help="evaluate this checkpoint, e.g. RUN_DIR/best.keras (default: RUN_DIR/model.keras)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=_evaluate)

    p = verbs.add_parser("score", help="pseudo-log-likelihood of sentences")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("sentences", metavar="SENTENCE", nargs="+")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=_score)

    p = verbs.add_parser("demo", help="train the tiny preset on the built-in demo corpus and fill masks")
    p.add_argument("--out", default=None, help="keep the run here (default: a temporary folder)")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: 2000)")
    p.add_argument("--seed", type=int, default=0, help="seeds the corpus, weights and masks")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--verbose", type=int, default=None, choices=[0, 1, 2],
                   help="0 silent, 1 progress bar, 2 a line per interval (default: a bar on a terminal, plain lines otherwise)")
    p.set_defaults(run=_demo)
