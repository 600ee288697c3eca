"""Fine-tune a pre-trained keras-mlm encoder for sentence classification (e.g. SST-2 sentiment).

    python recipes/classification.py --run runs/demo \
        --train ../shared/corpora/tasks/sst2/train.tsv --dev ../shared/corpora/tasks/sst2/dev.tsv \
        --out runs/sst2

The recipe, top to bottom:
1. Load the pre-training run: its masked LM (we keep only `.encoder`), vocabulary and casing.
2. Read the TSV files (a header with `sentence` and `label` columns, integer labels 0..K-1).
3. tf.data: batch sentences -> WordPiece ids -> `[CLS] ids [SEP]` padded to `--seq-len`.
4. `SequenceClassifier`: encoder -> [CLS] vector -> dropout -> dense logits (float32).
5. AdamW with linear warm-up (10%) and linear decay, cross-entropy on the logits, `fit`.
6. Report dev accuracy; write OUT/classifier.keras and OUT/metrics.json.
"""

import argparse
import csv
import json
import math
import os
import sys

import keras
import tensorflow as tf
from keras import ops

from keras_mlm.errors import UserInputError
from keras_mlm.inference.run import load_run
from keras_mlm.models.bert import bert_initializer
from keras_mlm.tokenizers import CLS, PAD, SEP, make_tokenizer
from keras_mlm.training.config import TrainingConfig
from keras_mlm.training.optimizer import make_optimizer

CLASSIFIER_FILE, METRICS_FILE = "classifier.keras", "metrics.json"
SENTENCE, LABEL = "sentence", "label"


# ---------------------------------------------------------------------------------------------------------
# Model


@keras.saving.register_keras_serializable(package="keras_mlm")
class SequenceClassifier(keras.Model):
    """{token_ids, segment_ids, padding_mask} (batch, seq) -> logits float32 (batch, num_classes).

    The [CLS] row of the encoder's output, dropout, then one dense layer: BERT's fine-tuning head
    without the pooler (our encoder builds none).
    """

    def __init__(self, encoder, num_classes, dropout=0.1, **kwargs):
        dtype = kwargs.pop("dtype", None) or encoder.dtype_policy
        self.encoder = encoder
        self.head_dropout = keras.layers.Dropout(dropout, dtype=dtype, name="head_dropout")
        self.logits_dense = keras.layers.Dense(
            num_classes, kernel_initializer=bert_initializer(encoder.initializer_range), dtype=dtype, name="logits"
        )
        inputs = dict(encoder.input)
        sequence_output = encoder(inputs)  # (batch, seq, hidden)
        x = sequence_output[:, 0, :]  # (batch, hidden): the [CLS] position
        x = self.head_dropout(x)
        logits = ops.cast(self.logits_dense(x), "float32")  # (batch, num_classes), float32 for the loss
        super().__init__(inputs=inputs, outputs=logits, **kwargs)
        self.dtype_policy = keras.dtype_policies.get(dtype)  # a functional model does not take a dtype
        self.num_classes = num_classes
        self.dropout = dropout

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            "encoder": keras.layers.serialize(self.encoder),
            "num_classes": self.num_classes,
            "dropout": self.dropout,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.layers.deserialize(config["encoder"])
        return cls(**config)


# ---------------------------------------------------------------------------------------------------------
# Data


def read_examples(path):
    """(sentences, labels) from a tab-separated file whose header names `sentence` and `label` columns."""
    try:
        f = open(path, encoding="utf-8", newline="")
    except FileNotFoundError:
        raise UserInputError(f"{path}: no such file") from None
    with f:
        rows = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        try:
            header = next(rows, None)
        except UnicodeDecodeError as e:
            raise UserInputError(f"{path}: not UTF-8 (byte offset {e.start})") from None
        if header is None or SENTENCE not in header or LABEL not in header:
            raise UserInputError(f"{path}:1: the header must name the columns {SENTENCE!r} and {LABEL!r}, got {header!r}")
        sentence_col, label_col = header.index(SENTENCE), header.index(LABEL)
        sentences, labels = [], []
        try:
            for line, row in enumerate(rows, start=2):
                if not row:
                    continue  # a blank line (e.g. a trailing newline)
                if len(row) != len(header):
                    raise UserInputError(f"{path}:{line}: expected {len(header)} tab-separated columns, got {len(row)}")
                label = row[label_col].strip()
                if not label.isdigit():
                    raise UserInputError(f"{path}:{line}: label must be a non-negative integer, got {label!r}")
                sentences.append(row[sentence_col])
                labels.append(int(label))
        except UnicodeDecodeError as e:
            raise UserInputError(f"{path}: not UTF-8 (byte offset {e.start})") from None
    if not sentences:
        raise UserInputError(f"{path}: no examples after the header")
    return sentences, labels


def make_encoder_inputs(tokenizer, seq_len, cls_id, sep_id, pad_id):
    """A tf function: strings (batch,) -> {token_ids, segment_ids, padding_mask} each int32 (batch, seq_len)."""

    # A graph function: called eagerly, keras-hub would hand back Python lists instead of a ragged tensor.
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def encode(sentences):
        ids = tf.cast(tokenizer(sentences), tf.int32)  # ragged (batch, None)
        ids = ids[:, : seq_len - 2]  # room for [CLS] and [SEP]
        batch = ids.nrows()
        cls = tf.fill([batch, 1], cls_id)
        sep = tf.fill([batch, 1], sep_id)
        ids = tf.concat([cls, ids, sep], axis=1)  # ragged (batch, <= seq_len)
        token_ids = ids.to_tensor(default_value=pad_id, shape=[None, seq_len])  # (batch, seq_len)
        padding_mask = tf.cast(tf.sequence_mask(ids.row_lengths(), seq_len), tf.int32)  # (batch, seq_len)
        return {"token_ids": token_ids, "segment_ids": tf.zeros_like(token_ids), "padding_mask": padding_mask}

    return encode


