"""Extractive question answering (SQuAD 1.1 / 2.0): fine-tune a pre-trained keras-mlm encoder.

    python recipes/qa.py --run runs/mini \
        --train ../shared/corpora/tasks/squad_v2_sample/dev_subset.json --split-dev 0.5 --out runs/squad
    keras-mlm export runs/squad --name squad        # serves `answer`: questions and contexts in, answers out

Without `--run`, `--preset mini --vocab vocab.txt` fine-tunes a randomly initialised encoder of that
size. Files are SQuAD JSON (v1.1, or v2.0 with unanswerable questions). `--dev FILE` evaluates on
another file; `--split-dev FRACTION` instead holds out the last FRACTION of the `--train` file's
articles (at least one, at most all but one), so no context is on both sides: with the 2-article
sample any fraction gives one article each (Normans to train, Computational complexity to evaluate).

The recipe, top to bottom:
1. The encoder to start from (a run folder, or random init) and its vocabulary.
2. The questions; dev held out by article (or read from --dev).
3. Windows: `[CLS] question [SEP] context window [SEP]`, windows every `--doc-stride` pieces; the window
   holding the whole answer is labelled with its start and end pieces, every other one with [CLS] = 0.
4. `SpanExtractor`: encoder -> every position -> dense (start, end) logits (float32).
5. AdamW with warm-up and linear decay, cross-entropy on start and end, plain `model.fit`.
6. Answers: the best span over a question's windows (at most `--max-answer-length` pieces, in the
   context), "" when no-answer score - best span score > `--null-threshold` (SQuAD 2.0); exact match
   and F1 (official normalisation, percent), split by has-answer / no-answer; OUT written.
"""

import argparse
import math
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ start-up chatter

import keras

from keras_mlm.errors import UserInputError
from keras_mlm.finetuning import common, squad
from keras_mlm.finetuning.qa_answers import Answerer
from keras_mlm.finetuning.qa_windows import QAWindows
from keras_mlm.models import SpanExtractor


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_common_arguments(parser)
    parser.add_argument("--split-dev", type=float, default=None, metavar="FRACTION",
                        help="hold out this fraction of --train's articles as the dev split (instead of --dev)")
    parser.add_argument("--doc-stride", type=int, default=128, help="pieces between window starts (default %(default)s)")
    parser.add_argument("--max-answer-length", type=int, default=30, help="longest answer in pieces (default %(default)s)")
    parser.add_argument("--null-threshold", type=null_threshold_flag, default=0.0,
                        help="SQuAD 2.0: answer \"\" when no-answer score - best span score exceeds this (default %(default)s); "
                             "'dev': the threshold of the best dev F1, then used for test and export")
    parser.set_defaults(epochs=2, batch_size=32, learning_rate=3e-5, seq_len=384, dropout=0.0)
    args = parser.parse_args(argv)
    common.check_common_arguments(args)
    if args.null_threshold == "dev" and args.dev is None and args.split_dev is None:
        raise UserInputError("--null-threshold dev needs a dev split (--dev FILE or --split-dev FRACTION)")
    if args.split_dev is not None and args.dev is not None:
        raise UserInputError("give --dev FILE or --split-dev FRACTION, not both")
    for flag in ("doc_stride", "max_answer_length"):
        if getattr(args, flag) < 1:
            raise UserInputError(f"--{flag.replace('_', '-')} must be a positive integer, got {getattr(args, flag)}")
    return args


def null_threshold_flag(value):
    if value == "dev":
        return value
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'dev', got {value!r}") from None


def print_scores(split, scores):
    lines = [f"{split}: exact_match {scores['exact_match']:.2f}  f1 {scores['f1']:.2f}  ({scores['count']} questions)"]
    for part in ("has_answer", "no_answer"):
        if part in scores:
            s = scores[part]
            lines.append(f"  {part}: exact_match {s['exact_match']:.2f}  f1 {s['f1']:.2f}  ({s['count']})")
    if "best_f1" in scores:
        lines.append(f"  best_f1 {scores['best_f1']:.2f} at --null-threshold {scores['best_f1_threshold']} (chosen on this split)")
    print("\n".join(lines))


