"""What every fine-tuning recipe shares: its flags, the encoder it starts from, the optimizer, the
callbacks, and the task run folder it writes.

    start = load_starting_point(run="runs/mini")                 # or preset="mini", vocab="vocab.txt"
    model = SequenceClassifier(start.encoder, labels=["neg", "pos"])
    model.compile(optimizer=task_optimizer(steps, 5e-5), ...)
    model.fit(train, callbacks=task_callbacks(out))
    save_task_run(out, model, start, seq_len=128, task={"kind": "classification"}, labels=..., metrics=...)

A task run folder is laid out like a pre-training run, so `keras-mlm export OUT --name NAME` takes it:

    OUT/model.keras     the task model (SequenceClassifier, TokenClassifier, SpanExtractor)
    OUT/vocab.txt       the encoder's vocabulary
    OUT/config.yaml     the pre-training run's config, data.seq_len set to the fine-tuning length, plus
                        a `task` section (kind, labels, the recipe's settings, where the encoder came from)
    OUT/labels.json     the label names in id order (classification, NER)
    OUT/metrics.json    {"dev": {...}, "test": {...}}
    OUT/logs/           TensorBoard
"""

import argparse
import dataclasses
import json
import os
import sys

import yaml

from keras_mlm.errors import UserInputError

MODEL_FILE, VOCAB_FILE, CONFIG_FILE = "model.keras", "vocab.txt", "config.yaml"
LABELS_FILE, METRICS_FILE = "labels.json", "metrics.json"


# ---------------------------------------------------------------------------------------------------------
# Flags


def add_common_arguments(parser, *, test=True):
    """The flags every recipe has; a recipe changes defaults with `parser.set_defaults(...)`."""
    start = parser.add_argument_group("the encoder to fine-tune (--run, or --preset with --vocab)")
    start.add_argument("--run", default=None, help="a pre-training (or imported) run folder: model.keras, vocab.txt, config.yaml")
    start.add_argument("--preset", default=None, help="fine-tune a randomly initialised encoder of this size instead (needs --vocab)")
    start.add_argument("--vocab", default=None, help="vocabulary for --preset")
    data = parser.add_argument_group("data")
    data.add_argument("--train", required=True, help="training file")
    data.add_argument("--dev", default=None, help="dev file (evaluated after training)")
    if test:
        data.add_argument("--test", default=None, help="test file (evaluated after training)")
    data.add_argument("--max-examples", type=int, default=None, help="use only the first N training examples (default: all)")
    run = parser.add_argument_group("training")
    run.add_argument("--out", required=True, help="output folder: model.keras, vocab.txt, config.yaml, labels.json, metrics.json, logs/")
    run.add_argument("--epochs", type=int, default=3, help="passes over the training set (default %(default)s)")
    run.add_argument("--batch-size", type=int, default=32, help="(default %(default)s)")
    run.add_argument("--learning-rate", type=float, default=5e-5, help="peak AdamW learning rate (default %(default)s)")
    run.add_argument("--warmup-fraction", type=float, default=0.1, help="share of steps warming up linearly (default %(default)s)")
    run.add_argument("--weight-decay", type=float, default=0.01, help="AdamW weight decay (default %(default)s)")
    run.add_argument("--dropout", type=float, default=0.1, help="dropout of the task head (default %(default)s)")
    run.add_argument("--seq-len", type=int, default=128, help="row length in word pieces (default %(default)s)")
    run.add_argument("--seed", type=int, default=0, help="weights of the head, shuffling (default %(default)s)")
    return parser


def check_common_arguments(args):
    """Checks the shared flags' values before anything slow happens."""
    if (args.run is None) == (args.preset is None):
        raise UserInputError("give either --run RUN_DIR (a pre-trained encoder) or --preset NAME --vocab FILE (random init)")
    if args.preset is not None and args.vocab is None:
        raise UserInputError("--preset needs --vocab FILE (the vocabulary of the random-init encoder)")
    for name in ("epochs", "batch_size", "seq_len"):
        value = getattr(args, name)
        if value < 1:
            raise UserInputError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    if args.max_examples is not None and args.max_examples < 1:
        raise UserInputError(f"--max-examples must be a positive integer, got {args.max_examples}")
    if not args.learning_rate > 0:
        raise UserInputError(f"--learning-rate must be > 0, got {args.learning_rate}")
    if not 0 <= args.warmup_fraction < 1:
        raise UserInputError(f"--warmup-fraction must be in [0, 1), got {args.warmup_fraction}")
    if not 0 <= args.dropout < 1:
        raise UserInputError(f"--dropout must be in [0, 1), got {args.dropout}")
    for flag in ("train", "dev", "test"):
        path = getattr(args, flag, None)
        if path is not None and not os.path.isfile(path):
            raise UserInputError(f"{path}: no such file (--{flag})")