def make_dataset(sentences, labels, encode, batch_size, shuffle_seed=None):
    """(inputs, labels) batches; shuffled each epoch when `shuffle_seed` is given."""
    ds = tf.data.Dataset.from_tensor_slices((tf.constant(sentences, tf.string), tf.constant(labels, tf.int32)))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(sentences), seed=shuffle_seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)

    def with_inputs(text, label):
        return encode(text), label

    ds = ds.map(with_inputs, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


# ---------------------------------------------------------------------------------------------------------
# Fine-tuning


def fine_tune(run_dir, train_path, dev_path, out_dir, epochs=2, batch_size=32, learning_rate=5e-5, seq_len=64,
              max_examples=None, dropout=0.1, seed=0, verbose=1):
    """Fine-tunes RUN_DIR's encoder on the training TSV, writes OUT_DIR/{classifier.keras, metrics.json}.

    `max_examples` keeps the first N training examples (the dev set is always used whole).
    Returns (the trained `SequenceClassifier`, the metrics dict {"dev_accuracy", "train_examples", "epochs"}).
    """
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("seq_len", seq_len)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise UserInputError(f"{name} must be a positive integer, got {value!r}")
    if seq_len < 3:
        raise UserInputError(f"seq_len must be at least 3 ([CLS] word [SEP]), got {seq_len}")
    if max_examples is not None and max_examples < 1:
        raise UserInputError(f"max_examples must be a positive integer, got {max_examples!r}")

    # 1. The pre-trained encoder and its tokenizer.
    run = load_run(run_dir)
    encoder = run.model.encoder
    if seq_len > encoder.max_sequence_length:
        raise UserInputError(f"seq_len={seq_len} exceeds the encoder's max_sequence_length={encoder.max_sequence_length}")
    tokenizer = make_tokenizer(run.tokens, run.lowercase)
    index = {token: i for i, token in enumerate(run.tokens)}
    encode = make_encoder_inputs(tokenizer, seq_len, index[CLS], index[SEP], index[PAD])

    # 2. The examples.
    train_x, train_y = read_examples(train_path)
    dev_x, dev_y = read_examples(dev_path)
    if max_examples is not None:
        train_x, train_y = train_x[:max_examples], train_y[:max_examples]
    num_classes = max(train_y) + 1
    if num_classes < 2:
        raise UserInputError(f"{train_path}: needs at least two classes (labels 0..K-1), found only label 0")
    if max(dev_y) >= num_classes:
        raise UserInputError(f"{dev_path}: label {max(dev_y)} never occurs in training (labels 0..{num_classes - 1})")

    # 3. Pipelines.
    keras.utils.set_random_seed(seed)
    train_ds = make_dataset(train_x, train_y, encode, batch_size, shuffle_seed=seed)
    dev_ds = make_dataset(dev_x, dev_y, encode, batch_size)

    # 4. Model, 5. optimizer and training.
    classifier = SequenceClassifier(encoder, num_classes, dropout=dropout, name="sequence_classifier")
    steps = epochs * math.ceil(len(train_x) / batch_size)
    optimizer = make_optimizer(TrainingConfig(steps=steps, batch_size=batch_size, learning_rate=learning_rate,
                                              warmup_fraction=0.1, seed=seed))
    classifier.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    classifier.fit(train_ds, epochs=epochs, shuffle=False, verbose=verbose)  # the dataset shuffles itself

    # 6. Dev accuracy and the outputs.
    dev_accuracy = float(classifier.evaluate(dev_ds, verbose=0, return_dict=True)["accuracy"])
    metrics = {"dev_accuracy": dev_accuracy, "train_examples": len(train_x), "epochs": epochs}
    os.makedirs(out_dir, exist_ok=True)
    tmp_model = os.path.join(out_dir, f"classifier.tmp-{os.getpid()}.keras")
    classifier.save(tmp_model)
    os.replace(tmp_model, os.path.join(out_dir, CLASSIFIER_FILE))
    tmp_metrics = os.path.join(out_dir, f"{METRICS_FILE}.tmp-{os.getpid()}")
    with open(tmp_metrics, "w", encoding="utf-8") as f:
        json.dump(metrics, f, indent=2)
        f.write("\n")
    os.replace(tmp_metrics, os.path.join(out_dir, METRICS_FILE))
    return classifier, metrics


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", required=True, help="a pre-training run folder (model.keras, vocab.txt, config.yaml)")
    parser.add_argument("--train", required=True, help="training TSV with `sentence` and `label` columns")
    parser.add_argument("--dev", required=True, help="dev TSV, same columns")
    parser.add_argument("--out", required=True, help="where classifier.keras and metrics.json go")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--max-examples", type=int, default=None, help="use only the first N training examples")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        _, metrics = fine_tune(args.run, args.train, args.dev, args.out, epochs=args.epochs, batch_size=args.batch_size,
                            learning_rate=args.learning_rate, seq_len=args.seq_len, max_examples=args.max_examples,
                            seed=args.seed, verbose=2)
    except UserInputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"dev accuracy: {metrics['dev_accuracy']:.4f} ({metrics['train_examples']} training examples, "
          f"{metrics['epochs']} epochs) -> {os.path.join(args.out, CLASSIFIER_FILE)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