def main(argv=None):
    args = parse_args(argv)

    # 1. The encoder to start from, and its vocabulary.
    start = common.starting_point_from_args(args)
    print(f"encoder: {start.source}")

    # 2. The questions: training, dev (held out by article, or its own file), test.
    train = squad.read_squad(args.train)
    splits = {}
    if args.split_dev is not None:
        train, splits["dev"] = squad.split_by_article(train, args.split_dev)
    elif args.dev:
        splits["dev"] = squad.read_squad(args.dev)
    if args.test:
        splits["test"] = squad.read_squad(args.test)
    examples = train.examples[: args.max_examples]
    print(f"train: {len(examples)} questions from {len({e.article for e in examples})} articles of {args.train}"
          + "".join(f"; {name}: {len(data.examples)} questions" for name, data in splits.items()))

    # 3. Windows and their span labels, computed once in tf.data.
    keras.utils.set_random_seed(args.seed)
    windows = QAWindows(start.tokens, start.lowercase, args.seq_len, args.doc_stride)
    train_ds, train_windows = squad.window_dataset(examples, windows, args.batch_size, seed=args.seed)
    dev_ds = squad.window_dataset(splits["dev"].examples, windows, args.batch_size)[0] if "dev" in splits else None
    print(f"{train_windows} training windows of {args.seq_len} pieces (stride {args.doc_stride})")

    # 4. The model, 5. the optimizer and plain fit.
    model = SpanExtractor(start.encoder, dropout=args.dropout, name="span_extractor")
    steps = args.epochs * math.ceil(train_windows / args.batch_size)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(
        optimizer=common.task_optimizer(steps, args.learning_rate, args.warmup_fraction, args.weight_decay),
        loss={"start_logits": loss, "end_logits": loss},
        loss_weights={"start_logits": 0.5, "end_logits": 0.5},  # BERT's (start loss + end loss) / 2
        metrics={"start_logits": ["accuracy"], "end_logits": ["accuracy"]},
    )
    model.fit(train_ds, validation_data=dev_ds, epochs=args.epochs, callbacks=common.task_callbacks(args.out),
              verbose=common.fit_verbose(), shuffle=False)  # the dataset reshuffles itself every epoch

    # 6. Answers and scores per split (the no-answer threshold first, when dev chooses it), and the task
    #    run folder `keras-mlm export` takes.
    def answerer(threshold):
        return Answerer(model, start.tokens, start.lowercase, args.seq_len, args.doc_stride, args.max_answer_length,
                        threshold, windows.max_query_length)

    null_threshold = args.null_threshold
    if not train.version_2:
        null_threshold = math.inf  # SQuAD 1.1: always answer
    elif null_threshold == "dev":
        best = squad.evaluate(answerer(0.0), splits["dev"], args.batch_size)["best_f1_threshold"]
        null_threshold = -math.inf if best is None else best  # None: "" is best everywhere
        print(f"--null-threshold {null_threshold:.4f}: the best F1 on dev")
    metrics = {split: squad.evaluate(answerer(null_threshold), data, args.batch_size) for split, data in splits.items()}
    task = {"kind": "extractive_qa", "squad_version": "2.0" if train.version_2 else "1.1", "doc_stride": args.doc_stride,
            "max_query_length": windows.max_query_length, "max_answer_length": args.max_answer_length,
            "null_threshold": null_threshold, "null_threshold_from": "dev" if args.null_threshold == "dev" else "--null-threshold",
            "train_examples": len(examples), "train_windows": train_windows,
            "epochs": args.epochs, "learning_rate": args.learning_rate, "batch_size": args.batch_size}
    common.save_task_run(args.out, model, start, seq_len=args.seq_len, task=task, metrics=metrics)
    for split, scores in metrics.items():
        print_scores(split, scores)
    print(f"wrote {args.out} (model.keras, vocab.txt, config.yaml, metrics.json)")
    return 0


if __name__ == "__main__":
    sys.exit(common.run_recipe(main))
