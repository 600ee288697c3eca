"""Distribution: 2 logical CPUs == 1 device, two local workers agree, sharding reads every row once.

Logical devices and MultiWorkerMirroredStrategy must be set up before TensorFlow starts, so those runs
happen in fresh processes (tiny_run.py, fit_fixes_probe.py); the sharding tests run in-process.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))  # tiny_run.py, the tiny-run helper beside these tests (pytest uses importlib mode)

from tiny_run import (
    WORDS,
    load_checkpoint_weights,
    load_weights,
    max_difference,
    tiny_config,
    write_corpus,
)

TIMEOUT = 300


def python(*args, env=None):
    """Runs a helper script of this folder in a fresh Python; returns its stdout, fails with its stderr."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO), **(env or {})}
    done = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, env=env, timeout=TIMEOUT, check=False)
    assert done.returncode == 0, f"{args[0]} failed ({done.returncode}):\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    write_corpus(root)
    return root


def test_two_cpu_replicas_train_like_one_device_and_resume_exactly(corpus, tmp_path):
    # Same seed, global batch 8, 6 steps with clipping on (clip_norm 1.0 is active from the first
    # step here): once on CPU:0 alone; once mirrored over 2 logical CPUs, interrupted after the
    # step-3 backup and resumed. In one process.
    training = {"steps": 6, "checkpoint_every": 3, "learning_rate": 1e-2, "cpu_devices": 2}
    python(
        HERE / "tiny_run.py", corpus, tmp_path / "two", tmp_path / "two.npz",
        "--training", json.dumps({**training, "strategy": "mirrored", "interrupt_at": 3}),
        "--also", f"{tmp_path / 'one'}:{tmp_path / 'one.npz'}:{json.dumps({**training, 'strategy': 'one-device'})}",
    )  # fmt: skip
    one, one_summary = load_weights(tmp_path / "one.npz")
    two, two_summary = load_weights(tmp_path / "two.npz")
    assert (one_summary["replicas"], two_summary["replicas"]) == (1, 2)
    assert one_summary["step"] == two_summary["step"] == 6 and two_summary["resumed_from_step"] == 3
    # Float32 sums in another order, amplified by Adam: measured 5e-7. Without keras_fit_fixes'
    # gradient-clipping fix 2e-3 apart; with Keras' own build (which makes fit train on a second,
    # reshuffled iterator) 6e-2, or 2e-3 between a resumed and an uninterrupted mirrored run.
    assert max_difference(one, two) < 1e-5
    assert two_summary["loss"] == pytest.approx(one_summary["loss"], abs=1e-5)
    # ...and training did move the weights: Adam moves a weight by up to ~lr a step, and the learning
    # rates of steps 4-6 (linear decay from 1e-2) add up to 1e-2 (measured: 9.8e-3).
    assert max_difference(load_checkpoint_weights(tmp_path / "one" / "checkpoints" / "ckpt-00000003.keras"), one) > 5e-3


def test_fit_fixes_clip_the_global_gradient_and_skip_fp16_overflow_on_all_replicas():
    results = json.loads(python(HERE / "fit_fixes_probe.py").strip().splitlines()[-1])
    assert results["replicas"] == 2
    # With the fixes: the global gradient [3, 4] clipped to norm 1; the overflowing step skipped everywhere.
    assert results["clip_fixed=True"] == pytest.approx([-0.6, -0.8])
    assert results["fp16_fixed=True"] == [0.0, 0.0] and results["fp16_scale_fixed=True"] == 2.0
    # Keras 3.15 alone clips per replica and trusts replica 0. If this fails, Keras fixed it: the
    # corresponding patch in keras_mlm.training.strategy.keras_fit_fixes can be removed.
    assert results["clip_fixed=False"] == pytest.approx([-1.0, -1.0])
    assert results["fp16_fixed=False"][0] == -np.inf