def run_recipe(main, argv=None):
    """Runs `main(argv)`; a `UserInputError` becomes `error: MESSAGE` on stderr and exit code 2."""
    try:
        return main(argv) or 0
    except UserInputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


# ---------------------------------------------------------------------------------------------------------
# The encoder a recipe starts from


@dataclasses.dataclass(frozen=True)
class StartingPoint:
    """A pre-trained (or freshly initialised) encoder with the vocabulary it reads."""

    encoder: object
    """A `BertEncoder` (shared with the task model built on it)."""
    tokens: list
    """The vocabulary, id order."""
    lowercase: bool
    """Whether the tokenizer lower-cases text."""
    base_config: dict
    """The pre-training run's config.yaml ({} for a fresh encoder)."""
    source: str
    """Where the weights came from, for people: "pre-trained runs/mini" or "random init, preset mini"."""

    @property
    def special_ids(self):
        from keras_mlm.tokenizers import vocab as vocab_lib

        index = {t: i for i, t in enumerate(self.tokens)}
        names = {"pad": vocab_lib.PAD, "unk": vocab_lib.UNK, "cls": vocab_lib.CLS, "sep": vocab_lib.SEP, "mask": vocab_lib.MASK}
        return {name: index[token] for name, token in names.items()}

    def tokenizer(self, special_tokens_in_strings=False):
        """The vocabulary's WordPiece tokenizer (keras-hub), with the run's casing."""
        from keras_mlm.tokenizers import make_tokenizer

        return make_tokenizer(self.tokens, self.lowercase, special_tokens_in_strings=special_tokens_in_strings)


def _with_dropout(encoder, dropout):
    """The encoder rebuilt with another dropout rate, same weights (dropout is a constructor argument)."""
    if dropout is None or dropout == encoder.dropout:
        return encoder
    rebuilt = type(encoder).from_config({**encoder.get_config(), "dropout": float(dropout)})
    rebuilt.set_weights(encoder.get_weights())
    return rebuilt


def load_starting_point(run=None, preset=None, vocab=None, seq_len=128, seed=0, encoder_dropout=None):
    """The encoder of a run folder (`run`), or a randomly initialised one of `preset` size over `vocab`.

    `encoder_dropout` replaces the encoder's dropout rate (None keeps the run's). The row length must
    fit the encoder's position table.
    """
    import keras

    from keras_mlm.inference.run import load_run
    from keras_mlm.models import BertEncoder, EncoderConfig
    from keras_mlm.tokenizers import vocab as vocab_lib

    if (run is None) == (preset is None):
        raise UserInputError("give either --run RUN_DIR (a pre-trained encoder) or --preset NAME --vocab FILE (random init)")
    if run is not None:
        if vocab is not None:
            raise UserInputError("--vocab goes with --preset; a --run folder brings its own vocab.txt")
        loaded = load_run(os.fspath(run))
        kind = getattr(getattr(loaded, "vocabulary", None), "kind", "wordpiece")
        if kind != "wordpiece":
            raise UserInputError(
                f"{run}: a {kind} vocabulary; the fine-tuning recipes read WordPiece runs only for now "
                "(their word alignment and served text inputs are WordPiece's)"
            )
        encoder = getattr(loaded.model, "encoder", None)
        if encoder is None:
            raise UserInputError(f"{run}: its model ({type(loaded.model).__name__}) has no encoder to fine-tune")
        lowercase = loaded.lowercase if loaded.lowercase is not None else vocab_lib.infer_lowercase(loaded.tokens)
        start = StartingPoint(_with_dropout(encoder, encoder_dropout), loaded.tokens, bool(lowercase), loaded.config, f"pre-trained {run}")
    else:
        if vocab is None:
            raise UserInputError("--preset needs --vocab FILE (the vocabulary of the random-init encoder)")
        tokens = vocab_lib.load_vocabulary(os.fspath(vocab))
        keras.utils.set_random_seed(seed)
        overrides = {"max_sequence_length": max(512, seq_len)}
        if encoder_dropout is not None:
            overrides["dropout"] = float(encoder_dropout)
        config = EncoderConfig.from_preset(preset, len(tokens), **overrides)
        encoder = BertEncoder.from_encoder_config(config, name="encoder")
        base = {"preset": preset, "model": config.to_dict(), "data": {"lowercase": vocab_lib.infer_lowercase(tokens)}}
        start = StartingPoint(encoder, tokens, vocab_lib.infer_lowercase(tokens), base, f"random init, preset {preset}")
    if seq_len > start.encoder.max_sequence_length:
        raise UserInputError(f"--seq-len {seq_len} exceeds the encoder's max_sequence_length {start.encoder.max_sequence_length}")
    return start


