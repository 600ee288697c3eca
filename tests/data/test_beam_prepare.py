"""`prepare` run as an Apache Beam pipeline (DirectRunner, 2 workers) against the single-process path."""

import collections
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("apache_beam")

from keras_mlm.cli.main import main  # noqa: E402
from keras_mlm.data.dataset import read_rows  # noqa: E402
from keras_mlm.data.prepare import MANIFEST, DataConfig, prepare, read_manifest  # noqa: E402
from keras_mlm.data.readers import iterate_documents  # noqa: E402
from keras_mlm.errors import UserInputError  # noqa: E402
from keras_mlm.tokenizers import SPECIAL_TOKENS, write_vocabulary  # noqa: E402
from keras_mlm.tokenizers.vocabulary import Vocabulary  # noqa: E402

CONFIG = DataConfig(seq_len=32, rows_per_shard=64)
TWO_THREADS = ["--direct_num_workers=2", "--direct_running_mode=multi_threading"]
TWO_PROCESSES = ["--direct_num_workers=2", "--direct_running_mode=multi_processing", "--default_sdk_harness_log_level=WARNING"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, corpora):
    """Two files of real text (Shakespeare, a Gutenberg book) and one whose text yields no ids, a
    WordPiece vocabulary of their words, and the single-process path's manifest for them."""
    root = tmp_path_factory.mktemp("beam")
    (root / "shakespeare.txt").write_text((corpora / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")[:120_000])
    (root / "alice.txt").write_text((corpora / "gutenberg" / "pg11_alice_in_wonderland.txt").read_text(encoding="utf-8")[:80_000])
    (root / "between.txt").write_text("\u200b\n")  # a document that yields no ids, between the two
    files = [root / "alice.txt", root / "between.txt", root / "shakespeare.txt"]
    words = collections.Counter(w for f in files for w in re.findall(r"\w+|[^\w\s]", f.read_text().lower()))
    chars = sorted({c for w in words for c in w})
    common = [w for w, _ in words.most_common(400) if len(w) > 1]
    write_vocabulary(list(SPECIAL_TOKENS) + common + chars + ["##" + c for c in chars], root / "vocab.txt")
    manifest = prepare(files, root / "vocab.txt", root / "single", CONFIG)
    return root, files, manifest


def same_preparation(manifest, expected, *also_ignored):
    """Equal manifests but for the time written: same counts, same shards holding the same records."""
    ignored = {"created", *also_ignored}
    return {k: v for k, v in manifest.items() if k not in ignored} == {k: v for k, v in expected.items() if k not in ignored}


def documents_in(directory):
    """The shards' rows unpacked back into documents' id lists ([CLS] starts each row, [SEP] ends each document)."""
    vocabulary = Vocabulary.load(directory / "vocab.txt")
    rows = np.stack(list(read_rows(str(directory)).as_numpy_iterator()))
    assert np.all(rows[:, 0] == vocabulary.cls_id)
    stream = rows[:, 1:].reshape(-1)
    padding = np.flatnonzero(stream == vocabulary.pad_id)
    assert np.array_equal(padding, np.arange(len(stream) - len(padding), len(stream))), "padding only at the end"
    stream = stream[: len(stream) - len(padding)]
    assert stream[-1] == vocabulary.sep_id
    ends = np.flatnonzero(stream == vocabulary.sep_id)
    return [tuple(int(i) for i in doc[:-1]) for doc in np.split(stream, ends[:-1] + 1)], rows  # [:-1]: the [SEP]


def test_two_worker_direct_runner_writes_the_single_process_shards(corpus, tmp_path):
    root, files, expected = corpus
    manifest = prepare(files, root / "vocab.txt", tmp_path / "beam", CONFIG, runner="DirectRunner", pipeline_options=TWO_THREADS)
    assert same_preparation(manifest, expected)  # documents, source_tokens, sequences, each shard's records_sha256
    assert read_manifest(tmp_path / "beam") == manifest
    assert sorted(os.listdir(tmp_path / "beam")) == sorted([s["file"] for s in manifest["shards"]] + [MANIFEST, "vocab.txt"])
    # Every document's tokens appear exactly once, each document whole in consecutive rows.
    vocabulary = Vocabulary.load(root / "vocab.txt")
    documents = list(iterate_documents(files))
    tokenized = [tuple(int(i) for i in ids) for ids in vocabulary.tokenizer()(documents) if len(ids)]
    found, rows = documents_in(tmp_path / "beam")
    assert collections.Counter(found) == collections.Counter(tokenized)
    assert manifest["documents"] == len(tokenized) > 1000
    is_source = ~np.isin(rows, vocabulary.special_token_ids)
    assert manifest["source_tokens"] == int(np.count_nonzero(is_source)) == sum(int(np.count_nonzero(~np.isin(d, vocabulary.special_token_ids))) for d in tokenized)


@pytest.mark.slow
def test_two_worker_processes_write_the_single_process_shards(corpus, tmp_path):
    root, files, expected = corpus
    manifest = prepare(files, root / "vocab.txt", tmp_path / "beam", CONFIG, runner="DirectRunner", pipeline_options=TWO_PROCESSES)
    assert same_preparation(manifest, expected)
    found, _ = documents_in(tmp_path / "beam")
    assert len(found) == manifest["documents"]


def test_failed_pipeline_leaves_no_manifest_and_the_rerun_completes(corpus, tmp_path):
    root, files, expected = corpus
    out = tmp_path / "beam"
    out.mkdir()
    # What a killed run leaves: shards, a temporary file, no manifest.
    (out / "shard-00000.tfrecord").write_bytes(b"old")
    (out / ".shard-00001.tfrecord.0a1b2c3d.tmp").write_bytes(b"half")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(UserInputError, match=r"latin1.txt:1: bytes that are not UTF-8 at byte offset 3"):
        prepare([*files, tmp_path / "latin1.txt"], root / "vocab.txt", out, CONFIG, runner="DirectRunner", pipeline_options=TWO_THREADS)
    assert os.listdir(out) == []
    manifest = prepare(files, root / "vocab.txt", out, CONFIG, runner="DirectRunner", pipeline_options=TWO_THREADS)
    assert same_preparation(manifest, expected)


def test_corpus_without_text_leaves_nothing(corpus, tmp_path):
    root, _, _ = corpus
    (tmp_path / "empty.txt").write_text("\n\n   \n")
    (tmp_path / "punctuation.txt").write_text("\u200b\n")  # a document that yields no ids
    with pytest.raises(UserInputError, match="empty corpus"):
        prepare([tmp_path / "empty.txt", tmp_path / "punctuation.txt"], root / "vocab.txt", tmp_path / "out", CONFIG, runner="DirectRunner", pipeline_options=TWO_THREADS)
    assert os.listdir(tmp_path / "out") == []


@pytest.mark.slow
def test_killed_pipeline_leaves_no_manifest_and_the_rerun_completes(corpus, tmp_path):
    root, files, _ = corpus
    config = DataConfig(seq_len=32, rows_per_shard=2)  # a thousand shards: the kill lands while they are written
    expected = prepare(files, root / "vocab.txt", tmp_path / "single", config)
    out = tmp_path / "beam"
    command = [sys.executable, "-m", "keras_mlm.cli.main", "prepare", *map(str, files), "--vocab", str(root / "vocab.txt"),
               "--out", str(out), "--seq-len", "32", "--rows-per-shard", "2", "--runner", "DirectRunner", "--", *TWO_PROCESSES]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not (out.is_dir() and any(n.startswith(("shard-", ".shard-")) for n in os.listdir(out))):
            assert process.poll() is None and time.monotonic() < deadline, "the pipeline ended before writing a shard"
            time.sleep(0.01)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the driver and its two worker processes
        process.wait()
    left = os.listdir(out)
    assert MANIFEST not in left and any(n.startswith("shard-") or n.endswith(".tmp") for n in left)
    manifest = prepare(files, root / "vocab.txt", out, config, runner="DirectRunner", pipeline_options=TWO_THREADS)
    assert same_preparation(manifest, expected)
    assert sorted(os.listdir(out)) == sorted([s["file"] for s in manifest["shards"]] + [MANIFEST, "vocab.txt"])


def test_ram_filesystem_inputs_vocabulary_and_output(corpus):
    import tensorflow as tf

    root, files, expected = corpus
    tf.io.gfile.makedirs("ram://test_beam_prepare/texts")
    for f in files:
        tf.io.gfile.copy(str(f), f"ram://test_beam_prepare/texts/{f.name}", overwrite=True)
    tf.io.gfile.copy(str(root / "vocab.txt"), "ram://test_beam_prepare/vocab.txt", overwrite=True)
    for out, runner in (("ram://test_beam_prepare/single", None), ("ram://test_beam_prepare/beam", "DirectRunner")):
        manifest = prepare(["ram://test_beam_prepare/texts"], "ram://test_beam_prepare/vocab.txt", out, CONFIG, runner=runner, pipeline_options=TWO_THREADS if runner else ())
        assert manifest["inputs"] == [f"ram://test_beam_prepare/texts/{f.name}" for f in files]
        assert same_preparation(manifest, expected, "inputs")
        assert read_manifest(out) == manifest
        assert sorted(tf.io.gfile.listdir(out)) == sorted([s["file"] for s in manifest["shards"]] + [MANIFEST, "vocab.txt"])
    # The same records as the local shards (records_sha256 above), and training reads them from ram://.
    first_rows = np.stack(list(read_rows(out).take(CONFIG.rows_per_shard + 1).as_numpy_iterator()))
    assert np.array_equal(first_rows, np.stack(list(read_rows(str(root / "single")).take(CONFIG.rows_per_shard + 1).as_numpy_iterator())))
    with pytest.raises(UserInputError, match="ram:// paths live in one process"):
        prepare(["ram://test_beam_prepare/texts"], root / "vocab.txt", "ram://test_beam_prepare/other", CONFIG, runner="DirectRunner", pipeline_options=TWO_PROCESSES)


def test_runner_without_apache_beam_says_what_to_install(corpus, tmp_path, monkeypatch, capsys):
    root, files, _ = corpus
    import keras_mlm.data

    monkeypatch.setitem(sys.modules, "apache_beam", None)  # import apache_beam -> ImportError
    monkeypatch.delitem(sys.modules, "keras_mlm.data.beam_prepare", raising=False)  # imported afresh
    monkeypatch.delattr(keras_mlm.data, "beam_prepare", raising=False)
    code = main(["prepare", str(files[0]), "--vocab", str(root / "vocab.txt"), "--out", str(tmp_path / "out"), "--runner", "DirectRunner"])
    assert code == 2
    assert capsys.readouterr().err == 'keras-mlm prepare: error: --runner DirectRunner needs Apache Beam: pip install "keras-mlm[beam]"\n'
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--", "--direct_num_workers=2"], "pipeline options need a Beam runner (--runner)"),
        (["--runner", "NoSuchRunner"], "--runner NoSuchRunner: Unexpected pipeline runner: NoSuchRunner."),
    ],
)
def test_cli_runner_errors_are_one_line(corpus, tmp_path, capsys, extra, message):
    root, files, _ = corpus
    code = main(["prepare", str(files[0]), "--vocab", str(root / "vocab.txt"), "--out", str(tmp_path / "out"), "--quiet", *extra])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"keras-mlm prepare: error: {message}") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_options_after_double_dash_reach_the_pipeline(corpus, tmp_path, capsys):
    root, files, expected = corpus
    # multi_processing with a ram:// output is refused: proof that the options after `--` were read.
    code = main(["prepare", *map(str, files), "--vocab", str(root / "vocab.txt"), "--out", "ram://test_beam_prepare/cli", "--runner", "DirectRunner", "--", *TWO_PROCESSES])
    assert code == 2 and "ram:// paths live in one process" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["inspect", str(root / "single"), "--", "--direct_num_workers=2"])
    assert "inspect takes no options after --" in capsys.readouterr().err
