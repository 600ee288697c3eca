"""`keras-mlm pretrain --num-workers N`: a multi-worker run on this machine, one process per worker.

    launch_local_workers(["pretrain", "--data", ..., "--out", RUN_DIR, "--num-workers", "2"], 2)

starts N `keras-mlm pretrain ...` processes (the same command, with `--num-workers 1` appended so
that they train instead of launching), each with a `TF_CONFIG` naming all N as workers on free
127.0.0.1 ports and itself as task i (so `--strategy auto` picks MultiWorkerMirroredStrategy). Worker 0 is the chief: it writes RUN_DIR and
prints to this terminal; the others print to a log file that is shown if they fail. When one worker
fails, the others are stopped (their peer is gone: they would wait for it forever) and its exit code
is returned; the command can then be rerun as is and resumes from RUN_DIR/backup.

Raw text is prepared into RUN_DIR/data once, here, before the workers start, so that they do not
race to write the same shards.
"""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

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


def worker_command(argv):
    """The command line of one worker: `keras-mlm <argv>` told to train as a multi-worker task."""
    # `--strategy auto` (the default) turns into multi-worker under a TF_CONFIG of several tasks; the
    # flag is not appended because the CLI's `--strategy` currently shares its dest with `--masking`.
    return [sys.executable, "-m", "keras_mlm.cli.main", *argv, "--num-workers", "1"]


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


def _prepare_once(argv):
    """Parses `argv` like the CLI and prepares raw text into RUN_DIR/data (a no-op for shards)."""
    from keras_mlm.cli.main import build_parser
    from keras_mlm.cli.model_commands import run_config_from_args
    from keras_mlm.tokenizers import vocab as vocab_lib
    from keras_mlm.training.pretrain import resolve_shards

    args = build_parser().parse_args(argv)
    config = run_config_from_args(args)
    if config.training.strategy not in ("auto", "multi-worker"):
        raise UserInputError(
            f"--num-workers {config.training.num_workers} trains with --strategy multi-worker, "
            f"got --strategy {config.training.strategy}"
        )
    os.makedirs(args.out, exist_ok=True)
    resolve_shards(args.data, vocab_lib.load_vocabulary(args.vocab), config, args.out)


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


def launch_local_workers(argv, num_workers, prepare=True):
    """Runs `keras-mlm <argv>` as `num_workers` local workers; returns 0 or the first failure's exit code.

    Args:
        argv: the pretrain command line without the program name (`sys.argv[1:]`).
        num_workers: how many worker processes (>= 2).
        prepare: prepare raw text into RUN_DIR/data before starting the workers.
    """
    if num_workers < 2:
        raise UserInputError(f"--num-workers must be at least 2 to launch local workers, got {num_workers}")
    if prepare:
        _prepare_once(argv)
    addresses = [f"127.0.0.1:{port}" for port in free_ports(num_workers)]
    logs = tempfile.mkdtemp(prefix="keras-mlm-workers-")
    death_signal = _death_signal()
    processes = []
    try:
        with contextlib.ExitStack() as log_files:
            for index in range(num_workers):
                env = {**os.environ, "TF_CONFIG": tf_config(addresses, index)}
                log = log_files.enter_context(open(os.path.join(logs, f"worker-{index}.log"), "w", encoding="utf-8")) if index else None
                # preexec_fn: only the prctl call looked up beforehand (see _death_signal).
                processes.append(
                    subprocess.Popen(worker_command(argv), env=env, stdout=log, stderr=subprocess.STDOUT if log else None, preexec_fn=death_signal)  # noqa: PLW1509
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
