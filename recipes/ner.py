"""Named-entity recognition (token classification): fine-tune a pre-trained keras-mlm encoder (e.g. WNUT-17).

    python recipes/ner.py --run runs/mini \
        --train ../shared/corpora/tasks/wnut17/train.conll --dev ../shared/corpora/tasks/wnut17/dev.conll \
        --test ../shared/corpora/tasks/wnut17/test.conll --out runs/wnut17
    keras-mlm export runs/wnut17 --name wnut17      # serves `tag`: texts in, words and their tags out

Without `--run`, `--preset mini --vocab vocab.txt` fine-tunes a randomly initialised encoder of that
size: the comparison that shows what pre-training bought. Files are CoNLL: a word and its tag (BIO or
IOBES) a line, separated by a tab, a blank line between sentences.

The recipe, top to bottom:
1. The tagged sentences; the tag set ("O", then B-/I- of every entity type; saved as labels.json).
2. The encoder to start from (a run folder, or random init) and its WordPiece tokenizer.
3. Alignment: each word tokenized alone, `[CLS] pieces [SEP]` padded to `--seq-len`; a word's label
   on its first piece, every other position labelled -100 and skipped by the loss.
4. `TokenClassifier`: encoder -> every position -> dropout -> dense tag logits (float32).
5. AdamW with warm-up and linear decay, cross-entropy ignoring -100, plain `model.fit`.
6. Entity-level precision, recall, F1 (seqeval's, conlleval-compatible) per split and per type; OUT written.
"""

import argparse
import math
import sys

import keras
import tensorflow as tf

from keras_mlm.evaluation.ner_metrics import entity_scores, format_report
from keras_mlm.finetuning import common
from keras_mlm.finetuning.conll import read_conll, tag_set
from keras_mlm.finetuning.token_alignment import IGNORE, WordAligner, align_sentences, piece_labels, predict_word_tags
from keras_mlm.models import TokenClassifier


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_common_arguments(parser)
    parser.set_defaults(epochs=3, batch_size=32, learning_rate=5e-5, seq_len=128)
    args = parser.parse_args(argv)
    common.check_common_arguments(args)
    return args


def make_dataset(aligned, labels, batch_size, shuffle_seed=None):
    """(inputs, per-position labels) batches; reshuffled every epoch when `shuffle_seed` is given."""
    ds = tf.data.Dataset.from_tensor_slices((aligned.inputs, labels))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(labels), seed=shuffle_seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def label_ids(sentences, labels):
    index = {tag: i for i, tag in enumerate(labels)}
    return [[index[tag] for tag in tags] for tags in sentences.tags]


def report_cut(name, aligned, seq_len):
    if aligned.cut_words:
        print(f"{name}: {aligned.cut_words} words in {aligned.cut_sentences} sentences do not fit in --seq-len {seq_len} "
              "(not trained on; predicted \"O\")")


def main(argv=None):
    args = parse_args(argv)

    # 1. The tagged sentences and the tag set (every entity type of every file, so none is unknown).
    train = read_conll(args.train).head(args.max_examples)
    splits = {name: read_conll(path) for name, path in (("dev", args.dev), ("test", args.test)) if path}
    labels = tag_set(train, *splits.values())
    print(f"{len(train)} training sentences, {len(labels)} tags: {' '.join(labels)}")

    # 2. The encoder to start from, and its tokenizer.
    start = common.starting_point_from_args(args)
    print(f"encoder: {start.source}")

    # 3. Word -> word-piece alignment, done once; labels on first pieces, IGNORE elsewhere.
    aligner = WordAligner(start.tokenizer(), args.seq_len, start.special_ids)
    aligned = {name: align_sentences(aligner, data.words) for name, data in {"train": train, **splits}.items()}
    for name, data in aligned.items():
        report_cut(name, data, args.seq_len)
    keras.utils.set_random_seed(args.seed)
    train_ds = make_dataset(aligned["train"], piece_labels(aligned["train"], label_ids(train, labels)), args.batch_size, args.seed)
    dev_ds = None
    if "dev" in splits:
        dev_ds = make_dataset(aligned["dev"], piece_labels(aligned["dev"], label_ids(splits["dev"], labels)), args.batch_size)

    # 4. The model, 5. the optimizer and plain fit.
    model = TokenClassifier(start.encoder, labels, dropout=args.dropout, name="token_classifier")
    steps = args.epochs * math.ceil(len(train) / args.batch_size)
    model.compile(
        optimizer=common.task_optimizer(steps, args.learning_rate, args.warmup_fraction, args.weight_decay),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=IGNORE),
    )
    model.fit(train_ds, epochs=args.epochs, validation_data=dev_ds, shuffle=False,  # the dataset shuffles itself
              callbacks=common.task_callbacks(args.out), verbose=common.fit_verbose())

    # 6. Entity-level scores per split, and the task run folder `keras-mlm export` takes.
    metrics = {}
    for name, data in splits.items():
        scores = entity_scores(data.tags, predict_word_tags(model, aligned[name], labels, args.batch_size))
        metrics[name] = {**scores, "sentences": len(data), "cut_words": aligned[name].cut_words}
        print(f"\n{name}: precision {scores['precision']:.4f}  recall {scores['recall']:.4f}  f1 {scores['f1']:.4f}")
        print(format_report(scores))
    task = {"kind": "token_classification", "train_sentences": len(train), "epochs": args.epochs,
            "learning_rate": args.learning_rate, "batch_size": args.batch_size}
    common.save_task_run(args.out, model, start, seq_len=args.seq_len, task=task, labels=labels, metrics=metrics)
    print(f"wrote {args.out} (model.keras, vocab.txt, config.yaml, labels.json, metrics.json, logs/)")
    return 0


if __name__ == "__main__":
    sys.exit(common.run_recipe(main))
