"""RUN_DIR, shards, text and vocabulary on a filesystem of tf.io.gfile's other than the local disk.

`ram://` is a filesystem TensorFlow keeps in this process's memory; it stands for gs:// here, since no
bucket is reachable. `prepare` from ram:// text to ram:// shards is tested in tests/data/test_beam_prepare.py.
Here `pretrain` writes a ram:// RUN_DIR (from ram:// shards, and from ram:// text prepared on the fly),
a rerun resumes from the ram:// backup, and `evaluate` and `fill-mask` read the ram:// run and shards,
giving exactly what they give on a local copy. A ram:// folder dies with its process, so the
interruption before the resume is a stop after a backup (as in tiny_run.run), not a SIGKILL
(test_faults.py kills local runs).
"""

import json
import os
import sys
from pathlib import Path

import pytest
import tensorflow as tf
import yaml

from keras_mlm import fileio
from keras_mlm.cli.main import main
from keras_mlm.data.prepare import DataConfig, prepare
from keras_mlm.training import callbacks
from keras_mlm.training.pretrain import pretrain

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tiny_run.py beside this file (importlib mode)
from tiny_run import SEQ_LEN, load_checkpoint_weights, max_difference, pretrain_flags, run, tiny_config, weights_of, write_corpus  # noqa: E402

ROOT = "ram://test_object_storage"
TEXT, VOCAB = f"{ROOT}/corpus/corpus.txt", f"{ROOT}/corpus/vocab.txt"


def read_json(path):
    with fileio.open(path) as f:
        return json.load(f)


def temporaries(directory):
    return [os.path.join(root, name) for root, _, names in fileio.walk(directory) for name in names if ".tmp-" in name]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The tiny corpus and its vocabulary, on the local disk and copied to ram://."""
    local = tmp_path_factory.mktemp("corpus")
    write_corpus(str(local))
    fileio.copy_tree(str(local), f"{ROOT}/corpus")
    return local


@pytest.fixture(scope="module")
def reference(corpus, tmp_path_factory):
    """The tiny run in one go, all on the local disk: the weights every ram:// run must end with."""
    local = tmp_path_factory.mktemp("reference")
    weights, summary = run(str(corpus), str(local / "run"), str(local / "weights.npz"))
    assert summary["step"] == 8 and summary["resumed_from_step"] == 0
    return weights


@pytest.fixture(scope="module")
def shards(corpus):
    """ram:// text prepared into ram:// shards: the rows pretrain prepares from the same text."""
    prepare([TEXT], VOCAB, f"{ROOT}/shards", DataConfig(seq_len=SEQ_LEN))
    return f"{ROOT}/shards"


@pytest.fixture(scope="module")
def trained(shards):
    """`keras-mlm pretrain --data ram://.../shards --vocab ram://.../vocab.txt --out ram://.../run`, in this process."""
    run_dir = f"{ROOT}/run"
    assert main(["pretrain", "--data", shards, "--vocab", VOCAB, "--out", run_dir, *pretrain_flags()]) == 0
    return run_dir


def test_pretrain_writes_the_whole_run_folder_on_ram(trained, shards, reference):
    assert {"model.keras", "vocab.txt", "config.yaml", "summary.json", "checkpoints", "backup", "logs"} <= set(fileio.listdir(trained))
    summary = read_json(f"{trained}/summary.json")
    assert summary["step"] == 8 and summary["resumed_from_step"] == 0 and summary["stop_reason"] == "steps"
    with fileio.open(f"{trained}/config.yaml") as f:
        assert yaml.safe_load(f)["data_dir"] == shards  # the path as given, not made "absolute" as a local one
    assert sorted(fileio.listdir(f"{trained}/checkpoints")) == ["ckpt-00000004.keras", "ckpt-00000008.keras"]
    # The backup: state.json names the newest weights file, the only one left.
    state = read_json(f"{trained}/backup/state.json")
    assert state["step"] == 8 and sorted(fileio.listdir(f"{trained}/backup")) == sorted(["state.json", state["state"]])
    # TensorBoard's training curve, at the logged steps.
    events = fileio.glob(f"{trained}/logs/train/events.out.tfevents.*")
    losses = {e.step for path in events for e in tf.compat.v1.train.summary_iterator(path) for v in e.summary.value if v.tag == "loss"}
    assert losses == {4, 8}
    assert not temporaries(trained)
    # The same rows and masks as the local run: the same weights, in the model and the last checkpoint.
    assert max_difference(load_checkpoint_weights(f"{trained}/model.keras"), reference) < 1e-5
    assert max_difference(load_checkpoint_weights(f"{trained}/checkpoints/ckpt-00000008.keras"), reference) < 1e-5


