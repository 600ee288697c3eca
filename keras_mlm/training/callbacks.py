"""Callbacks of a pre-training run: logging, checkpoints, resumable backups, stopping.

Every file is written under a temporary name and renamed (`fileio.atomic_save`, on any filesystem
`tf.io.gfile` knows), so a run killed at any moment leaves only complete files. Steps are read from
`optimizer.iterations`, which survives a resume, so TensorBoard curves and checkpoint names continue
where the run stopped instead of starting again at 0.
"""

import json
import math
import os
import re
import sys
import time

import keras
import tensorflow as tf

from keras_mlm import fileio
from keras_mlm.errors import UserInputError
from keras_mlm.fileio import atomic_save


def _step(model):
    return int(model.optimizer.iterations.numpy())


TEMPORARY = re.compile(r"\.tmp-\d+")  # atomic_save's ".name.tmp-PID.ext" (write_vocabulary's "name.tmp-PID" before it)


def remove_stale_temporaries(directory):
    """Deletes the temporary files a killed run left under `directory` (returns how many).

    [faults] A SIGKILL between `save(tmp)` and the rename leaves a partial `.name.tmp-PID.ext`; the
    real files are never partial, and a rerun calls this first so no partial file stays behind.
    """
    removed = 0
    for root, _, names in fileio.walk(directory):
        for name in names:
            if TEMPORARY.search(name):
                fileio.remove(os.path.join(root, name))
                removed += 1
    return removed


write_json = fileio.write_json  # callbacks.write_json: the name the training modules use


class StopAtStep(keras.callbacks.Callback):
    """Ends training once the optimizer has made `steps` steps (the last 'epoch' may be short)."""

    def __init__(self, steps):
        super().__init__()
        self.steps = steps

    def on_train_batch_end(self, batch, logs=None):
        if _step(self.model) >= self.steps:
            self.model.stop_training = True


class StopAtTime(keras.callbacks.Callback):
    """Ends training at the first step boundary at or after `deadline` (a `clock()` reading).

    `agree(over)` turns this process's verdict into the one every worker acts on (a multi-worker run
    must stop at the same step everywhere). Remembers when it stopped, how long that last step took, and
    when the step boundary before it was checked (`previous_check`, before the deadline).
    """

    def __init__(self, deadline, clock=time.monotonic, agree=lambda over: over):
        super().__init__()
        self.deadline, self.clock, self.agree = deadline, clock, agree
        self.stopped_at = self.last_step_seconds = self.previous_check = None
        self._begin = None

    def on_train_batch_begin(self, batch, logs=None):
        self._begin = self.clock()

    def on_train_batch_end(self, batch, logs=None):
        now = self.clock()
        if self.agree(now >= self.deadline):
            self.stopped_at, self.last_step_seconds = now, now - (self._begin if self._begin is not None else now)
            self.model.stop_training = True
        else:
            self.previous_check = now


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


def _duration(seconds):
    seconds = max(int(round(seconds)), 0)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class StepLogger(keras.callbacks.Callback):
    """TensorBoard scalars every `every` steps: the logged metrics, learning rate and tokens/s.

    Also puts `learning_rate` and `tokens_per_second` into the logs, so the progress bar shows them.
    With `lines=True` (stdout is not a terminal: a log file, a pipe, a batch job) it prints one plain
    line per interval instead of a progress bar: step, loss, accuracy, tokens/s, learning rate, ETA
    (until `total_steps`, or the `deadline` of `clock()` if that comes first).
    """

    def __init__(self, log_dir, every, tokens_per_step, enabled=True, lines=False, total_steps=None, deadline=None, clock=time.monotonic, out=None):
        super().__init__()
        self.every, self.tokens_per_step = every, tokens_per_step
        self.writer = tf.summary.create_file_writer(log_dir) if enabled else None
        self.lines = lines and enabled
        self.total_steps, self.deadline, self.clock, self.out = total_steps, deadline, clock, out
        self._clock = None
        self._clock_step = 0

    def on_train_begin(self, logs=None):
        self._clock, self._clock_step = time.perf_counter(), _step(self.model)

    def on_train_batch_end(self, batch, logs=None):
        step = _step(self.model)
        if logs is None or step % self.every:
            return
        now = time.perf_counter()
        seconds_per_step = (now - self._clock) / max(step - self._clock_step, 1)
        logs["tokens_per_second"] = self.tokens_per_step * (step - self._clock_step) / max(now - self._clock, 1e-9)
        self._clock, self._clock_step = now, step
        learning_rate = self.model.optimizer.learning_rate
        logs["learning_rate"] = float(learning_rate.numpy() if hasattr(learning_rate, "numpy") else learning_rate)
        if self.lines:
            self._print_line(step, logs, seconds_per_step)
        if self.writer is None:
            return
        with self.writer.as_default(step=step):
            for name, value in logs.items():
                tf.summary.scalar(name, float(value))
        self.writer.flush()

    def _print_line(self, step, logs, seconds_per_step):
        eta = None
        if self.total_steps:
            eta = (self.total_steps - step) * seconds_per_step
        if self.deadline is not None:
            left = self.deadline - self.clock()
            eta = left if eta is None else min(eta, left)
        fields = [f"step {step}" + (f"/{self.total_steps}" if self.total_steps else "")]
        for name, label in (("loss", "loss"), ("masked_accuracy", "accuracy"),  # an ELECTRA run logs its two accuracies
                            ("generator_accuracy", "generator accuracy"), ("discriminator_accuracy", "discriminator accuracy")):
            if name in logs:
                fields.append(f"{label} {float(logs[name]):.4f}")
        fields.append(f"{logs['tokens_per_second']:,.0f} tokens/s")
        fields.append(f"lr {logs['learning_rate']:.3g}")
        if eta is not None:
            fields.append(f"ETA {_duration(eta)}")
        print("  ".join(fields), file=self.out or sys.stdout, flush=True)


