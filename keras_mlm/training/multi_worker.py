"""`keras-mlm pretrain --num-workers N`: a multi-worker run on this machine, one process per worker.

    launch_local_workers(config, data, vocab, run_dir)      # config.training.num_workers processes

writes the run's resolved configuration and arguments to a launch file and starts N worker processes,
`python -m keras_mlm.training.multi_worker LAUNCH.json`, each with a `TF_CONFIG` naming all N as
workers on free 127.0.0.1 ports and itself as task i (so `--strategy auto` picks
MultiWorkerMirroredStrategy); each calls `pretrain` with that configuration. Worker 0 is the chief: it
writes RUN_DIR and prints to this terminal; the others print to a log file that is shown if they fail.
When one worker fails, the others are stopped (their peer is gone: they would wait for it forever) and
its exit code is returned; the command can then be rerun as is and resumes from RUN_DIR/backup.

Raw text is prepared into RUN_DIR/data (and RUN_DIR/eval_data) once, here, before the workers start,
so that they do not race to write the same shards.
"""

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from keras_mlm import fileio
from keras_mlm.errors import UserInputError

POLL_SECONDS = 0.2
STOP_GRACE_SECONDS = 10.0


def free_ports(count, host="127.0.0.1"):
    """`count` distinct TCP ports free on `host` right now (the OS picks them)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(addresses, index):
    """The TF_CONFIG of worker `index` in a cluster of `addresses` (all "worker"; worker 0 is chief)."""
    return json.dumps({"cluster": {"worker": list(addresses)}, "task": {"type": "worker", "index": index}})


def worker_command(launch_file):
    """The command line of one worker: this module, run on the launch file."""
    return [sys.executable, "-m", "keras_mlm.training.multi_worker", launch_file]


def _death_signal():
    """Linux: a function that, run in a child before exec, makes it get SIGKILL when the launcher dies
    (even by SIGKILL), so that no orphan worker goes on training; None elsewhere.

    libc's prctl is looked up here, in the parent: between fork and exec the child runs only this call.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _prepare_once(config, data, vocab, run_dir, eval_data):
    """Prepares raw text into RUN_DIR/data and RUN_DIR/eval_data (a no-op for shards)."""
    from keras_mlm.tokenizers import vocab as vocab_lib
    from keras_mlm.training.pretrain import resolve_shards

    tokens = vocab_lib.load_vocabulary(vocab)
    fileio.makedirs(run_dir)
    resolve_shards(data, tokens, config, run_dir)
    if eval_data is not None:
        resolve_shards(eval_data, tokens, config, run_dir, "eval_data")


