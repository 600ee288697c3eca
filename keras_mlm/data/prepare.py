"""Corpus -> packed rows of token ids -> sharded TFRecord files + `manifest.json`.

Documents are tokenized inside a tf.data pipeline (the vocabulary's in-graph tokenizer, keras-hub's
WordPiece, BytePair or SentencePiece layer, over batches of text), then packed back to back into rows of exactly `seq_len` ids:

    [CLS] doc1 ... [SEP] doc2 ... [SEP] doc3 (first part)      <- row 0
    [CLS] doc3 (rest) ... [SEP] doc4 ... [SEP] [PAD] [PAD]      <- row 1 (only the last row is padded)

Nothing is dropped or duplicated: a document longer than a row continues in the next one. Each shard
is written to a temporary name and renamed once complete, and `manifest.json` is written last, so an
interrupted run never leaves a half shard; a directory without a manifest is a leftover that the next
run clears.

Inputs and the output directory may be on any filesystem `tf.io.gfile` knows (`gs://...`; `ram://` in
tests). Where renames are not atomic (object stores copy), shards are written in place: the manifest,
written last, is what makes a directory count.

`prepare(..., runner="DirectRunner", pipeline_options=[...])` runs the same steps as an Apache Beam
pipeline (`keras_mlm.data.beam_prepare`) and writes the same shards and manifest.
"""

import dataclasses
import datetime
import hashlib
import json
import os
import uuid

import numpy as np

from keras_mlm import fileio
from keras_mlm.data import readers
from keras_mlm.errors import UserInputError
from keras_mlm.tokenizers.vocabulary import SAVED_NAMES

MANIFEST = "manifest.json"
VOCAB_COPY = SAVED_NAMES["wordpiece"]  # "vocab.txt"; other kinds: vocab-bpe/, vocab.model
SAVED_VOCABULARIES = tuple(SAVED_NAMES.values())
SHARD_PATTERN = "shard-{:05d}.tfrecord"
FEATURE = "token_ids"
MIN_SEQ_LEN = 8


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """How a corpus is turned into shards."""

    seq_len: int = 128  # ids per row, [CLS] and [SEP]s included
    rows_per_shard: int = 4096  # rows in each TFRecord file (the last may hold fewer)
    lowercase: bool | None = None  # None: inferred from the vocabulary
    batch_documents: int = 256  # text chunks tokenized together in one tf.data step

    def __post_init__(self):
        if not isinstance(self.seq_len, int) or self.seq_len < MIN_SEQ_LEN:
            raise UserInputError(f"seq_len must be an integer >= {MIN_SEQ_LEN}, got {self.seq_len}")
        if not isinstance(self.rows_per_shard, int) or self.rows_per_shard < 1:
            raise UserInputError(f"rows_per_shard must be a positive integer, got {self.rows_per_shard}")


