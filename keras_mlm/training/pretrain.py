"""The pre-training entry point: data + vocabulary + config -> a trained masked LM in RUN_DIR.

Plain `model.fit` underneath. One Keras "epoch" is one checkpoint interval, so the resumable backup
(weights + optimizer, written atomically) is taken every `checkpoint_every` steps, and a rerun of the
same command continues from the last backup: the data pipeline skips the batches already trained on
and, masking being a pure function of (seed, step), sees the very masks the first run would have.
"""

import math
import os
import shutil
import tempfile

import keras
import tensorflow as tf

from keras_mlm.data.dataset import pretraining_dataset
from keras_mlm.data.prepare import MANIFEST, prepare, read_manifest
from keras_mlm.errors import UserInputError
from keras_mlm.inference.run import CONFIG_FILE, MODEL_FILE, VOCAB_FILE, read_run_config
from keras_mlm.losses import MaskedLMLoss
from keras_mlm.masking import MLMMasker
from keras_mlm.metrics import MaskedAccuracy, Perplexity
from keras_mlm.models import build_masked_lm
from keras_mlm.tokenizers import vocab as vocab_lib
from keras_mlm.training import callbacks as cb
from keras_mlm.training.optimizer import make_optimizer
from keras_mlm.training.run_config import save_config
from keras_mlm.training.strategy import (
    check_jit_compile,
    distribute_dataset,
    is_chief,
    keras_fit_fixes,
    make_strategy,
    per_replica_batch_size,
    set_precision,
    task,
)


class TrainingDiverged(UserInputError):
    """The loss became NaN or infinite."""


def resolve_shards(data, tokens, config, run_dir):
    """`data` is a shards directory (used as is) or raw text, prepared into RUN_DIR/data once."""
    paths = [data] if isinstance(data, (str, os.PathLike)) else list(data)
    if len(paths) == 1 and os.path.isfile(os.path.join(paths[0], MANIFEST)):
        manifest = read_manifest(paths[0])
        if manifest["vocab_sha256"] != vocab_lib.vocabulary_sha256(tokens):
            raise UserInputError(f"{paths[0]}: shards were prepared with another vocabulary than the one given")
        return os.fspath(paths[0])
    target = os.path.join(run_dir, "data")
    if os.path.isfile(os.path.join(target, MANIFEST)):
        manifest = read_manifest(target)
        if manifest["vocab_sha256"] == vocab_lib.vocabulary_sha256(tokens) and manifest["seq_len"] == config.data.seq_len:
            return target  # prepared by an earlier (interrupted) run of the same command
    prepare(paths, tokens, target, config.data, overwrite=True, progress=True)
    return target


def _worker_shards(data, tokens, config, run_dir):
    """[distributed] A non-chief worker's shards: the given shards directory, or the chief's prepared
    RUN_DIR/data when it is complete and matches; None when the worker must prepare its own copy."""
    paths = [data] if isinstance(data, (str, os.PathLike)) else list(data)
    if len(paths) == 1 and os.path.isfile(os.path.join(paths[0], MANIFEST)):
        return None  # a shards directory: resolve_shards checks and returns it
    target = os.path.join(run_dir, "data")
    if os.path.isfile(os.path.join(target, MANIFEST)):
        manifest = read_manifest(target)
        if manifest["vocab_sha256"] == vocab_lib.vocabulary_sha256(tokens) and manifest["seq_len"] == config.data.seq_len:
            return target
    return None