class Validation(keras.callbacks.Callback):
    """Held-out metrics every `every` steps and at the end of training.

    `evaluate(model)` returns {"loss", "accuracy", "perplexity", "tokens"} (an `Evaluator`; for an ELECTRA
    run, the generator's masked-LM numbers, under the same tags). Each result
    goes to TensorBoard under `log_dir` at the optimizer step (with the training curves' tag names, so
    TensorBoard overlays them; a resumed run continues the curve), to `history` (saved to `state_path`
    after each validation, and read back from `resume_from` so a resumed run keeps its earlier
    results), and, with `best_path`, the model of the lowest loss is saved there.
    """

    TAGS = {"loss": "loss", "accuracy": "masked_accuracy", "perplexity": "perplexity"}

    def __init__(self, evaluate, every, log_dir, state_path, resume_from=None, start_step=0, best_path=None, should_run=lambda: True, enabled=True):
        super().__init__()
        self.evaluate, self.every, self.state_path, self.best_path = evaluate, every, state_path, best_path
        self.should_run = should_run
        self.writer = tf.summary.create_file_writer(log_dir) if enabled else None
        self.history, self.best = [], None
        if resume_from and fileio.exists(resume_from):
            with fileio.open(resume_from, encoding="utf-8") as f:
                saved = json.load(f)
            self.history = [e for e in saved.get("history", []) if e["step"] <= start_step]
            best = saved.get("best")
            # The best model saved by the earlier run (in RUN_DIR, beside `resume_from`): every worker of a
            # multi-worker run decides from these same files, so they save (collectively) at the same steps.
            kept = best_path and fileio.exists(os.path.join(os.path.dirname(resume_from), os.path.basename(best_path)))
            self.best = best if best and best["step"] <= start_step and kept else None

    def on_train_batch_end(self, batch, logs=None):
        if _step(self.model) % self.every == 0 and self.should_run():
            self.validate()

    def on_train_end(self, logs=None):
        if self.should_run():
            self.validate()

    def validate(self):
        """Evaluates the model now, unless this step was already evaluated; returns the result."""
        step = _step(self.model)
        if self.history and self.history[-1]["step"] == step:
            return self.history[-1]
        entry = {"step": step, **self.evaluate(self.model)}
        self.history.append(entry)
        if self.writer is not None:
            with self.writer.as_default(step=step):
                for name, tag in self.TAGS.items():
                    tf.summary.scalar(tag, float(entry[name]))
            self.writer.flush()
        if self.best_path and (self.best is None or entry["loss"] < self.best["loss"]):
            atomic_save(self.model.save, self.best_path)
            self.best = entry
        write_json(self.state_path, {"history": self.history, "best": self.best})
        return entry


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
        for sentence in self.sentences:  # one at a time: a sentence the model cannot take is skipped, never the run
            try:
                (result,) = self.predict([sentence])
            except UserInputError as e:
                lines.append(f"| {sentence} | (skipped: {e}) |")
                continue
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
        for old in sorted(fileio.glob(os.path.join(self.directory, "ckpt-*.keras")))[: -self.keep]:
            fileio.remove(old)

    def latest(self):
        found = sorted(fileio.glob(os.path.join(self.directory, "ckpt-*.keras")))
        return found[-1] if found else None


class ResumableBackup(keras.callbacks.Callback):
    """The training state (weights + optimizer), the epoch and the batches read, saved atomically at every epoch end.

    Keras' `BackupAndRestore` writes its files in place (a kill during the write corrupts them) and
    restarts an interrupted epoch from its first batch; here an epoch is one checkpoint interval, the
    state file is renamed into place, and `restore` tells the caller the epoch to resume from and
    (`restored["batches"]`) how many batches were trained on, so it can start the data pipeline at the
    right batch. A run stopped within an interval (`--max-time`) saves there too: Keras ends the
    epoch early.
    """

    STATE, META = "state.weights.h5", "state.json"

    def __init__(self, directory, should_save=lambda: True, enabled=True):
        super().__init__()
        self.directory, self.should_save, self.enabled = directory, should_save, enabled
        self.restored = {}
        self.batches = 0  # batches trained on, counting those before a resume (set by the caller)

    def restore(self, model):
        """Loads the saved state into a built, compiled model; returns the epoch to start at (0 if none)."""
        meta_path = os.path.join(self.directory, self.META)
        if not fileio.exists(meta_path):
            return 0
        with fileio.open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        model.load_weights(os.path.join(self.directory, meta["state"]))
        self.restored = meta
        return int(meta["epoch"])

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1

    def on_epoch_end(self, epoch, logs=None):
        if not self.enabled or not self.should_save():
            return
        # The weights go to a new file name first, then the metadata that points at it is renamed in:
        # whenever the process dies, state.json names a complete weights file (also where a "rename"
        # is a copy, on object stores).
        step = _step(self.model)
        name = f"state-{step:08d}.weights.h5"
        atomic_save(self.model.save_weights, os.path.join(self.directory, name))
        write_json(os.path.join(self.directory, self.META), {"epoch": epoch + 1, "step": step, "batches": self.batches, "state": name})
        for old in fileio.glob(os.path.join(self.directory, "state-*.weights.h5")):
            if os.path.basename(old) != name:
                fileio.remove(old)
