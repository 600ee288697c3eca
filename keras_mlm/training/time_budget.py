"""`--max-time`: a run planned for a wall-clock budget ("the best model in an hour" is one flag).

The learning-rate schedule (warm-up, then decay to the end rate) needs the number of steps up front,
and a budget does not give it. So before training, a throwaway copy of the model (a probe, same sizes,
same data pipeline, same strategy) runs a few steps; their measured time, with the measured cost of a
checkpoint and of a validation, gives the steps the budget allows. That count is then fixed: the real
model trains with a schedule over exactly that many steps, and the plan is saved in RUN_DIR/config.yaml
(`time_budget`), so a resumed run follows the same schedule instead of measuring again. The run also
stops at the first step boundary once the budget (less the time its final writes take) is spent, should
the steps turn out slower than measured; it then writes its final model, checkpoint and summary.

The budget counts from the start of `pretrain` (data preparation and the probe included), per
invocation: rerunning a stopped run resumes it with a new budget and the same schedule.
"""

import gc
import math
import os
import tempfile
import time

import keras

from keras_mlm.errors import UserInputError

WARM_STEPS = 2  # untimed: the first step traces the train function
MIN_TIMED_STEPS, MAX_TIMED_STEPS = 3, 20
PROBE_SHARE = 0.02  # timed steps stop early once they took this share of the budget


class _StepTimer(keras.callbacks.Callback):
    def __init__(self, budget):
        super().__init__()
        self.budget, self.times, self._begin = budget, [], None

    def on_train_batch_begin(self, batch, logs=None):
        self._begin = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter() - self._begin)
        timed = self.times[WARM_STEPS:]
        if len(timed) >= MAX_TIMED_STEPS or (len(timed) >= MIN_TIMED_STEPS and sum(timed) >= PROBE_SHARE * self.budget):
            self.model.stop_training = True


def measure(build, dataset, budget, evaluate=None, fit_context=None):
    """Times a probe model: {"step_seconds", "trace_seconds", "save_seconds", "validation_seconds"}.

    `build()` returns a compiled model (called inside the caller's strategy scope), `dataset` what
    `fit` consumes, `evaluate(model)` one validation (or None), `fit_context` wraps the probe's `fit`.
    """
    import contextlib

    probe = build()
    timer = _StepTimer(budget)
    with fit_context or contextlib.nullcontext():
        probe.fit(dataset, epochs=1, steps_per_epoch=WARM_STEPS + MAX_TIMED_STEPS, callbacks=[timer], verbose=0, shuffle=False)
    timed = timer.times[WARM_STEPS:] or timer.times
    step = sorted(timed)[len(timed) // 2]  # the median: robust to a step slowed by another process
    measured = {"step_seconds": step, "trace_seconds": max(timer.times[0] - step, 0.0)}
    with tempfile.TemporaryDirectory(prefix="keras-mlm-probe-") as scratch:
        begin = time.perf_counter()
        probe.save(os.path.join(scratch, "probe.keras"))
        probe.save_weights(os.path.join(scratch, "probe.weights.h5"))
        measured["save_seconds"] = time.perf_counter() - begin  # a checkpoint and a backup
    measured["validation_seconds"] = 0.0
    if evaluate is not None:
        begin = time.perf_counter()
        evaluate(probe)
        measured["validation_seconds"] = time.perf_counter() - begin  # tracing included: an upper bound
    del probe, timer
    gc.collect()
    return measured


def plan_steps(measured, seconds_left, start_step, training, validating):
    """The step count a schedule should span to end within `seconds_left`, and the final writes' time.

    Per step: the measured step, plus its share of a checkpoint every `checkpoint_every` steps and of a
    validation every `validation_every` steps; once: the real model's trace, the final writes (model,
    checkpoint, backup) and the final validation.
    """
    per_step = measured["step_seconds"] + measured["save_seconds"] / training.checkpoint_every
    final = 1.5 * measured["save_seconds"]
    if validating:
        per_step += measured["validation_seconds"] / training.validation_every
        final += measured["validation_seconds"]
    more = math.floor((seconds_left - measured["trace_seconds"] - final) / per_step)
    planned = start_step + more
    if training.steps is not None:
        planned = min(planned, training.steps)
    if planned <= start_step and (training.steps is None or start_step < training.steps):
        raise UserInputError(
            f"--max-time {training.max_time} leaves no time to train: {seconds_left:.0f}s left after setup, "
            f"a step takes {measured['step_seconds']:.2f}s and the final writes about {final:.1f}s; give a longer budget"
        )
    return planned, final


def new_plan(measured, seconds_left, start_step, training, validating):
    planned, final = plan_steps(measured, seconds_left, start_step, training, validating)
    return {
        "max_time": training.max_time,
        "seconds": training.max_seconds,
        "steps_cap": training.steps,
        "planned_steps": int(planned),
        "planned_from_step": int(start_step),
        "seconds_left": round(seconds_left, 3),  # of the budget, after setup and the probe
        "final_seconds": round(final, 3),
        **{k: round(v, 4) for k, v in measured.items()},
    }


def saved_plan(plan, training):
    """A plan saved by an earlier invocation, if it was made for this budget and step cap."""
    if plan and plan.get("max_time") == training.max_time and plan.get("steps_cap") == training.steps:
        return plan
    return None
