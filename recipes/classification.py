"""Sentence and sentence-pair classification: fine-tune a pre-trained keras-mlm encoder (e.g. SST-2).

    python recipes/classification.py --run runs/mini \
        --train ../shared/corpora/tasks/sst2/train.tsv --dev ../shared/corpora/tasks/sst2/dev.tsv \
        --test ../shared/corpora/tasks/sst2/test.tsv --out runs/sst2
    keras-mlm export runs/sst2 --name sst2          # serves `classify`: texts in, label names out

Without `--run`, `--preset mini --vocab vocab.txt` fine-tunes a randomly initialised encoder of that
size: the comparison that shows what pre-training bought. Files may be TSV, CSV or JSONL with a header
(or keys) naming the columns; `--text-column` (default `sentence`, else `text`), `--pair-column` for
sentence pairs, `--label-column` (default `label`); labels may be any strings.

The recipe, top to bottom:
1. The examples; string labels mapped to class ids (sorted; saved as labels.json).
2. The encoder to start from (a run folder, or random init) and its WordPiece tokenizer.
3. tf.data: texts -> word pieces -> `[CLS] a [SEP] (b [SEP])`, padded to `--seq-len`.
4. `SequenceClassifier`: encoder -> [CLS] vector -> dropout -> dense logits (float32).
5. AdamW with warm-up and linear decay, cross-entropy, plain `model.fit`.
6. Accuracy, macro F1 (and Matthews correlation for two classes) on dev and test; OUT written.
"""

import argparse
import math
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ start-up chatter

import keras
import numpy as np
import tensorflow as tf

from keras_mlm.evaluation.classification_metrics import classification_metrics
from keras_mlm.finetuning import common
from keras_mlm.finetuning.classification_data import label_ids, label_names, read_examples
from keras_mlm.finetuning.packing import text_encoder
from keras_mlm.models import SequenceClassifier


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_common_arguments(parser)
    parser.add_argument("--text-column", default=None, help="column of the sentence (default: sentence, else text)")
    parser.add_argument("--pair-column", default=None, help="column of a second sentence, for sentence-pair tasks")
    parser.add_argument("--label-column", default="label", help="column of the label (default %(default)s)")
    parser.set_defaults(epochs=3, batch_size=32, learning_rate=5e-5, seq_len=128)
    args = parser.parse_args(argv)
    common.check_common_arguments(args)
    return args


def make_dataset(examples, labels, encode, batch_size, shuffle_seed=None):
    """(inputs, label id) batches; reshuffled every epoch when `shuffle_seed` is given."""
    columns = (examples.texts,) if examples.pairs is None else (examples.texts, examples.pairs)
    ds = tf.data.Dataset.from_tensor_slices((tuple(tf.constant(c, tf.string) for c in columns), tf.constant(labels, tf.int32)))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(labels), seed=shuffle_seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size).map(lambda texts, y: (encode(*texts), y), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def evaluate_split(model, examples, names, encode, batch_size):
    """The split's metrics, from the argmax of the classifier's logits."""
    gold = label_ids(examples, names)
    logits = model.predict(make_dataset(examples, gold, encode, batch_size).map(lambda x, y: x), verbose=0)
    return classification_metrics(gold, np.argmax(logits, axis=-1), len(names))


def main(argv=None):
    args = parse_args(argv)

    # 1. The examples and the label map (the training set decides the classes).
    read = lambda path: read_examples(path, args.text_column, args.pair_column, args.label_column)  # noqa: E731
    train = read(args.train)
    if args.max_examples:
        train = type(train)(*(None if v is None else v[: args.max_examples] for v in (train.texts, train.pairs, train.labels, train.lines)), train.path)
    names = label_names(train.labels)
    if len(names) < 2:
        raise common.UserInputError(f"{args.train}: needs at least two classes, found only {names}")
    splits = {name: read(path) for name, path in (("dev", args.dev), ("test", args.test)) if path}
    for examples in splits.values():
        label_ids(examples, names)  # an unknown label stops us before training

    # 2. The encoder to start from, and its tokenizer.
    start = common.starting_point_from_args(args)
    print(f"encoder: {start.source}")

    # 3. Pipelines: the tokenizer and packer run inside tf.data.
    keras.utils.set_random_seed(args.seed)
    encode = text_encoder(start.tokenizer(), args.seq_len, start.special_ids, pairs=train.pairs is not None)
    train_ds = make_dataset(train, label_ids(train, names), encode, args.batch_size, shuffle_seed=args.seed)

    # 4. The model, 5. the optimizer and plain fit.
    model = SequenceClassifier(start.encoder, labels=names, dropout=args.dropout, name="sequence_classifier")
    steps = args.epochs * math.ceil(len(train.labels) / args.batch_size)
    model.compile(
        optimizer=common.task_optimizer(steps, args.learning_rate, args.warmup_fraction, args.weight_decay),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    model.fit(train_ds, epochs=args.epochs, callbacks=common.task_callbacks(args.out), verbose=common.fit_verbose(),
              shuffle=False)  # the dataset reshuffles itself every epoch

    # 6. Metrics per split, and the task run folder `keras-mlm export` takes.
    metrics = {split: evaluate_split(model, examples, names, encode, args.batch_size) for split, examples in splits.items()}
    task = {"kind": "classification", "text_pairs": train.pairs is not None, "train_examples": len(train.labels),
            "epochs": args.epochs, "learning_rate": args.learning_rate, "batch_size": args.batch_size}
    common.save_task_run(args.out, model, start, seq_len=args.seq_len, task=task, labels=names, metrics=metrics)
    for split, values in metrics.items():
        print(f"{split}: " + "  ".join(f"{k} {v:.4f}" for k, v in values.items() if k != "examples") + f"  ({values['examples']} examples)")
    print(f"wrote {args.out} (model.keras, labels.json, metrics.json)")
    return 0


if __name__ == "__main__":
    sys.exit(common.run_recipe(main))