def compile_masked_lm(model, training):
    model.compile(
        optimizer=make_optimizer(training),
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
    for section in ("model", "data", "masking"):
        if old.get(section) != new_config.get(section):
            changed = sorted(k for k in set(old.get(section, {})) | set(new_config.get(section, {})) if old.get(section, {}).get(k) != new_config.get(section, {}).get(k))
            raise UserInputError(
                f"{run_dir}: holds a run with a different {section} config ({', '.join(changed)} changed); "
                "use a new --out or delete the folder to start over"
            )


def pretrain(config, data, vocab, run_dir, verbose="auto"):
    """Pre-trains a masked LM; returns a summary dict (final step, metrics, paths).

    Args:
        config: a `RunConfig`.
        data: a shards directory written by `prepare`, or text files/folders.
        vocab: vocabulary file path.
        run_dir: where the model, checkpoints, backup, logs and resolved config go.
    """
    training = config.training
    tokens = vocab_lib.load_vocabulary(vocab)
    strategy = make_strategy(training.strategy, training.cpu_devices)
    check_jit_compile(strategy, training.jit_compile)  # [distributed] XLA needs a single replica
    per_replica_batch_size(strategy, training.batch_size)  # [distributed] the global batch must divide
    chief = is_chief(strategy)
    if chief:
        os.makedirs(run_dir, exist_ok=True)
        cb.remove_stale_temporaries(run_dir)  # [faults] partial files of a killed earlier run
    # [distributed] Only the chief writes RUN_DIR. The other workers of a multi-worker run write their
    # checkpoints, backups and (if they must prepare text themselves) shards to a scratch folder that
    # is removed at the end; they read the chief's prepared data and backup when present.
    out_dir = run_dir if chief else tempfile.mkdtemp(prefix=f"keras-mlm-worker{task(strategy)[1]}-")
    try:
        return _pretrain(config, data, tokens, run_dir, out_dir, strategy, chief, verbose)
    finally:
        if not chief:
            shutil.rmtree(out_dir, ignore_errors=True)


def _pretrain(config, data, tokens, run_dir, out_dir, strategy, chief, verbose):
    training = config.training
    shards = _worker_shards(data, tokens, config, run_dir) if not chief else None
    shards = shards or resolve_shards(data, tokens, config, out_dir)
    manifest = read_manifest(shards)
    if manifest["seq_len"] != config.data.seq_len:
        config = type(config)(**{**config.__dict__, "data": type(config.data)(**{**config.data.__dict__, "seq_len": manifest["seq_len"]})})
    seq_len = manifest["seq_len"]
    resolved = config.to_dict(len(tokens))
    _check_same_run(run_dir, resolved)
    if chief:
        save_config(os.path.join(run_dir, CONFIG_FILE), config, len(tokens), {"data_dir": os.path.abspath(shards)})
        vocab_lib.write_vocabulary(tokens, os.path.join(run_dir, VOCAB_FILE))

    keras.utils.set_random_seed(training.seed)
    set_precision(training.precision)
    masker = MLMMasker.from_vocabulary(tokens, seq_len, config.masking, seed=training.seed)
    with strategy.scope():
        model = build_masked_lm(config.encoder_config(len(tokens)))
        compile_masked_lm(model, training)
        model(_dummy_batch(2, seq_len, masker.max_selections))  # built before restoring weights

    # [distributed] Every worker restores from RUN_DIR/backup (shared, as with Keras' BackupAndRestore),
    # inside the scope (restoring builds the optimizer's variables), and saves at the same steps
    # (saving may read variables collectively); non-chiefs save to scratch.
    backup = cb.ResumableBackup(os.path.join(out_dir, "backup"))
    with strategy.scope():
        initial_epoch = cb.ResumableBackup(os.path.join(run_dir, "backup")).restore(model)
    start_step = int(model.optimizer.iterations.numpy())
    # [faults] Batches already trained on: every epoch before the backup's was complete. Equal to
    # start_step, except under mixed_float16, where an overflowing batch is skipped without counting.
    data_position = initial_epoch * training.checkpoint_every
    epochs = math.ceil(training.steps / training.checkpoint_every)
    if start_step >= training.steps:
        initial_epoch = epochs  # finished earlier: nothing left to train, just write the outputs again

    def dataset_fn(input_context=None):
        return pretraining_dataset(
            shards,
            training.batch_size,
            masker,
            seed=training.seed,
            shuffle_buffer=training.shuffle_buffer,
            start_step=data_position,
            input_context=input_context,
            vocabulary=tokens,
        )

    # [distributed] Each input pipeline builds its share of each global batch (see distribute_dataset).
    dataset = distribute_dataset(strategy, dataset_fn, training.batch_size)

    from keras_mlm.inference.fill_mask import FillMask

    stop_on_nan = cb.StopOnNaN()
    healthy = lambda: stop_on_nan.bad_step is None  # noqa: E731
    checkpoints = cb.RollingCheckpoint(os.path.join(out_dir, "checkpoints"), training.keep_checkpoints, healthy)
    backup.should_save = healthy
    sampler = FillMask(model, tokens, seq_len)
    callbacks = [
        stop_on_nan,
        cb.StopAtStep(training.steps),
        cb.StepLogger(os.path.join(run_dir, "logs", "train"), training.log_every, training.batch_size * seq_len, enabled=chief),
        cb.FillMaskSamples(
            os.path.join(run_dir, "logs", "train"), training.sample_every, lambda s: sampler(s, top_k=3), training.sample_sentences, enabled=chief
        ),
        checkpoints,
        backup,
    ]
    with keras_fit_fixes():  # [distributed] Keras 3.15 fit under tf.distribute strategies, see strategy.py
        history = model.fit(
            dataset,
            epochs=epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=training.checkpoint_every,
            callbacks=callbacks,
            verbose=verbose if chief else 0,
            shuffle=False,  # the dataset shuffles itself (seeded, resumable)
        )
    if stop_on_nan.bad_step is not None:
        latest = checkpoints.latest()
        raise TrainingDiverged(
            f"loss became NaN or infinite at step {stop_on_nan.bad_step}; training stopped. "
            f"Last good checkpoint: {latest or 'none yet'} (lower --learning-rate or check the data)"
        )
    final_step = int(model.optimizer.iterations.numpy())
    metrics = {k: float(v[-1]) for k, v in history.history.items() if v}
    cb.atomic_save(model.save, os.path.join(out_dir, MODEL_FILE))  # [distributed] all workers save; non-chiefs to scratch
    if chief:
        cb.write_json(os.path.join(run_dir, "summary.json"), {"step": final_step, "resumed_from_step": start_step, **metrics})
    # "model": the trained model itself, for library callers (and tests comparing workers' weights).
    return {"step": final_step, "resumed_from_step": start_step, "run_dir": run_dir, "shards": shards, **metrics, "model": model}
