"""The pre-training entry point: data + vocabulary + config -> a trained masked LM in RUN_DIR.

Plain `model.fit` underneath. One Keras "epoch" is one checkpoint interval, so the resumable backup
(weights + optimizer, written atomically) is taken every `checkpoint_every` steps, and a rerun of the
same command continues from the last backup: the data pipeline skips the batches already trained on
and, masking being a pure function of (seed, step), sees the very masks the first run would have.

Everything a run needs is checked before anything is written: the vocabulary, the shards (sizes
against the manifest, and their records' checksums on a run's first start when they are small enough
to read quickly), the rows against the model's positions, the run folder of `init_from`. Around that:
`init_from` (continued pre-training, see init_from.py), `eval_data` (validation while training),
`training.max_time` (a run planned for a time budget, see time_budget.py) and `training.precision`
"auto" (see strategy.resolve_precision).

RUN_DIR, the data and the vocabulary may be on any filesystem `tf.io.gfile` knows (`gs://...`), see
`keras_mlm.fileio`: every file of the run goes through it (and Keras and TensorBoard, which take such
paths too).
"""

import dataclasses
import functools
import json
import math
import os
import shutil
import sys
import tempfile
import time

import keras
import tensorflow as tf

from keras_mlm import fileio
from keras_mlm.data.dataset import pretraining_dataset
from keras_mlm.data.pairs import pair_pretraining_dataset
from keras_mlm.data.prepare import MANIFEST, prepare, read_manifest
from keras_mlm.data.verify import check_shards, find_corrupt_shard
from keras_mlm.errors import UserInputError
from keras_mlm.inference.run import CONFIG_FILE, MODEL_FILE, masked_lm_of, read_run_config
from keras_mlm.losses import MaskedLMLoss
from keras_mlm.masking import MLMMasker
from keras_mlm.metrics import MaskedAccuracy, Perplexity
from keras_mlm.models import (
    AlbertEncoder,
    MaskedLM,
    ModernEncoder,
    build_electra_pretrainer,
    build_masked_lm,
    build_pair_pretrainer,
    build_xlnet_pretrainer,
)
from keras_mlm.models.own_loss import OwnLossModel
from keras_mlm.tokenizers.vocabulary import as_vocabulary
from keras_mlm.training import callbacks as cb
from keras_mlm.training import init_from as init_lib
from keras_mlm.training import time_budget
from keras_mlm.training.optimizer import make_optimizer
from keras_mlm.training.run_config import DEFAULT_ARCHITECTURE, LEGACY_ARCHITECTURE, save_config, vocabulary_kinds_of
from keras_mlm.training.strategy import (
    any_worker,
    check_jit_compile,
    chief_value,
    distribute_dataset,
    is_chief,
    keras_fit_fixes,
    make_strategy,
    per_replica_batch_size,
    resolve_precision,
    set_precision,
    task,
)

VERIFY_RECORDS_UP_TO = 1 << 30  # bytes of given shards whose records are checked before a run's first step
SUMMARY_FILE, VALIDATION_FILE, BEST_FILE = "summary.json", "validation.json", "best.keras"


class TrainingDiverged(UserInputError):
    """The loss became NaN or infinite."""


def _shards_directory(data):
    """The shards directory `data` names, or None when it is text to prepare."""
    paths = [data] if isinstance(data, (str, os.PathLike)) else list(data)
    return os.fspath(paths[0]) if len(paths) == 1 and fileio.isfile(os.path.join(paths[0], MANIFEST)) else None


def _check_vocabulary(directory, manifest, vocabulary):
    if manifest["vocab_sha256"] != vocabulary.sha256:
        kind = manifest.get("vocab_kind")
        made_with = f" (a {kind} vocabulary)" if kind and kind != vocabulary.kind else ""
        raise UserInputError(f"{directory}: shards were prepared with another vocabulary{made_with} than the one given ({vocabulary.kind})")


def resolve_shards(data, vocabulary, config, run_dir, name="data"):
    """`data` is a shards directory (used as is) or raw text, prepared into RUN_DIR/<name> once."""
    given = _shards_directory(data)
    if given is not None:
        _check_vocabulary(given, read_manifest(given), vocabulary)
        return given
    paths = [data] if isinstance(data, (str, os.PathLike)) else list(data)
    target = os.path.join(run_dir, name)
    if _prepared(target, vocabulary, config):
        return target  # prepared by an earlier (interrupted) run of the same command
    prepare(paths, vocabulary, target, config.data, overwrite=True, progress=True)
    return target


