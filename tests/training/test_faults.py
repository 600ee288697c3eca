"""Faults: SIGKILL and rerun resumes exactly; a dead worker's run resumes; NaN stops at a named step."""

import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))  # tiny_run.py, the tiny-run helper beside these tests (pytest uses importlib mode)

from tiny_run import (
    load_checkpoint_weights,
    max_difference,
    pretrain_flags,
    run,
    write_corpus,
)

TIMEOUT = 300
# The same run as tiny_config(**KILLED_RUN), as a command line.
KILLED_RUN = {"steps": 60, "checkpoint_every": 4, "learning_rate": 3e-3}


def pretrain_command(corpus, run_dir, *extra, **training):
    return [sys.executable, "-m", "keras_mlm.cli.main", "pretrain", "--data", corpus / "corpus.txt", "--vocab", corpus / "vocab.txt",
            "--out", run_dir, *pretrain_flags(**training), *extra]  # fmt: skip


def start(command, log):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}
    return subprocess.Popen(list(map(str, command)), stdout=log, stderr=subprocess.STDOUT, env=env)


def wait_for_backup(process, run_dir, timeout=TIMEOUT):
    """Polls until RUN_DIR/backup/state.json exists (the first backup); returns its step."""
    state = run_dir / "backup" / "state.json"
    deadline = time.monotonic() + timeout
    while not state.exists():
        assert process.poll() is None, f"training ended (exit {process.returncode}) before its first backup"
        assert time.monotonic() < deadline, "no backup written in time"
        time.sleep(0.02)
    return json.loads(state.read_text())["step"]


def temporaries(run_dir):
    return [p for p in glob.glob(f"{run_dir}/**/*", recursive=True) if ".tmp-" in os.path.basename(p)]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    write_corpus(root)
    return root


def test_sigkill_then_rerun_resumes_and_ends_like_an_uninterrupted_run(corpus, tmp_path):
    run_dir = tmp_path / "killed"
    with open(tmp_path / "first.log", "w") as log:
        first = start(pretrain_command(corpus, run_dir, **KILLED_RUN), log)
        try:
            backup_step = wait_for_backup(first, run_dir)
            first.send_signal(signal.SIGKILL)  # mid-training: 56 of 60 steps are still to run
        finally:
            first.kill()
            first.wait()
    assert first.returncode == -signal.SIGKILL and backup_step == 4

    # What a kill leaves: the backup names a complete weights file, every checkpoint loads; only
    # temporary names (.tmp-PID) can be partial.
    state = json.loads((run_dir / "backup" / "state.json").read_text())
    assert (run_dir / "backup" / state["state"]).is_file() and state["step"] % 4 == 0
    for checkpoint in glob.glob(f"{run_dir}/checkpoints/ckpt-*.keras"):
        assert all(np.isfinite(w).all() for w in load_checkpoint_weights(checkpoint))

    # The same command again: resumes from the backup and completes.
    with open(tmp_path / "second.log", "w") as log:
        second = start(pretrain_command(corpus, run_dir, **KILLED_RUN), log)
        assert second.wait(timeout=TIMEOUT) == 0, (tmp_path / "second.log").read_text()[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["step"] == 60 and summary["resumed_from_step"] >= 4 and summary["resumed_from_step"] % 4 == 0
    assert not temporaries(run_dir)

    # Data position and masks restored: the weights equal an uninterrupted run's (float32; measured
    # identical, the tolerance allows for summation order). A resume at step 8 that restarted the data
    # (and masks) at the first batch ends 0.047 away (measured).
    reference, _ = run(str(corpus), str(tmp_path / "uninterrupted"), str(tmp_path / "uninterrupted.npz"), **KILLED_RUN)
    assert max_difference(load_checkpoint_weights(run_dir / "model.keras"), reference) < 1e-5


def test_nan_loss_stops_at_the_named_step_and_keeps_the_good_checkpoints(corpus, tmp_path):
    from keras_mlm.training.pretrain import TrainingDiverged

    # Warm-up over 4 steps to an absurd peak: step 1 trains at learning rate 0, step 2 at 2.5e29,
    # which sends the weights to ~1e29; step 3's forward pass overflows and its loss is NaN.
    config = {"steps": 8, "checkpoint_every": 1, "learning_rate": 1e30, "warmup_fraction": 0.5}
    with pytest.raises(TrainingDiverged, match=r"NaN or infinite at step 3; .*ckpt-00000002\.keras"):
        run(str(corpus), str(tmp_path), str(tmp_path / "w.npz"), **config)
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["ckpt-00000001.keras", "ckpt-00000002.keras"]
    assert json.loads((tmp_path / "backup" / "state.json").read_text())["step"] == 2  # the step-3 state is not saved
    assert not (tmp_path / "model.keras").exists()


def test_stale_temporaries_are_removed_and_nothing_else():
    import tempfile

    from keras_mlm.training.callbacks import remove_stale_temporaries

    with tempfile.TemporaryDirectory() as root:
        names = {
            ".ckpt-00000004.tmp-1234.keras": True,  # atomic_save's temporary
            "vocab.txt.tmp-99": True,  # write_vocabulary's temporary
            "ckpt-00000004.keras": False,
            "state.json": False,
            "notes.tmp": False,
        }
        os.makedirs(os.path.join(root, "checkpoints"))
        for name in names:
            Path(root, "checkpoints", name).write_text("x")
        assert remove_stale_temporaries(root) == 2
        assert sorted(os.listdir(os.path.join(root, "checkpoints"))) == sorted(n for n, stale in names.items() if not stale)


def _worker_pids(launcher_pid):
    """{task index: pid} of the worker processes a launcher started (Linux /proc)."""
    children = Path(f"/proc/{launcher_pid}/task/{launcher_pid}/children").read_text().split()
    workers = {}
    for pid in children:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        config = next((e[len(b"TF_CONFIG=") :] for e in environ if e.startswith(b"TF_CONFIG=")), None)
        if config:
            workers[json.loads(config)["task"]["index"]] = int(pid)
    return workers


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the worker processes in /proc")
def test_dead_worker_then_rerun_resumes_the_multi_worker_run(corpus, tmp_path):
    run_dir = tmp_path / "run"
    command = pretrain_command(corpus, run_dir, "--num-workers", "2", **KILLED_RUN)
    with open(tmp_path / "first.log", "w") as log:
        launcher = start(command, log)
        try:
            wait_for_backup(launcher, run_dir)
            workers = _worker_pids(launcher.pid)
            assert sorted(workers) == [0, 1]
            os.kill(workers[1], signal.SIGKILL)  # the non-chief worker dies
            code = launcher.wait(timeout=60)  # the launcher stops the chief, which waits on its dead peer
        finally:
            launcher.kill()
            launcher.wait()
    assert code == 128 + signal.SIGKILL
    assert "worker 1 of 2 failed" in (tmp_path / "first.log").read_text()
    assert not (run_dir / "summary.json").exists()

    with open(tmp_path / "second.log", "w") as log:
        assert start(command, log).wait(timeout=TIMEOUT) == 0, (tmp_path / "second.log").read_text()[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["step"] == 60 and summary["resumed_from_step"] >= 4
    assert not temporaries(run_dir)