def test_two_local_workers_end_with_identical_weights(corpus, tmp_path, monkeypatch):
    # The launcher of `keras-mlm pretrain --num-workers 2`, starting tiny_run.py as the worker command
    # so that each worker saves its own final weights; TF_CONFIG, ports and waiting are the launcher's.
    from keras_mlm.training import multi_worker

    run_dir, scratch = tmp_path / "run", tmp_path / "scratch"
    scratch.mkdir()
    worker = [sys.executable, HERE / "tiny_run.py", corpus, run_dir, tmp_path / "worker-{task}.npz", "--training", json.dumps({"steps": 6, "checkpoint_every": 3, "sample_every": 3})]
    monkeypatch.setattr(multi_worker, "worker_command", lambda launch_file: list(map(str, worker)))
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("TMPDIR", str(scratch))  # where the non-chief worker's scratch folder goes
    config = tiny_config(num_workers=2)
    assert multi_worker.launch_local_workers(config, [corpus / "corpus.txt"], corpus / "vocab.txt", run_dir, prepare=False) == 0

    chief, chief_summary = load_weights(tmp_path / "worker-0.npz")
    other, other_summary = load_weights(tmp_path / "worker-1.npz")
    assert chief_summary["step"] == other_summary["step"] == 6
    assert chief_summary["replicas"] == other_summary["replicas"] == 2  # one replica per worker
    assert max_difference(chief, other) == 0.0  # all-reduced updates: bit-identical
    assert chief_summary["loss"] == other_summary["loss"]
    # Only the chief wrote RUN_DIR (TensorBoard logs with fill-mask samples included: sampling on the
    # chief alone must not stall the other worker); the other worker's scratch folder is gone.
    assert {"model.keras", "checkpoints", "backup", "summary.json", "logs"} <= set(os.listdir(run_dir))
    assert sorted(os.listdir(run_dir / "checkpoints")) == ["ckpt-00000003.keras", "ckpt-00000006.keras"]
    assert not [p for p in os.listdir(scratch) if p.startswith("keras-mlm-worker")]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "logs" / "train"), size_guidance={"tensors": 0})
    events.Reload()
    assert [e.step for e in events.Tensors("fill_mask")] == [3, 6]
    # The chief's writers (scalars, fill-mask text, the illustration), no other process's.
    assert len(os.listdir(run_dir / "logs" / "train")) == 3


def test_launcher_returns_the_failing_workers_exit_code(monkeypatch):
    from keras_mlm.training import multi_worker

    fail_second = "import json, os, sys, time; i = json.loads(os.environ['TF_CONFIG'])['task']['index']; time.sleep(60) if i == 0 else sys.exit(3)"
    monkeypatch.setattr(multi_worker, "worker_command", lambda launch_file: [sys.executable, "-c", fail_second])
    monkeypatch.setattr(multi_worker, "STOP_GRACE_SECONDS", 5.0)
    config = tiny_config(num_workers=2)
    assert multi_worker.launch_local_workers(config, ["corpus.txt"], "vocab.txt", "run", prepare=False) == 3  # and worker 0 was stopped, not awaited


def test_tf_config_names_every_worker_and_this_task():
    from keras_mlm.training.multi_worker import free_ports, tf_config

    ports = free_ports(3)
    assert len(set(ports)) == 3
    config = json.loads(tf_config([f"127.0.0.1:{p}" for p in ports], 2))
    assert config == {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]}, "task": {"type": "worker", "index": 2}}


# --- sharding: every row once per epoch, across pipelines (workers) and replicas ---------------------


@pytest.fixture(scope="module", params=[16, 64], ids=["4-shards", "1-shard"])
def unique_rows(request, tmp_path_factory):
    """64 distinct rows in shards of 16 (each pipeline reads its own files) or in one shard (each
    pipeline reads every other row): each document is 6 words + [SEP] = exactly one row of 8 ids."""
    from keras_mlm.data.prepare import DataConfig, prepare
    from keras_mlm.tokenizers import SPECIAL_TOKENS

    rows_per_shard = request.param
    root = tmp_path_factory.mktemp("unique")
    documents = [" ".join(WORDS[3 * k + ((i >> (2 * k)) & 3)] for k in range(6)) for i in range(64)]  # i in base 4
    (root / "corpus.txt").write_text("\n\n".join(documents) + "\n")
    tokens = list(SPECIAL_TOKENS) + WORDS
    manifest = prepare([str(root / "corpus.txt")], tokens, str(root / "shards"), DataConfig(seq_len=8, rows_per_shard=rows_per_shard))
    assert manifest["sequences"] == 64 and len(manifest["shards"]) == 64 // rows_per_shard
    return str(root / "shards"), tokens