def _prepared(target, vocabulary, config):
    if not fileio.isfile(os.path.join(target, MANIFEST)):
        return False
    manifest = read_manifest(target)
    return manifest["vocab_sha256"] == vocabulary.sha256 and manifest["seq_len"] == config.data.seq_len


def _worker_shards(data, vocabulary, config, run_dir, name="data"):
    """[distributed] A non-chief worker's shards: the given shards directory, or the chief's prepared
    RUN_DIR/<name> when it is complete and matches; None when the worker must prepare its own copy."""
    if _shards_directory(data) is not None:
        return None  # a shards directory: resolve_shards checks and returns it
    target = os.path.join(run_dir, name)
    return target if _prepared(target, vocabulary, config) else None


def _illustration_samples(log_dir, training, vocabulary, seq_len, masking, masker, shards, enabled, model):
    """[illustrate] The picture of the first sample sentence and the masked accuracy split by corruption
    kind ([MASK] / random / kept) on one fixed probe batch (held-out rows when --eval-data is given),
    written to TensorBoard every `sample_every` steps; none without sample sentences, and none for a
    model the illustration cannot draw (an ELECTRA pre-trainer; ALBERT's shared blocks)."""
    if not enabled or not training.sample_sentences:
        return []
    from keras_mlm.illustrate.attention import AttentionProbe
    from keras_mlm.illustrate.tensorboard import IllustrationSamples

    if not isinstance(model, MaskedLM) or vocabulary.kind != "wordpiece":  # the picture reads WordPiece text
        return []
    try:
        AttentionProbe(model.encoder)  # refuses what it cannot draw
    except UserInputError:
        return []

    probe = pretraining_dataset(shards, min(training.batch_size, 64), masker, seed=training.seed + 1, shuffle_buffer=1, vocabulary=vocabulary)
    return [IllustrationSamples(log_dir, training.sample_every, list(vocabulary.tokens), seq_len, training.sample_sentences[0], batch=next(iter(probe)),
                                masking=masking, seed=training.seed)]


def _masked_lm_over(encoder_class):
    def build(config, seed, **head):
        return MaskedLM(encoder_class.from_encoder_config(config, name="encoder"), name="masked_lm", **head)

    return build


MODEL_BUILDERS = {
    "bert": lambda config, seed, **head: build_masked_lm(config, **head),
    "roberta": lambda config, seed, **head: build_masked_lm(config, **head),  # BERT's encoder, no segments
    "albert": _masked_lm_over(AlbertEncoder),
    "modern": _masked_lm_over(ModernEncoder),
    "electra": lambda config, seed, **head: build_electra_pretrainer(config, seed=seed),
    "xlnet": lambda config, seed, **head: build_xlnet_pretrainer(config, seed=seed),  # MaskedLM's inputs, loss and metrics
}
"""Architecture -> (config, seed, **head options) -> a fresh, uncompiled pre-training model (under the
global dtype policy). The ELECTRA pre-trainer's generator sampling is keyed by `seed`."""


PAIR_OBJECTIVES = {"mlm": None, "mlm+nsp": "nsp", "mlm+sop": "sop"}
"""--objective -> the sentence-pair task trained next to the masked LM (data/pairs.py, models/pair_pretrainer.py)."""


def build_pretraining_model(architecture, encoder_config, training, total_steps=None, **head):
    """The compiled pre-training model of `architecture` for `encoder_config` (see MODEL_BUILDERS), with
    the NSP/SOP head on top when `training.objective` asks for one."""
    model = MODEL_BUILDERS[architecture](encoder_config, training.seed, **head)
    pair = PAIR_OBJECTIVES[training.objective]
    if pair is not None:
        model = build_pair_pretrainer(model, pair)
    if isinstance(model, OwnLossModel):  # ELECTRA, NSP/SOP: their losses and metrics are built in
        model.compile(optimizer=make_optimizer(training, total_steps), jit_compile=training.jit_compile)
        return model
    return compile_masked_lm(model, training, total_steps)


def compile_masked_lm(model, training, total_steps=None):
    model.compile(
        optimizer=make_optimizer(training, total_steps),
        loss=MaskedLMLoss(),
        weighted_metrics=[MaskedAccuracy(), Perplexity()],
        jit_compile=training.jit_compile,
    )
    return model