def read_manifest(directory):
    """The manifest of a shards directory, with a clear error when it is not one."""
    directory = os.fspath(directory)
    path = os.path.join(directory, MANIFEST)
    if not fileio.isdir(directory):
        raise UserInputError(f"{directory}: no such shards directory")
    if not fileio.isfile(path):
        raise UserInputError(f"{directory}: not a prepared shards directory (no {MANIFEST}; run `keras-mlm prepare`)")
    try:
        with fileio.open(path, "rb") as f:
            manifest = json.loads(f.read().decode("utf-8"))
    except (*fileio.read_errors(path), json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserInputError(f"{path}: unreadable manifest ({e})") from None
    for field in ("seq_len", "shards", "vocab_sha256", "sequences"):
        if field not in manifest:
            raise UserInputError(f"{path}: manifest lacks field '{field}'")
    return manifest


def shard_paths(directory, manifest=None):
    manifest = manifest or read_manifest(directory)
    return [os.path.join(os.fspath(directory), shard["file"]) for shard in manifest["shards"]]


def write_shard(directory, index, rows):
    """Writes `rows` ((n, seq_len) ids) as shard number `index`; returns its manifest entry.

    Locally the shard is written to a temporary name (unique, so that two attempts at one shard never
    mix) and renamed when complete; on object stores it is written in place.
    """
    import tensorflow as tf

    name = SHARD_PATTERN.format(index)
    path = os.path.join(directory, name)
    target = os.path.join(directory, f".{name}.{uuid.uuid4().hex[:8]}.tmp") if fileio.is_local(directory) else path
    digest = hashlib.sha256()
    with tf.io.TFRecordWriter(target) as writer:
        for row in rows:
            record = tf.train.Example(
                features=tf.train.Features(feature={FEATURE: tf.train.Feature(int64_list=tf.train.Int64List(value=row))})
            ).SerializeToString()
            digest.update(record)
            writer.write(record)
    if target != path:
        os.replace(target, path)
    return {"file": name, "sequences": len(rows), "bytes": fileio.size(path), "records_sha256": digest.hexdigest()}


def remove_shards(directory, shards):
    """Removes the listed shards (after a failure: no shard outlives a run that wrote no manifest)."""
    for shard in shards:
        path = os.path.join(directory, shard["file"])
        if fileio.exists(path):
            fileio.remove(path)


class _ShardWriter:
    """Buffers rows and writes them `rows_per_shard` at a time, each shard via temp file + rename."""

    def __init__(self, directory, seq_len, rows_per_shard):
        self.directory = directory
        self.rows = np.zeros((rows_per_shard, seq_len), np.int64)
        self.filled = 0
        self.shards = []

    def add(self, rows):
        while len(rows):
            take = min(len(rows), len(self.rows) - self.filled)
            self.rows[self.filled : self.filled + take] = rows[:take]
            self.filled += take
            rows = rows[take:]
            if self.filled == len(self.rows):
                self.flush()

    def flush(self):
        if not self.filled:
            return
        self.shards.append(write_shard(self.directory, len(self.shards), self.rows[: self.filled]))
        self.filled = 0


class Packer:
    """Concatenates the id stream and cuts it into `[CLS] + (seq_len - 1)` rows."""

    def __init__(self, seq_len, cls_id, pad_id):
        self.body = seq_len - 1
        self.cls_id, self.pad_id = cls_id, pad_id
        self.pending = np.zeros((0,), np.int64)
        self.padding = 0  # [PAD] ids added to fill the last row

    def _rows(self, ids):
        n = len(ids) // self.body
        rows = np.empty((n, self.body + 1), np.int64)
        rows[:, 0] = self.cls_id
        rows[:, 1:] = ids[: n * self.body].reshape(n, self.body)
        return rows, ids[n * self.body :]

    def push(self, ids):
        rows, self.pending = self._rows(np.concatenate([self.pending, ids]))
        return rows

    def finish(self):
        if not len(self.pending):
            return np.zeros((0, self.body + 1), np.int64)
        padded = np.full((self.body,), self.pad_id, np.int64)
        padded[: len(self.pending)] = self.pending
        self.padding = self.body - len(self.pending)
        rows, _ = self._rows(padded)
        self.pending = np.zeros((0,), np.int64)
        return rows


def clear_leftovers(directory, overwrite):
    """Makes `directory` ready: refuses to clobber a finished run unless asked, clears a broken one."""
    if fileio.exists(directory) and not fileio.isdir(directory):
        raise UserInputError(f"{directory}: exists and is not a directory")
    fileio.makedirs(directory)
    if fileio.exists(os.path.join(directory, MANIFEST)):
        if not overwrite:
            raise UserInputError(f"{directory}: already holds prepared shards (pass --overwrite to replace them)")
        fileio.remove(os.path.join(directory, MANIFEST))
    for name in fileio.listdir(directory):
        if (name.startswith("shard-") and name.endswith(".tfrecord")) or name.endswith(".tmp") or name in SAVED_VOCABULARIES:
            path = os.path.join(directory, name)
            fileio.rmtree(path) if fileio.isdir(path) else fileio.remove(path)


def resolve_vocabulary(vocab, lowercase=None):
    """The `Vocabulary` to prepare with: `vocab` as given (a Vocabulary, a path on any filesystem, a
    WordPiece token list), with WordPiece casing overridden by `lowercase` when that is not None."""
    from keras_mlm.tokenizers.vocabulary import Vocabulary, as_vocabulary

    vocabulary = as_vocabulary(vocab)
    if lowercase is not None and lowercase != vocabulary.lowercase:
        if vocabulary.kind != "wordpiece":
            raise UserInputError(
                f"a {vocabulary.kind} vocabulary has its own casing (lowercase={vocabulary.lowercase}); "
                f"lowercase={lowercase} cannot apply"
            )
        vocabulary = Vocabulary.from_tokens(vocabulary.tokens, lowercase)
    return vocabulary


def save_vocabulary(vocabulary, directory):
    """Saves the vocabulary beside the shards (`Vocabulary.save_beside`), on any filesystem."""
    return vocabulary.save_beside(directory)


def special_mask(vocabulary):
    """Boolean array over ids: True for the specials, which `source_tokens` does not count."""
    is_special = np.zeros(len(vocabulary.tokens), bool)
    is_special[vocabulary.special_token_ids] = True
    return is_special


def count_tokens(stream, is_special, unk_id):
    """(source tokens, unknown tokens) in an id stream."""
    return int(np.count_nonzero(~is_special[stream])), int(np.count_nonzero(stream == unk_id))


def build_manifest(vocabulary, config, files, text_bytes, documents, source_tokens, unknown_tokens, shards, padding):
    """The manifest of finished shards (`padding`: the [PAD] ids that fill the last row)."""
    sequences = sum(s["sequences"] for s in shards)
    return {
        "format": "keras-mlm-shards/1",
        "documents": documents,
        "source_tokens": source_tokens,
        "unknown_tokens": unknown_tokens,
        "sequences": sequences,
        "seq_len": config.seq_len,
        "padding_fraction": padding / (sequences * config.seq_len),
        "vocab_sha256": vocabulary.sha256,
        "vocab_size": len(vocabulary.tokens),
        "vocab_kind": vocabulary.kind,
        "lowercase": vocabulary.lowercase,
        "feature": FEATURE,
        "shards": shards,
        "inputs": files,
        "text_bytes": text_bytes,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def prepare(inputs, vocab, out_dir, config=DataConfig(), overwrite=False, progress=False, runner=None, pipeline_options=()):
    """Tokenizes and packs `inputs` (files/folders) into shards in `out_dir`; returns the manifest.

    `vocab` is a `Vocabulary` (any kind), a vocabulary path (file, BPE folder or `.model`) or a
    WordPiece list of tokens. `config.lowercase` overrides WordPiece casing; BPE and SentencePiece
    vocabularies carry their own, and a different value is refused.

    `runner` (e.g. "DirectRunner", "DataflowRunner") runs the preparation as an Apache Beam pipeline
    with `pipeline_options` (Beam's command-line flags, e.g. ["--direct_num_workers=2"]); the default,
    None, runs it here in this process.
    """
    out_dir = os.fspath(out_dir)
    if runner is not None:
        try:
            from keras_mlm.data import beam_prepare
        except ImportError as e:
            if not (e.name or "").startswith("apache_beam"):
                raise
            raise UserInputError(f'--runner {runner} needs Apache Beam: pip install "keras-mlm[beam]"') from None
        return beam_prepare.prepare_with_beam(inputs, vocab, out_dir, config, runner, pipeline_options, overwrite=overwrite)
    if pipeline_options:
        raise UserInputError("pipeline options need a Beam runner (--runner)")
    import tensorflow as tf

    vocabulary = resolve_vocabulary(vocab, config.lowercase)
    files = readers.expand_inputs(inputs)
    tokenizer = vocabulary.tokenizer()
    sep_id, pad_id = vocabulary.sep_id, vocabulary.pad_id
    is_special = special_mask(vocabulary)

    total_bytes = sum(readers.file_size(f) for f in files)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total_bytes, unit="B", unit_scale=True, desc="prepare", dynamic_ncols=True, disable=None)  # None: only on a terminal

    failure = []

    def chunk_batches():
        # Chunks go to tf.data in Python-side batches (one generator element per batch is far cheaper
        # than one per chunk). Errors are kept and re-raised after the pipeline stops: raised in
        # here, tf.data would wrap them in a stack trace from deep inside TensorFlow.
        texts, lasts = [], []
        try:
            for index, path in enumerate(files):
                if bar is not None:
                    bar.set_description(f"prepare [{index + 1}/{len(files)} files]")
                for chunk in readers.iterate_chunks(path):
                    texts.append(chunk.text)
                    lasts.append(chunk.last)
                    if len(texts) == config.batch_documents:
                        yield texts, lasts
                        if bar is not None:
                            bar.update(sum(len(t) + 1 for t in texts))
                        texts, lasts = [], []
            if texts:
                yield texts, lasts
                if bar is not None:
                    bar.update(sum(len(t) + 1 for t in texts))
        except UserInputError as e:
            failure.append(e)

    def tokenize(texts, lasts):
        ids = tokenizer(texts)
        return ids.flat_values, ids.row_lengths(), lasts

    text = tf.data.Dataset.from_generator(
        chunk_batches, output_signature=(tf.TensorSpec((None,), tf.string), tf.TensorSpec((None,), tf.bool))
    )
    tokenized = text.map(tokenize, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)

    clear_leftovers(out_dir, overwrite)
    writer = _ShardWriter(out_dir, config.seq_len, config.rows_per_shard)
    packer = Packer(config.seq_len, vocabulary.cls_id, pad_id)
    documents = source_tokens = unknown_tokens = 0
    document_open = False  # the current document has ids not yet closed by a [SEP]
    try:
        for flat, lengths, lasts in tokenized.as_numpy_iterator():
            stream, closed, document_open = close_documents(flat, lengths, lasts, document_open, sep_id)
            documents += closed
            if not len(stream):
                continue
            source, unknown = count_tokens(stream, is_special, vocabulary.unk_id)
            source_tokens += source
            unknown_tokens += unknown
            if bar is not None:
                bar.set_postfix(tokens=f"{source_tokens:,}", refresh=False)
            writer.add(packer.push(stream))
        if failure:
            raise failure[0]
        if document_open:  # a file ended inside a document (cannot happen with our readers; kept exact)
            writer.add(packer.push(np.array([sep_id], np.int64)))
            documents += 1
        writer.add(packer.finish())
        writer.flush()
        if not documents:
            raise UserInputError(f"empty corpus: no text in {', '.join(files)}")
        manifest = build_manifest(
            vocabulary, config, files, total_bytes, documents, source_tokens, unknown_tokens, writer.shards, packer.padding
        )
        save_vocabulary(vocabulary, out_dir)  # vocab.txt, vocab-bpe/ or vocab.model (`vocabulary.SAVED_NAMES`)
        fileio.write_json(os.path.join(out_dir, MANIFEST), manifest)
        return manifest
    except BaseException:
        remove_shards(out_dir, writer.shards)
        raise
    finally:
        if bar is not None:
            bar.close()


def close_documents(flat, lengths, lasts, document_open, sep_id):
    """Inserts a [SEP] after each chunk that ends a document with ids in it.

    Returns the id stream, the number of documents closed, and whether a document is still open.
    A document whose text yields no ids at all gets no [SEP] and is not counted.
    """
    ends = np.cumsum(lengths)
    # A chunk ends a non-empty document if it is last and the document has ids: in this chunk, in an
    # earlier chunk of this batch, or (for the first chunks) carried over from the previous batch.
    has_ids = lengths > 0
    since_last_close = np.zeros(len(lengths), bool)
    open_now = document_open
    for i in range(len(lengths)):  # a few hundred booleans per batch
        open_now = open_now or has_ids[i]
        since_last_close[i] = open_now
        if lasts[i]:
            open_now = False
    closing = lasts & since_last_close
    stream = np.insert(flat.astype(np.int64), ends[closing], sep_id)
    return stream, int(np.count_nonzero(closing)), bool(open_now)