def test_rerun_resumes_from_the_ram_backup_and_ends_like_a_run_in_one_go(shards, reference, monkeypatch):
    run_dir, config = f"{ROOT}/resumed", tiny_config(keep_best=True)
    planned = callbacks.StopAtStep
    with monkeypatch.context() as patch:
        patch.setattr(callbacks, "StopAtStep", lambda steps: planned(4))  # the interruption, right after the step-4 backup
        # ram:// text, prepared into RUN_DIR/data; validated on the ram:// shards (validation changes no weight)
        first = pretrain(config, [TEXT], VOCAB, run_dir, verbose=0, eval_data=shards)
    assert first["step"] == 4 and read_json(f"{run_dir}/backup/state.json")["step"] == 4
    stale = f"{run_dir}/checkpoints/.ckpt-00000008.tmp-1234.keras"  # what a kill during a checkpoint leaves
    with fileio.open(stale, "wb") as f:
        f.write(b"partial")

    again = pretrain(config, [TEXT], VOCAB, run_dir, verbose=0, eval_data=shards)
    assert again["resumed_from_step"] == 4 and again["step"] == 8 and again["shards"] == f"{run_dir}/data"
    assert not temporaries(run_dir)
    assert read_json(f"{run_dir}/summary.json")["resumed_from_step"] == 4
    # The validation history read back from ram:// and continued; the best model kept there.
    assert [e["step"] for e in read_json(f"{run_dir}/validation.json")["history"]] == [4, 8]
    assert fileio.isfile(f"{run_dir}/best.keras")
    # Data position and masks restored from ram://: the weights of the uninterrupted local run.
    assert max_difference(weights_of(again["model"]), reference) < 1e-5


def test_evaluate_and_fill_mask_read_the_ram_run_as_a_local_copy(trained, shards, tmp_path, capsys):
    from keras_mlm.evaluation.evaluate import evaluate
    from keras_mlm.inference.run import load_run

    local_run, local_shards = fileio.copy_tree(trained, str(tmp_path / "run")), fileio.copy_tree(shards, str(tmp_path / "shards"))
    on_ram, on_disk = load_run(trained), load_run(local_run)
    result = evaluate(on_ram.masked_lm, on_ram.vocabulary, shards, seq_len=on_ram.sequence_length)
    assert result == evaluate(on_disk.masked_lm, on_disk.vocabulary, local_shards, seq_len=on_disk.sequence_length)
    assert result["tokens"] > 0

    def cli(*argv):
        assert main(list(argv)) == 0
        return json.loads(capsys.readouterr().out)

    assert cli("evaluate", trained, shards, "--json") == result
    assert cli("evaluate", trained, TEXT, "--json") == result  # ram:// text, prepared into the same rows
    text = "the cat [MASK] on a mat"
    assert cli("fill-mask", trained, text, "--json") == cli("fill-mask", local_run, text, "--json")


def test_missing_ram_paths_are_one_line_errors(shards, capsys):
    assert main(["evaluate", f"{ROOT}/no-run", shards, "--json"]) == 2
    assert capsys.readouterr().err == f"keras-mlm evaluate: error: {ROOT}/no-run: no such run directory\n"
    assert main(["pretrain", "--data", f"{ROOT}/no-text", "--vocab", VOCAB, "--out", f"{ROOT}/unused", *pretrain_flags()]) == 2
    assert capsys.readouterr().err == f"keras-mlm pretrain: error: {ROOT}/no-text: no such file or folder\n"
    assert main(["pretrain", "--data", shards, "--vocab", f"{ROOT}/no-vocab.txt", "--out", f"{ROOT}/unused", *pretrain_flags()]) == 2
    assert capsys.readouterr().err == f"keras-mlm pretrain: error: {ROOT}/no-vocab.txt: vocabulary file not found\n"