def _dummy_batch(batch_size, seq_len, slots):
    return {
        "token_ids": tf.zeros((batch_size, seq_len), tf.int32),
        "segment_ids": tf.zeros((batch_size, seq_len), tf.int32),
        "padding_mask": tf.ones((batch_size, seq_len), tf.bool),
        "mask_positions": tf.zeros((batch_size, slots), tf.int32),
    }


def _check_same_run(run_dir, new_config):
    old = read_run_config(run_dir)
    if not old:
        return
    held = old.get("architecture") or LEGACY_ARCHITECTURE
    if held != new_config["architecture"]:
        raise UserInputError(
            f"{run_dir}: holds a {held} run, not {new_config['architecture']}; pass --architecture {held} to resume it, "
            "or use a new --out (or delete the folder) to start over"
        )
    for section in ("model", "data", "masking"):
        if old.get(section) != new_config.get(section):
            changed = sorted(k for k in set(old.get(section, {})) | set(new_config.get(section, {})) if old.get(section, {}).get(k) != new_config.get(section, {}).get(k))
            raise UserInputError(
                f"{run_dir}: holds a run with a different {section} config ({', '.join(changed)} changed); "
                "use a new --out or delete the folder to start over"
            )
    if old.get("init_from") != new_config.get("init_from"):
        raise UserInputError(
            f"{run_dir}: holds a run initialised from {old.get('init_from') or 'random weights'}, not from "
            f"{new_config.get('init_from') or 'random weights'}; use a new --out or delete the folder to start over"
        )


def _with_seq_len(config, seq_len):
    return dataclasses.replace(config, data=dataclasses.replace(config.data, seq_len=seq_len))


def _check_shards(directory, vocabulary, positions, verify_records, role):
    """Pre-flight for a given shards directory: vocabulary, rows against the model's positions, shards on disk."""
    manifest = read_manifest(directory)
    _check_vocabulary(directory, manifest, vocabulary)
    if manifest["seq_len"] > positions:
        raise UserInputError(
            f"{directory}: {role} shards hold rows of {manifest['seq_len']} ids, the model has {positions} positions "
            "(prepare the data with a shorter --seq-len, or give the model more with --model max_sequence_length=N)"
        )
    size = check_shards(directory, manifest)  # sizes: cheap
    if verify_records and size <= VERIFY_RECORDS_UP_TO:
        check_shards(directory, manifest, records=True)
    return manifest


def pretrain(config, data, vocab, run_dir, verbose="auto", init_from=None, eval_data=None):
    """Pre-trains a masked LM; returns a summary dict (final step, metrics, paths, and the model).

    Args:
        config: a `RunConfig` (`build_run_config` reads a file's and flags' values; `RunConfig()` made
            in code gives the same defaults: the architecture's masking and training where not passed).
        data: a shards directory written by `prepare`, or text files/folders.
        vocab: the vocabulary: a `Vocabulary` of any kind or its path (a WordPiece `vocab.txt`, a
            byte-level BPE folder, a SentencePiece `.model`); it is loaded once here and passed whole.
        run_dir: where the model, checkpoints, backup, logs and resolved config go.
        verbose: "auto" (a progress bar on a terminal, one plain line every `log_every` steps
            otherwise), "lines", 0 (silent), 1 (progress bar) or 2 (a line per checkpoint interval).
        init_from: a run folder (model.keras, vocab.txt, config.yaml) to continue pre-training from:
            its architecture and weights, a fresh optimizer and warm-up (see init_from.py). A `config`
            that names no architecture takes the source's defaults for what it does not set (a BERT
            source trains at BERT's 15% masking, not the default modern encoder's 30%).
        eval_data: held-out shards directory or text, evaluated every `training.eval_every` steps and
            at the end (the numbers of `keras-mlm evaluate` on the same checkpoint and data).
    """
    started = time.monotonic()
    vocabulary = as_vocabulary(vocab, config.data.lowercase)  # the Vocabulary object, passed whole from here on
    source = None
    if init_from is not None:
        if fileio.realpath(init_from) == fileio.realpath(run_dir):
            raise UserInputError(f"--init-from {init_from} is the --out folder: a continued run needs its own folder")
        source = init_lib.read_source(init_from, vocab, vocabulary)
        config = init_lib.continued_config(config, source)
    training = config.training
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else "lines"
    strategy = make_strategy(training.strategy, training.cpu_devices)
    check_jit_compile(strategy, training.jit_compile)  # [distributed] XLA needs a single replica
    per_replica_batch_size(strategy, training.batch_size)  # [distributed] the global batch must divide
    chief = is_chief(strategy)

    # Pre-flight: nothing is written to RUN_DIR before the inputs check out.
    kinds = vocabulary_kinds_of(config.architecture)
    if vocabulary.kind not in kinds:
        raise UserInputError(
            f"--vocab {vocab if isinstance(vocab, (str, os.PathLike)) else vocabulary}: a {vocabulary.kind} vocabulary; "
            f"architecture {config.architecture} reads {' or '.join(kinds)} (keras-mlm vocab --kind {kinds[0]})"
        )
    given = _shards_directory(data)
    if given is not None:
        config = _with_seq_len(config, read_manifest(given)["seq_len"])
    positions = config.encoder_config(len(vocabulary)).max_sequence_length
    first_start = not fileio.exists(os.path.join(run_dir, "backup", cb.ResumableBackup.META))
    if given is not None:
        _check_shards(given, vocabulary, positions, first_start, "training")
    elif config.data.seq_len > positions:
        raise UserInputError(f"--seq-len {config.data.seq_len} exceeds the model's {positions} positions")
    if eval_data is not None and _shards_directory(eval_data) is not None:
        _check_shards(_shards_directory(eval_data), vocabulary, positions, first_start, "evaluation")
    extra = {"init_from": fileio.abspath(init_from) if init_from is not None else None}
    _check_same_run(run_dir, {**config.to_dict(len(vocabulary)), **extra})

    if chief:
        fileio.makedirs(run_dir)
        cb.remove_stale_temporaries(run_dir)  # [faults] partial files of a killed earlier run
    # [distributed] Only the chief writes RUN_DIR. The other workers of a multi-worker run write their
    # checkpoints, backups and (if they must prepare text themselves) shards to a scratch folder that
    # is removed at the end; they read the chief's prepared data and backup when present.
    out_dir = run_dir if chief else tempfile.mkdtemp(prefix=f"keras-mlm-worker{task(strategy)[1]}-")
    try:
        return _pretrain(config, data, vocabulary, run_dir, out_dir, strategy, chief, verbose, source, eval_data, extra, started)
    finally:
        if not chief:
            shutil.rmtree(out_dir, ignore_errors=True)


