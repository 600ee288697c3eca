"""The file operations of inputs, shards and run folders, on any filesystem `tf.io.gfile` knows.

    fileio.exists("gs://bucket/runs/base/backup/state.json")
    fileio.atomic_save(model.save, "gs://bucket/runs/base/model.keras")

A plain path (no `scheme://`) goes through Python's own `os`, `open`, `glob` and `os.replace`, the
fast path, with atomic renames. Any other (`gs://...`; `ram://` in tests) goes through `tf.io.gfile`,
imported only then.

`atomic_save` writes a file so that a reader, or a rerun after a kill, sees the old file or the whole
new one: under a temporary name in the same folder, then renamed. Elsewhere than on a local disk the
file is first written locally (Keras and YAML write local files), copied up under the temporary name
and renamed: atomic where the filesystem renames atomically (HDFS); an object store (gs://) renames by
copying, which still makes the object appear whole. What must never point at a half-written file is
written after it (the run's backup: its weights file first, then `state.json` naming it; shards first,
then `manifest.json`).
"""

import builtins
import json
import glob as glob_lib
import gzip
import os
import shutil
import tempfile


def is_local(path):
    """Whether `path` is a plain local path (no `scheme://`)."""
    return "://" not in os.fspath(path)


def _gfile():
    import tensorflow as tf

    return tf.io.gfile


def read_errors(path):
    """What a failed read raises: OSError and gzip's errors, and TensorFlow's for other filesystems."""
    errors = (OSError, EOFError, gzip.BadGzipFile)
    if is_local(path):
        return errors
    import tensorflow as tf

    return errors + (tf.errors.OpError,)


def exists(path):
    return os.path.exists(path) if is_local(path) else _gfile().exists(os.fspath(path))


def isdir(path):
    return os.path.isdir(path) if is_local(path) else _gfile().isdir(os.fspath(path))


def isfile(path):
    if is_local(path):
        return os.path.isfile(path)
    return _gfile().exists(os.fspath(path)) and not _gfile().isdir(os.fspath(path))


def size(path):
    """The file's size in bytes."""
    return os.path.getsize(path) if is_local(path) else _gfile().stat(os.fspath(path)).length


def abspath(path):
    """An absolute local path; other filesystems' paths are absolute already and returned as given."""
    return os.path.abspath(path) if is_local(path) else os.fspath(path)


def realpath(path):
    """`os.path.realpath` for local paths; others without a trailing slash (they have no links)."""
    return os.path.realpath(path) if is_local(path) else os.fspath(path).rstrip("/")


def makedirs(path):
    """Creates the folder and its parents; nothing when it exists."""
    if is_local(path):
        os.makedirs(path, exist_ok=True)
    else:
        _gfile().makedirs(os.fspath(path))


def listdir(path):
    """The names in a folder (object stores' trailing slash on folders removed)."""
    if is_local(path):
        return os.listdir(path)
    return [name.rstrip("/") for name in _gfile().listdir(os.fspath(path))]


def glob(pattern):
    return glob_lib.glob(pattern) if is_local(pattern) else _gfile().glob(os.fspath(pattern))


def walk(path):
    """`os.walk`'s (folder, subfolders, files) triples."""
    return os.walk(path) if is_local(path) else _gfile().walk(os.fspath(path))


def remove(path):
    if is_local(path):
        os.remove(path)
    else:
        _gfile().remove(os.fspath(path))


def rmtree(path):
    """Removes a folder and everything in it; nothing when it does not exist."""
    if is_local(path):
        shutil.rmtree(path, ignore_errors=True)
    elif _gfile().exists(os.fspath(path)):
        _gfile().rmtree(os.fspath(path))


def open(path, mode="r", encoding=None):
    """A file object: Python's `open` for local paths, a `tf.io.gfile.GFile` (UTF-8 text) for others.

    Opening a missing file to read raises FileNotFoundError on every filesystem (a GFile would only
    fail at its first read, with TensorFlow's NotFoundError).
    """
    if is_local(path):
        return builtins.open(path, mode, encoding=encoding)
    path = os.fspath(path)
    if "r" in mode and not _gfile().exists(path):
        raise FileNotFoundError(2, "No such file or directory", path)
    return _gfile().GFile(path, mode)


def copy(source, target):
    """Copies one file, between any two filesystems, replacing `target`."""
    if is_local(source) and is_local(target):
        shutil.copyfile(source, target)
    else:
        _gfile().copy(os.fspath(source), os.fspath(target), overwrite=True)


def copy_tree(source, target):
    """Copies a file or a folder of files between any two filesystems; returns `target`."""
    if not isdir(source):
        copy(source, target)
        return target
    makedirs(target)
    for name in listdir(source):
        copy_tree(os.path.join(source, name), os.path.join(target, name))
    return target


def temporary_name(path):
    """Where `atomic_save` writes `path` first: `.name.tmp-PID.ext` beside it (removed if a kill leaves it)."""
    directory, name = os.path.split(os.fspath(path))
    stem, dot, ext = name.partition(".")
    return os.path.join(directory, f".{stem}.tmp-{os.getpid()}{dot}{ext}")


def atomic_save(save, path):
    """Calls `save(local_path)` and puts the result at `path` whole, by a rename (see the module docstring)."""
    path = os.fspath(path)
    directory, name = os.path.split(path)
    tmp = temporary_name(path)
    if is_local(path):
        os.makedirs(directory or ".", exist_ok=True)
        try:
            save(tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return
    gfile = _gfile()
    gfile.makedirs(directory)
    with tempfile.TemporaryDirectory(prefix="keras-mlm-upload-") as local:
        save(os.path.join(local, name))  # the same name: Keras reads the format from the extension
        try:
            gfile.copy(os.path.join(local, name), tmp, overwrite=True)
            gfile.rename(tmp, path, overwrite=True)
        finally:
            if gfile.exists(tmp):
                gfile.remove(tmp)


def write_atomic(path, data):
    """Writes `data` (bytes, or text written as UTF-8) to `path` with `atomic_save`, synced to disk first."""
    data = data.encode("utf-8") if isinstance(data, str) else data

    def save(tmp):
        with builtins.open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    atomic_save(save, path)


def write_json(path, payload):
    """`payload` as indented JSON at `path`, written with `write_atomic`."""
    write_atomic(path, json.dumps(payload, indent=2) + "\n")
