"""Raw text inputs -> a stream of documents.

Accepted inputs: `.txt` files (documents separated by a blank line), `.jsonl` files (one JSON object a
line with a string `text` field), the gzip'd forms of both (`.txt.gz`, `.jsonl.gz`), and folders of them
(searched recursively, files in sorted order so a corpus always streams in the same order).

Text must be UTF-8. A byte sequence that is not UTF-8 is an error naming the file, line and byte offset:
silently replacing characters would change the training text without anyone noticing, and the fix
(`iconv -f latin1 -t utf-8`) is one command for the user.

Paths may name any filesystem `tf.io.gfile` knows (`gs://bucket/corpus/`, `ram://` in tests), see
`keras_mlm.fileio`; plain paths are read with Python's own file objects, the fast path.

Documents are streamed as chunks of at most `chunk_chars` characters, cut at line ends, so a document
larger than memory (a book with no blank line, say) streams too; `Chunk.last` tells where a document
ends, so packing can put a [SEP] only there.
"""

import contextlib
import dataclasses
import gzip
import io
import json
import os

from keras_mlm import fileio
from keras_mlm.errors import UserInputError

TEXT_SUFFIXES = (".txt", ".txt.gz")
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz")
SUFFIXES = TEXT_SUFFIXES + JSONL_SUFFIXES


@dataclasses.dataclass(frozen=True)
class Chunk:
    text: str
    last: bool  # True when this chunk ends its document


def expand_inputs(inputs):
    """Files and folders -> the sorted list of corpus files they name. Raises on anything unusable."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    files = []
    for item in inputs:
        item = os.fspath(item)
        try:
            files.extend(_corpus_files(item))
        except fileio.read_errors(item) as e:  # a bucket out of reach, a scheme TensorFlow has no filesystem for
            raise UserInputError(f"{item}: cannot read ({getattr(e, 'message', e)})") from None
    if not files:
        raise UserInputError("no input files given")
    return files


def _corpus_files(item):
    """The corpus files one input names: the file itself, or a folder's, recursively, sorted."""
    if fileio.isdir(item):
        found = sorted(os.path.join(root, name) for root, _, names in fileio.walk(item) for name in names if name.endswith(SUFFIXES))
        if not found:
            raise UserInputError(f"{item}: folder holds no corpus files (allowed: {', '.join(SUFFIXES)})")
        return found
    if fileio.isfile(item):
        if not item.endswith(SUFFIXES):
            raise UserInputError(f"{item}: unsupported file type (allowed: {', '.join(SUFFIXES)})")
        if fileio.is_local(item) and not os.access(item, os.R_OK):
            raise UserInputError(f"{item}: file is not readable")
        return [item]
    raise UserInputError(f"{item}: no such file or folder")


@contextlib.contextmanager
def _open_binary(path):
    """The file's bytes, gunzipped for `.gz`."""
    try:
        raw = fileio.open(path, "rb")
    except fileio.read_errors(path) as e:
        raise UserInputError(f"{path}: cannot open ({getattr(e, 'strerror', None) or e})") from None
    with raw, (gzip.GzipFile(fileobj=raw, mode="rb") if path.endswith(".gz") else contextlib.nullcontext(raw)) as f:
        yield f


def _decoded_lines(path):
    """Yields (line_number, text) for each line, raising a named error on bytes that are not UTF-8."""
    offset = 0
    with _open_binary(path) as f:
        try:
            for line_number, raw in enumerate(f, start=1):
                try:
                    yield line_number, raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise UserInputError(
                        f"{path}:{line_number}: bytes that are not UTF-8 at byte offset {offset + e.start} "
                        f"(convert the file to UTF-8, e.g. with iconv)"
                    ) from None
                offset += len(raw)
        except fileio.read_errors(path) as e:
            raise UserInputError(f"{path}: cannot read ({e})") from None


def _text_chunks(path, chunk_chars):
    lines = []
    size = 0
    for _, line in _decoded_lines(path):
        line = line.strip()
        if not line:
            if lines:
                yield Chunk(" ".join(lines), last=True)
                lines, size = [], 0
            continue
        if size + len(line) > chunk_chars and lines:
            yield Chunk(" ".join(lines), last=False)
            lines, size = [], 0
        lines.append(line)
        size += len(line) + 1
    if lines:
        yield Chunk(" ".join(lines), last=True)


def _jsonl_chunks(path, chunk_chars):
    for line_number, line in _decoded_lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserInputError(f"{path}:{line_number}: invalid JSON ({e.msg})") from None
        text = record.get("text") if isinstance(record, dict) else None
        if not isinstance(text, str):
            raise UserInputError(f"{path}:{line_number}: field 'text' is missing or not a string")
        words = text.split()
        # Long texts go out in pieces cut between words.
        start, size = 0, 0
        for i, word in enumerate(words):
            if size + len(word) > chunk_chars and i > start:
                yield Chunk(" ".join(words[start:i]), last=False)
                start, size = i, 0
            size += len(word) + 1
        if words:
            yield Chunk(" ".join(words[start:]), last=True)


def iterate_chunks(path, chunk_chars=1 << 16):
    """The documents of one file as chunks of at most about `chunk_chars` characters."""
    if path.endswith(JSONL_SUFFIXES):
        return _jsonl_chunks(path, chunk_chars)
    return _text_chunks(path, chunk_chars)


def iterate_documents(inputs):
    """Whole documents (strings) from files and folders; for small corpora and vocabulary training."""
    for path in expand_inputs(inputs):
        parts = []
        for chunk in iterate_chunks(path):
            parts.append(chunk.text)
            if chunk.last:
                yield " ".join(parts)
                parts = []


def file_size(path):
    """Bytes of text the file holds (uncompressed size for gzip, read from its trailer)."""
    if path.endswith(".gz"):
        with fileio.open(path, "rb") as f:
            f.seek(-4, io.SEEK_END)
            return int.from_bytes(f.read(4), "little")
    return fileio.size(path)
