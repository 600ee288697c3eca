"""Corpus -> packed rows of token ids -> sharded TFRecord files + `manifest.json`.

Documents are tokenized inside a tf.data pipeline (the vocabulary's in-graph tokenizer, keras-hub's
WordPiece, BytePair or SentencePiece layer, over batches of text), then packed back to back into rows of exactly `seq_len` ids:

    [CLS] doc1 ... [SEP] doc2 ... [SEP] doc3 (first part)      <- row 0
    [CLS] doc3 (rest) ... [SEP] doc4 ... [SEP] [PAD] [PAD]      <- row 1 (only the last row is padded)

Nothing is dropped or duplicated: a document longer than a row continues in the next one. Each shard
is written to a temporary name and renamed once complete, and `manifest.json` is written last, so an
interrupted run never leaves a half shard; a directory without a manifest is a leftover that the next
run clears.
"""

import dataclasses
import datetime
import hashlib
import json
import os
import shutil

import numpy as np

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


def write_json_atomic(path, payload):
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_manifest(directory):
    """The manifest of a shards directory, with a clear error when it is not one."""
    path = os.path.join(directory, MANIFEST)
    if not os.path.isdir(directory):
        raise UserInputError(f"{directory}: no such shards directory")
    if not os.path.isfile(path):
        raise UserInputError(f"{directory}: not a prepared shards directory (no {MANIFEST}; run `keras-mlm prepare`)")
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise UserInputError(f"{path}: unreadable manifest ({e})") from None
    for field in ("seq_len", "shards", "vocab_sha256", "sequences"):
        if field not in manifest:
            raise UserInputError(f"{path}: manifest lacks field '{field}'")
    return manifest


def shard_paths(directory, manifest=None):
    manifest = manifest or read_manifest(directory)
    return [os.path.join(directory, shard["file"]) for shard in manifest["shards"]]


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
        import tensorflow as tf

        if not self.filled:
            return
        name = SHARD_PATTERN.format(len(self.shards))
        path = os.path.join(self.directory, name)
        tmp = os.path.join(self.directory, f".{name}.tmp")
        digest = hashlib.sha256()
        with tf.io.TFRecordWriter(tmp) as writer:
            for row in self.rows[: self.filled]:
                record = tf.train.Example(
                    features=tf.train.Features(feature={FEATURE: tf.train.Feature(int64_list=tf.train.Int64List(value=row))})
                ).SerializeToString()
                digest.update(record)
                writer.write(record)
        os.replace(tmp, path)
        self.shards.append({"file": name, "sequences": self.filled, "bytes": os.path.getsize(path), "records_sha256": digest.hexdigest()})
        self.filled = 0


class _Packer:
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


def _clear_leftovers(directory, overwrite):
    """Makes `directory` ready: refuses to clobber a finished run unless asked, clears a broken one."""
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise UserInputError(f"{directory}: exists and is not a directory")
    os.makedirs(directory, exist_ok=True)
    if os.path.exists(os.path.join(directory, MANIFEST)):
        if not overwrite:
            raise UserInputError(f"{directory}: already holds prepared shards (pass --overwrite to replace them)")
        os.remove(os.path.join(directory, MANIFEST))
    for name in os.listdir(directory):
        if (name.startswith("shard-") and name.endswith(".tfrecord")) or name.endswith(".tmp") or name in SAVED_VOCABULARIES:
            path = os.path.join(directory, name)
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)


def prepare(inputs, vocab, out_dir, config=DataConfig(), overwrite=False, progress=False):
    """Tokenizes and packs `inputs` (files/folders) into shards in `out_dir`; returns the manifest.

    `vocab` is a `Vocabulary` (any kind), a vocabulary path (file, BPE folder or `.model`) or a
    WordPiece list of tokens. `config.lowercase` overrides WordPiece casing; BPE and SentencePiece
    vocabularies carry their own, and a different value is refused.
    """
    import tensorflow as tf

    from keras_mlm.tokenizers.vocabulary import Vocabulary, as_vocabulary

    vocabulary = as_vocabulary(vocab)
    if config.lowercase is not None and config.lowercase != vocabulary.lowercase:
        if vocabulary.kind != "wordpiece":
            raise UserInputError(
                f"a {vocabulary.kind} vocabulary has its own casing (lowercase={vocabulary.lowercase}); "
                f"lowercase={config.lowercase} cannot apply"
            )
        vocabulary = Vocabulary.from_tokens(vocabulary.tokens, config.lowercase)
    tokens = vocabulary.tokens
    files = readers.expand_inputs(inputs)
    lowercase = vocabulary.lowercase
    tokenizer = vocabulary.tokenizer()
    cls_id, sep_id, pad_id, unk_id = vocabulary.cls_id, vocabulary.sep_id, vocabulary.pad_id, vocabulary.unk_id
    is_special = np.zeros(len(tokens), bool)
    is_special[vocabulary.special_token_ids] = True

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

    _clear_leftovers(out_dir, overwrite)
    writer = _ShardWriter(out_dir, config.seq_len, config.rows_per_shard)
    packer = _Packer(config.seq_len, cls_id, pad_id)
    documents = source_tokens = unknown_tokens = 0
    document_open = False  # the current document has ids not yet closed by a [SEP]
    try:
        for flat, lengths, lasts in tokenized.as_numpy_iterator():
            stream, closed, document_open = _close_documents(flat, lengths, lasts, document_open, sep_id)
            documents += closed
            if not len(stream):
                continue
            source_tokens += int(np.count_nonzero(~is_special[stream]))
            unknown_tokens += int(np.count_nonzero(stream == unk_id))
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
        sequences = sum(s["sequences"] for s in writer.shards)
        manifest = {
            "format": "keras-mlm-shards/1",
            "documents": documents,
            "source_tokens": source_tokens,
            "unknown_tokens": unknown_tokens,
            "sequences": sequences,
            "seq_len": config.seq_len,
            "padding_fraction": packer.padding / (sequences * config.seq_len),
            "vocab_sha256": vocabulary.sha256,
            "vocab_size": len(tokens),
            "vocab_kind": vocabulary.kind,
            "lowercase": lowercase,
            "feature": FEATURE,
            "shards": writer.shards,
            "inputs": files,
            "text_bytes": total_bytes,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        vocabulary.save_beside(out_dir)  # vocab.txt, vocab-bpe/ or vocab.model (`vocabulary.SAVED_NAMES`)
        write_json_atomic(os.path.join(out_dir, MANIFEST), manifest)
        return manifest
    except BaseException:
        for shard in writer.shards:
            path = os.path.join(out_dir, shard["file"])
            if os.path.exists(path):
                os.remove(path)
        raise
    finally:
        if bar is not None:
            bar.close()



def _close_documents(flat, lengths, lasts, document_open, sep_id):
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