def write_launch_file(path, config, data, vocab, run_dir, init_from=None, eval_data=None):
    """What every worker runs: the resolved configuration (the sections `build_run_config` reads) and
    the arguments of `pretrain`, as JSON."""
    paths = lambda value: None if value is None else [os.fspath(v) for v in ([value] if isinstance(value, (str, os.PathLike)) else value)]  # noqa: E731
    launch = {
        "config": {**config.to_dict(), "preset": config.preset},  # None stays None: a continued run takes its source's
        "given": sorted(config.given),  # what a continued run keeps of the config
        "data": paths(data),
        "vocab": os.fspath(vocab),
        "run_dir": os.fspath(run_dir),
        "init_from": None if init_from is None else os.fspath(init_from),
        "eval_data": paths(eval_data),
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(launch, f, indent=2)


def launch_config(launch, source):
    """The `RunConfig` a launch file (read as JSON) holds, with the keys its config file and flags set."""
    from keras_mlm.training.run_config import build_run_config

    config = build_run_config(launch["config"], source=source)
    if launch.get("given") is not None:
        config = dataclasses.replace(config, given=frozenset(tuple(pair) for pair in launch["given"]))
    return config


def _stop(processes, grace=STOP_GRACE_SECONDS):
    """SIGTERM to every process still running, SIGKILL to those still there after `grace` seconds."""
    for p in processes:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + grace
    for p in processes:
        try:
            p.wait(timeout=max(deadline - time.monotonic(), 0.01))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _exit_code(returncode):
    """A shell-style exit code: 128 + N for a process killed by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def _tail(path, lines=20):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def launch_local_workers(config, data, vocab, run_dir, init_from=None, eval_data=None, prepare=True):
    """Runs `pretrain` as `config.training.num_workers` local workers; returns 0 or the first failure's exit code.

    Args:
        config: the resolved `RunConfig` (training.num_workers >= 2).
        data, vocab, run_dir, init_from, eval_data: as for `pretrain`.
        prepare: prepare raw text into RUN_DIR before starting the workers.
    """
    num_workers = config.training.num_workers
    if num_workers < 2:
        raise UserInputError(f"--num-workers must be at least 2 to launch local workers, got {num_workers}")
    if config.training.strategy not in ("auto", "multi-worker"):
        raise UserInputError(f"--num-workers {num_workers} trains with --strategy multi-worker, got --strategy {config.training.strategy}")
    if prepare:
        _prepare_once(config, data, vocab, run_dir, eval_data)
    addresses = [f"127.0.0.1:{port}" for port in free_ports(num_workers)]
    logs = tempfile.mkdtemp(prefix="keras-mlm-workers-")
    launch_file = os.path.join(logs, "launch.json")
    write_launch_file(launch_file, config, data, vocab, run_dir, init_from, eval_data)
    death_signal = _death_signal()
    processes = []
    try:
        with contextlib.ExitStack() as log_files:
            for index in range(num_workers):
                env = {**os.environ, "TF_CONFIG": tf_config(addresses, index)}
                log = log_files.enter_context(open(os.path.join(logs, f"worker-{index}.log"), "w", encoding="utf-8")) if index else None
                # preexec_fn: only the prctl call looked up beforehand (see _death_signal).
                processes.append(
                    subprocess.Popen(worker_command(launch_file), env=env, stdout=log, stderr=subprocess.STDOUT if log else None, preexec_fn=death_signal)  # noqa: PLW1509
                )
            failed = _wait(processes)
        if failed is None:
            return 0
        index, code = failed
        _stop(processes)
        print(f"keras-mlm pretrain: worker {index} of {num_workers} failed (exit code {_exit_code(code)}); "
              "the others were stopped. Rerun the same command to resume from the last backup.", file=sys.stderr)
        if index:
            print(f"--- last lines of worker {index}'s output ---\n{_tail(os.path.join(logs, f'worker-{index}.log'))}", file=sys.stderr)
        return _exit_code(code) or 1
    except BaseException:  # Ctrl-C or a bug here: never leave workers behind (SIGKILL: see _death_signal)
        _stop(processes)
        raise
    finally:
        shutil.rmtree(logs, ignore_errors=True)


def _wait(processes):
    """Waits until all processes succeed (returns None) or one fails (returns (index, returncode))."""
    while True:
        codes = [p.poll() for p in processes]
        for index, code in enumerate(codes):
            if code not in (None, 0):
                return index, code
        if all(code == 0 for code in codes):
            return None
        time.sleep(POLL_SECONDS)


def run_worker(launch_file):
    """One worker: `pretrain` with the launch file's configuration and arguments; returns its exit code."""
    with open(launch_file, encoding="utf-8") as f:
        launch = json.load(f)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        from keras_mlm.training.pretrain import pretrain
        from keras_mlm.training.strategy import split_cpu

        config = launch_config(launch, launch_file)
        split_cpu(config.training.cpu_devices)
        summary = pretrain(config, launch["data"], launch["vocab"], launch["run_dir"], init_from=launch["init_from"], eval_data=launch["eval_data"])
    except UserInputError as e:
        print(f"keras-mlm pretrain: error: {e}", file=sys.stderr)
        return 2
    if summary.get("step") is not None and json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {}).get("index", 0) == 0:
        print(f"done: step {summary['step']}, loss {summary.get('loss', float('nan')):.4f}, model in {os.path.join(launch['run_dir'], 'model.keras')}")
    return 0


if __name__ == "__main__":
    sys.exit(run_worker(sys.argv[1]))