def _say(enabled, message):
    if enabled:
        print(message, flush=True)


def _pretrain(config, data, vocabulary, run_dir, out_dir, strategy, chief, verbose, source, eval_data, extra, started):
    training = config.training
    shards = _worker_shards(data, vocabulary, config, run_dir) if not chief else None
    shards = shards or resolve_shards(data, vocabulary, config, out_dir)
    seq_len = read_manifest(shards)["seq_len"]
    config = _with_seq_len(config, seq_len)
    eval_shards = None
    if eval_data is not None:
        eval_shards = _worker_shards(eval_data, vocabulary, config, run_dir, "eval_data") if not chief else None
        eval_shards = eval_shards or resolve_shards(eval_data, vocabulary, config, out_dir, "eval_data")
    talk = chief and verbose != 0

    precision, reason = resolve_precision(training.precision)
    _say(talk, f"precision: {precision} ({reason})")
    extra = {
        **extra,
        "data_dir": fileio.abspath(shards),
        "eval_data_dir": fileio.abspath(eval_shards) if eval_shards else None,
        "precision_requested": training.precision,
    }
    config = dataclasses.replace(config, training=dataclasses.replace(training, precision=precision))
    training = config.training
    earlier = read_run_config(run_dir)
    plan = time_budget.saved_plan(earlier.get("time_budget"), training) if training.max_time is not None else None

    def write_config():
        if chief:
            save_config(os.path.join(run_dir, CONFIG_FILE), config, len(vocabulary), {**extra, **({"time_budget": plan} if plan else {})})

    write_config()
    if chief:
        vocabulary.save_beside(run_dir)  # vocab.txt, vocab-bpe/ or vocab.model: what load_run finds

    set_precision(precision)
    masker = MLMMasker.from_vocabulary(vocabulary, seq_len, config.masking, seed=training.seed)
    encoder_config = config.encoder_config(len(vocabulary))
    head = init_lib.head_options(source) if source is not None else {}

    evaluator = None
    if eval_shards is not None:
        from keras_mlm.evaluation.evaluate import Evaluator

        evaluator = Evaluator(vocabulary, eval_shards, max_tokens=training.eval_tokens)

    backup_meta = os.path.join(run_dir, "backup", cb.ResumableBackup.META)
    start_step = 0
    if fileio.exists(backup_meta):
        with fileio.open(backup_meta, encoding="utf-8") as f:
            start_step = int(json.load(f)["step"])

    pair = PAIR_OBJECTIVES[training.objective]

    def dataset_fn_from(position):
        def dataset_fn(input_context=None):
            return (functools.partial(pair_pretraining_dataset, objective=pair) if pair else pretraining_dataset)(
                shards,
                training.batch_size,
                masker,
                seed=training.seed,
                shuffle_buffer=training.shuffle_buffer,
                start_step=position,
                input_context=input_context,
                vocabulary=vocabulary,
            )

        return dataset_fn

    def build(total_steps):
        with strategy.scope():
            model = build_pretraining_model(config.architecture or DEFAULT_ARCHITECTURE, encoder_config, training, total_steps, **head)
            model(_dummy_batch(2, seq_len, masker.max_selections))  # built before restoring weights
        return model

    # [max_time] The schedule's step count: measured on a probe once, then fixed (see time_budget.py).
    budget = training.max_seconds
    if budget is not None and plan is None:
        _say(talk, f"max_time {training.max_time}: timing a few steps to plan the schedule")
        measured = time_budget.measure(
            lambda: build(training.steps or 10**9),
            distribute_dataset(strategy, dataset_fn_from(0), training.batch_size),
            budget,
            evaluator,
            keras_fit_fixes(),
        )
        if evaluator is not None:
            evaluator.release()  # the probe
        seconds_left = budget - (time.monotonic() - started)
        plan = time_budget.new_plan(measured, seconds_left, start_step, training, evaluator is not None)
        # [distributed] Every worker measured its own times; all follow the chief's plan.
        plan["planned_steps"] = int(chief_value(strategy, plan["planned_steps"], chief))
        write_config()
    total_steps = plan["planned_steps"] if plan else training.steps
    if plan:
        _say(talk, f"max_time {training.max_time}: schedule planned for {total_steps} steps "
                   f"({plan['step_seconds']:.3f}s a step measured)")

    keras.utils.set_random_seed(training.seed)
    model = build(total_steps)
    if source is not None and start_step == 0:
        init_lib.load_source_weights(model, source)  # a resumed run continues from its own backup instead
        _say(talk, f"initialised from {source.directory}")
    if source is not None:
        source.run = None  # the source model is no longer needed

    # [distributed] Every worker restores from RUN_DIR/backup (shared, as with Keras' BackupAndRestore),
    # inside the scope (restoring builds the optimizer's variables), and saves at the same steps
    # (saving may read variables collectively); non-chiefs save to scratch.
    backup = cb.ResumableBackup(os.path.join(out_dir, "backup"))
    restored = cb.ResumableBackup(os.path.join(run_dir, "backup"))
    with strategy.scope():
        initial_epoch = restored.restore(model)
    start_step = int(model.optimizer.iterations.numpy())
    # [faults] Batches already trained on, recorded by the backup. Equal to start_step, except under
    # mixed_float16, where an overflowing batch is skipped without counting a step. (Backups written
    # before this count was recorded ended complete intervals.)
    data_position = int(restored.restored.get("batches", initial_epoch * training.checkpoint_every))
    backup.batches = data_position
    # Whole checkpoint intervals from here to the last step (under mixed_float16 one more, for batches
    # skipped on overflow); StopAtStep ends the run at the step.
    epochs = initial_epoch + math.ceil(max(total_steps - start_step, 0) / training.checkpoint_every) + (precision == "mixed_float16")
    if start_step >= total_steps:
        initial_epoch = epochs  # finished earlier: nothing left to train, just write the outputs again

    # [distributed] Each input pipeline builds its share of each global batch (see distribute_dataset).
    dataset = distribute_dataset(strategy, dataset_fn_from(data_position), training.batch_size)

    from keras_mlm.inference.fill_mask import FillMask

    stop_on_nan = cb.StopOnNaN()
    healthy = lambda: stop_on_nan.bad_step is None  # noqa: E731
    checkpoints = cb.RollingCheckpoint(os.path.join(out_dir, "checkpoints"), training.keep_checkpoints, healthy)
    backup.should_save = healthy
    sampler = FillMask(masked_lm_of(model), vocabulary, seq_len)  # ELECTRA: its generator
    deadline = started + budget - plan["final_seconds"] if budget is not None else None
    stop_at_time = cb.StopAtTime(deadline, agree=lambda over: any_worker(strategy, over)) if deadline is not None else None
    logs_dir = os.path.join(run_dir, "logs")
    callbacks = [
        stop_on_nan,
        cb.StopAtStep(total_steps),
        *([stop_at_time] if stop_at_time else []),
        cb.StepLogger(os.path.join(logs_dir, "train"), training.log_every, training.batch_size * seq_len, enabled=chief,
                      lines=verbose == "lines", total_steps=total_steps, deadline=deadline),
        cb.FillMaskSamples(os.path.join(logs_dir, "train"), training.sample_every, lambda s: sampler(s, top_k=3),
                           [s.replace("[MASK]", vocabulary.mask_token) for s in training.sample_sentences], enabled=chief),
        *_illustration_samples(os.path.join(logs_dir, "train"), training, vocabulary, seq_len, config.masking, masker,
                               eval_shards or shards, enabled=chief, model=model),
        checkpoints,
        backup,
    ]
    validation = None
    if evaluator is not None:
        validation = cb.Validation(
            evaluator,
            training.validation_every,
            os.path.join(logs_dir, "validation"),
            os.path.join(out_dir, VALIDATION_FILE),
            resume_from=os.path.join(run_dir, VALIDATION_FILE),
            start_step=start_step,
            best_path=os.path.join(out_dir, BEST_FILE) if training.keep_best else None,
            should_run=healthy,
            enabled=chief,
        )
        callbacks.append(validation)
    try:
        with keras_fit_fixes():  # [distributed] Keras 3.15 fit under tf.distribute strategies, see strategy.py
            history = model.fit(
                dataset,
                epochs=epochs,
                initial_epoch=initial_epoch,
                steps_per_epoch=training.checkpoint_every,
                callbacks=callbacks,
                verbose=(0 if verbose == "lines" else verbose) if chief else 0,
                shuffle=False,  # the dataset shuffles itself (seeded, resumable)
            )
    except tf.errors.DataLossError:
        # A record that fails its checksum as it is read (a shard damaged since the checks above).
        culprit = find_corrupt_shard(shards) or (find_corrupt_shard(eval_shards) if eval_shards else None)
        step = int(model.optimizer.iterations.numpy())
        raise UserInputError(
            f"{culprit or shards + ': a shard could not be read'} (training stopped at step {step}; "
            "the last backup is intact: fix the data and rerun to resume)"
        ) from None
    if stop_on_nan.bad_step is not None:
        latest = checkpoints.latest()
        raise TrainingDiverged(
            f"loss became NaN or infinite at step {stop_on_nan.bad_step}; training stopped. "
            f"Last good checkpoint: {latest or 'none yet'} (lower --learning-rate or check the data)"
        )
    final_step = int(model.optimizer.iterations.numpy())
    if final_step >= total_steps:
        stop_reason = "steps"
    elif stop_at_time is not None and stop_at_time.stopped_at is not None:
        stop_reason = "max_time"
    else:
        stop_reason = "epochs"  # float16 overflows skipped more steps than the spare interval held
    metrics = {k: float(v[-1]) for k, v in history.history.items() if v}
    cb.atomic_save(model.save, os.path.join(out_dir, MODEL_FILE))  # [distributed] all workers save; non-chiefs to scratch
    summary = {
        "step": final_step,
        "resumed_from_step": start_step,
        "planned_steps": total_steps,
        "stop_reason": stop_reason,
        "precision": precision,
        "seconds": round(time.monotonic() - started, 3),
        **metrics,
    }
    if stop_at_time is not None:
        summary["max_time"] = {
            "budget_seconds": budget,
            "deadline_seconds": round(deadline - started, 3),  # the stop is at the first step boundary after it
            "stopped_at_seconds": None if stop_at_time.stopped_at is None else round(stop_at_time.stopped_at - started, 3),
            "last_step_seconds": None if stop_at_time.last_step_seconds is None else round(stop_at_time.last_step_seconds, 4),
            # the step boundary before the stop, checked before the deadline (None: the first step ended past it)
            "previous_check_seconds": None if stop_at_time.previous_check is None else round(stop_at_time.previous_check - started, 4),
        }
    if validation is not None:
        summary["validation"] = validation.history[-1] if validation.history else None
        if training.keep_best:
            summary["best_validation"] = validation.best
    if chief:
        cb.write_json(os.path.join(run_dir, SUMMARY_FILE), summary)
    # "model": the trained model itself, for library callers (and tests comparing workers' weights).
    return {**summary, "run_dir": run_dir, "shards": shards, "model": model}