def starting_point_from_args(args):
    return load_starting_point(args.run, args.preset, args.vocab, args.seq_len, args.seed)


# ---------------------------------------------------------------------------------------------------------
# Training


def task_optimizer(steps, learning_rate, warmup_fraction=0.1, weight_decay=0.01):
    """AdamW, linear warm-up over `warmup_fraction` of `steps`, then linear decay to 0 (BERT's fine-tuning)."""
    from keras_mlm.training.config import TrainingConfig
    from keras_mlm.training.optimizer import make_optimizer

    return make_optimizer(TrainingConfig(steps=max(int(steps), 1), learning_rate=learning_rate,
                                         warmup_fraction=warmup_fraction, weight_decay=weight_decay))


def fit_verbose():
    """Keras' progress bar on a terminal; one plain line per epoch otherwise (no escape codes in logs)."""
    return "auto" if sys.stdout.isatty() else 2


def task_callbacks(out_dir):
    """TensorBoard scalars (loss, metrics, learning rate) under OUT/logs."""
    import keras

    return [keras.callbacks.TensorBoard(os.path.join(os.fspath(out_dir), "logs"), update_freq="epoch", write_graph=False)]


# ---------------------------------------------------------------------------------------------------------
# The task run folder


def _atomic_write_text(path, text):
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def write_metrics(out_dir, metrics):
    """OUT/metrics.json, atomically."""
    _atomic_write_text(os.path.join(os.fspath(out_dir), METRICS_FILE), json.dumps(metrics, indent=2) + "\n")


def save_task_run(out_dir, model, start, *, seq_len, task, labels=None, metrics=None):
    """Writes the task run folder (see the module docstring); every file is renamed into place."""
    from keras_mlm.tokenizers.vocab import write_vocabulary
    from keras_mlm.training.callbacks import atomic_save

    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    atomic_save(model.save, os.path.join(out_dir, MODEL_FILE))
    write_vocabulary(start.tokens, os.path.join(out_dir, VOCAB_FILE))
    config = json.loads(json.dumps(start.base_config or {}))  # a deep copy
    config.setdefault("data", {})
    config["data"]["seq_len"] = int(seq_len)
    config["data"]["lowercase"] = bool(start.lowercase)
    config["model"] = {**config.get("model", {}), **{k: v for k, v in start.encoder.get_config().items()
                                                     if k not in ("name", "trainable", "dtype")}}
    config["task"] = {**task, "encoder_from": start.source, **({"labels": list(labels)} if labels is not None else {})}
    _atomic_write_text(os.path.join(out_dir, CONFIG_FILE), yaml.safe_dump(config, sort_keys=False))
    if labels is not None:
        _atomic_write_text(os.path.join(out_dir, LABELS_FILE), json.dumps(list(labels), indent=2) + "\n")
    if metrics is not None:
        write_metrics(out_dir, metrics)
    return out_dir


def load_task_model(out_dir):
    """The task model of a task run folder, with its vocabulary and config (a `LoadedRun`)."""
    from keras_mlm.inference.run import load_run

    return load_run(os.fspath(out_dir))