def _rows_read(shards, tokens, pipelines, replicas, global_batch):
    """Rows (as tuples of the original ids) of one epoch, per replica batch, over all pipelines."""
    from keras_mlm.data.dataset import pretraining_dataset
    from keras_mlm.masking import MLMMasker
    from keras_mlm.training.strategy import pipeline_dataset

    masker = MLMMasker.from_vocabulary(tokens, 8, seed=0)
    rows, batch_sizes = [], set()
    for pipeline in range(pipelines):

        def dataset_fn(share):
            return pretraining_dataset(shards, global_batch, masker, seed=0, shuffle_buffer=16, repeat=False, input_context=share)

        context = tf.distribute.InputContext(pipelines, pipeline, replicas)
        for x, mask_ids, weights in pipeline_dataset(dataset_fn, context, global_batch):
            ids = x["token_ids"].numpy()
            # Undo the masking: put the original ids back at the used mask slots.
            for r, (positions, originals, used) in enumerate(zip(x["mask_positions"].numpy(), mask_ids.numpy(), weights.numpy())):
                ids[r, positions[used > 0]] = originals[used > 0]
            rows.extend(map(tuple, ids))
            batch_sizes.add(len(ids))
    return rows, batch_sizes


@pytest.mark.parametrize("pipelines, replicas", [(1, 1), (1, 2), (2, 2), (2, 4)])
def test_one_epoch_reads_every_row_exactly_once(unique_rows, pipelines, replicas):
    from keras_mlm.data.dataset import read_rows

    shards, tokens = unique_rows
    expected = sorted(tuple(r) for r in read_rows(shards).as_numpy_iterator())
    assert len(set(expected)) == 64
    rows, batch_sizes = _rows_read(shards, tokens, pipelines, replicas, global_batch=8)
    assert batch_sizes == {8 // replicas}
    assert sorted(rows) == expected  # none twice, none skipped


def test_xla_is_refused_with_more_than_one_replica_only():
    from keras_mlm.errors import UserInputError
    from keras_mlm.training.strategy import check_jit_compile

    def strategy(replicas):
        return type("MirroredStrategy", (), {"num_replicas_in_sync": replicas, "extended": object()})()

    check_jit_compile(strategy(1), True)  # one replica: XLA is fine
    check_jit_compile(strategy(2), False)
    with pytest.raises(UserInputError, match="--jit-compile works with one replica only, this run has 2 \\(MirroredStrategy\\)"):
        check_jit_compile(strategy(2), True)


def test_tf_config_counts_chief_and_workers(monkeypatch):
    from keras_mlm.errors import UserInputError
    from keras_mlm.training.strategy import cluster_size

    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert cluster_size() == 0
    cluster = {"chief": ["a:1"], "worker": ["b:1", "c:1"], "ps": ["d:1"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}}))
    assert cluster_size() == 3  # parameter servers do not train
    monkeypatch.setenv("TF_CONFIG", "{cluster")
    with pytest.raises(UserInputError, match="TF_CONFIG is not valid JSON"):
        cluster_size()


def test_global_batch_must_divide_among_replicas():
    from keras_mlm.errors import UserInputError
    from keras_mlm.training.strategy import per_replica_batch_size

    three_replicas = type("Strategy", (), {"num_replicas_in_sync": 3})()
    assert per_replica_batch_size(three_replicas, 12) == 4
    with pytest.raises(UserInputError, match="--batch-size 8 is the global batch and must be divisible by the 3 replicas"):
        per_replica_batch_size(three_replicas, 8)


def test_a_worker_trains_the_run_its_launch_file_names(corpus, tmp_path, monkeypatch, capsys):
    # What each worker process runs (`python -m keras_mlm.training.multi_worker LAUNCH.json`), here
    # in-process and without a TF_CONFIG: the launch file's resolved configuration, not a re-parsed argv.
    from keras_mlm.training.multi_worker import run_worker, write_launch_file

    monkeypatch.delenv("TF_CONFIG", raising=False)
    config = tiny_config(steps=4, checkpoint_every=2, num_workers=2)
    write_launch_file(tmp_path / "launch.json", config, [corpus / "corpus.txt"], corpus / "vocab.txt", tmp_path / "run")
    assert run_worker(str(tmp_path / "launch.json")) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["step"] == 4 and summary["precision"] == "float32"
    assert "done: step 4" in capsys.readouterr().out
    (tmp_path / "bad.json").write_text(json.dumps({**json.loads((tmp_path / "launch.json").read_text()), "vocab": str(tmp_path / "none.txt")}))
    assert run_worker(str(tmp_path / "bad.json")) == 2  # a user error: one line, exit code 2
    assert "none.txt: vocabulary file not found" in capsys.readouterr().err
