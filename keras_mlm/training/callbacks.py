"""Callbacks of a pre-training run: logging, checkpoints, resumable backups, stopping.

Every file is written under a temporary name and renamed, so a run killed at any moment leaves only
complete files. Steps are read from `optimizer.iterations`, which survives a resume, so TensorBoard
curves and checkpoint names continue where the run stopped instead of starting again at 0.
"""

import glob
import json
import math
import os
import re
import time

import keras
import tensorflow as tf


def _step(model):
    return int(model.optimizer.iterations.numpy())


def atomic_save(save, path):
    """Calls `save(tmp_path)` and renames the result to `path` (same folder, so the rename is atomic)."""
    directory, name = os.path.split(path)
    os.makedirs(directory or ".", exist_ok=True)
    stem, dot, ext = name.partition(".")
    tmp = os.path.join(directory, f".{stem}.tmp-{os.getpid()}{dot}{ext}")
    try:
        save(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


TEMPORARY = re.compile(r"\.tmp-\d+")  # atomic_save's ".name.tmp-PID.ext", write_vocabulary's "name.tmp-PID"


def remove_stale_temporaries(directory):
    """Deletes the temporary files a killed run left under `directory` (returns how many).

    [faults] A SIGKILL between `save(tmp)` and the rename leaves a partial `.name.tmp-PID.ext`; the
    real files are never partial, and a rerun calls this first so no partial file stays behind.
    """
    removed = 0
    for root, _, names in os.walk(directory):
        for name in names:
            if TEMPORARY.search(name):
                os.remove(os.path.join(root, name))
                removed += 1
    return removed


def write_json(path, payload):
    def save(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=2)
            f.flush()
            os.fsync(f.fileno())

    atomic_save(save, path)


class StopAtStep(keras.callbacks.Callback):
    """Ends training once the optimizer has made `steps` steps (the last 'epoch' may be short)."""

    def __init__(self, steps):
        super().__init__()
        self.steps = steps

    def on_train_batch_end(self, batch, logs=None):
        if _step(self.model) >= self.steps:
            self.model.stop_training = True


class StopOnNaN(keras.callbacks.Callback):
    """Stops at the first non-finite loss and remembers the step; the backup callback then skips saving."""

    def __init__(self):
        super().__init__()
        self.bad_step = None

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.bad_step = _step(self.model)
            self.model.stop_training = True


class StepLogger(keras.callbacks.Callback):
    """TensorBoard scalars every `every` steps: the logged metrics, learning rate and tokens/s.

    Also puts `learning_rate` and `tokens_per_second` into the logs, so the progress bar shows them.
    """

    def __init__(self, log_dir, every, tokens_per_step, enabled=True):
        super().__init__()
        self.every, self.tokens_per_step = every, tokens_per_step
        self.writer = tf.summary.create_file_writer(log_dir) if enabled else None
        self._clock = None
        self._clock_step = 0

    def on_train_begin(self, logs=None):
        self._clock, self._clock_step = time.perf_counter(), _step(self.model)

    def on_train_batch_end(self, batch, logs=None):
        step = _step(self.model)
        if logs is None or step % self.every:
            return
        now = time.perf_counter()
        logs["tokens_per_second"] = self.tokens_per_step * (step - self._clock_step) / max(now - self._clock, 1e-9)
        self._clock, self._clock_step = now, step
        learning_rate = self.model.optimizer.learning_rate
        logs["learning_rate"] = float(learning_rate.numpy() if hasattr(learning_rate, "numpy") else learning_rate)
        if self.writer is None:
            return
        with self.writer.as_default(step=step):
            for name, value in logs.items():
                tf.summary.scalar(name, float(value))
        self.writer.flush()


class FillMaskSamples(keras.callbacks.Callback):
    """Every `every` steps, writes fill-mask predictions for fixed sentences as a TensorBoard text summary."""

    def __init__(self, log_dir, every, predict, sentences, enabled=True):
        super().__init__()
        self.every, self.predict, self.sentences = every, predict, list(sentences)
        self.writer = tf.summary.create_file_writer(log_dir) if enabled and self.sentences else None

    def on_train_batch_end(self, batch, logs=None):
        step = _step(self.model)
        if self.writer is None or step % self.every:
            return
        lines = []
        for result in self.predict(self.sentences):
            guesses = "; ".join(
                ", ".join(f"{p['token']} ({p['probability']:.2f})" for p in mask["predictions"]) for mask in result["masks"]
            )
            lines.append(f"| {result['text']} | {guesses} |")
        with self.writer.as_default(step=step):
            tf.summary.text("fill_mask", "| sentence | predictions |\n|---|---|\n" + "\n".join(lines))
        self.writer.flush()


class RollingCheckpoint(keras.callbacks.Callback):
    """Saves `ckpt-<step>.keras` at each epoch end (= every `checkpoint_every` steps), keeping the newest `keep`."""

    def __init__(self, directory, keep, should_save=lambda: True, enabled=True):
        super().__init__()
        self.directory, self.keep, self.should_save, self.enabled = directory, keep, should_save, enabled

    def on_epoch_end(self, epoch, logs=None):
        if not self.enabled or not self.should_save():
            return
        step = _step(self.model)
        atomic_save(self.model.save, os.path.join(self.directory, f"ckpt-{step:08d}.keras"))
        for old in sorted(glob.glob(os.path.join(self.directory, "ckpt-*.keras")))[: -self.keep]:
            os.remove(old)

    def latest(self):
        found = sorted(glob.glob(os.path.join(self.directory, "ckpt-*.keras")))
        return found[-1] if found else None


class ResumableBackup(keras.callbacks.Callback):
    """The training state (weights + optimizer) and the epoch, saved atomically at every epoch end.

    Keras' `BackupAndRestore` writes its files in place (a kill during the write corrupts them) and
    restarts an interrupted epoch from its first batch; here an epoch is one checkpoint interval, the
    state file is renamed into place, and `restore` tells the caller the epoch to resume from, so it
    can start the data pipeline at the right batch.
    """

    STATE, META = "state.weights.h5", "state.json"

    def __init__(self, directory, should_save=lambda: True, enabled=True):
        super().__init__()
        self.directory, self.should_save, self.enabled = directory, should_save, enabled

    def restore(self, model):
        """Loads the saved state into a built, compiled model; returns the epoch to start at (0 if none)."""
        meta_path = os.path.join(self.directory, self.META)
        if not os.path.exists(meta_path):
            return 0
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        model.load_weights(os.path.join(self.directory, meta["state"]))
        return int(meta["epoch"])

    def on_epoch_end(self, epoch, logs=None):
        if not self.enabled or not self.should_save():
            return
        # The weights go to a new file name first, then the metadata that points at it is renamed in:
        # whenever the process dies, state.json names a complete weights file.
        step = _step(self.model)
        name = f"state-{step:08d}.weights.h5"
        atomic_save(self.model.save_weights, os.path.join(self.directory, name))
        write_json(os.path.join(self.directory, self.META), {"epoch": epoch + 1, "step": step, "state": name})
        for old in glob.glob(os.path.join(self.directory, "state-*.weights.h5")):
            if os.path.basename(old) != name:
                os.remove(old)
