"""Folders written whole or not at all: build in a temporary sibling, rename into place at the end.

Elsewhere than on the local disk (`gs://...`, see `keras_mlm.fileio`), where a folder cannot be
renamed, the folder is built in a local temporary folder and copied up at the end: a failure leaves
the target as it was, but a copy cut short leaves part of a folder, which the next write refuses to
overwrite without `overwrite`.
"""

import contextlib
import os
import shutil
import tempfile

from keras_mlm import fileio
from keras_mlm.errors import UserInputError


def check_target(path, overwrite=False):
    """Fails early when `path` may not be written: a file, or a non-empty folder without `overwrite`."""
    if fileio.exists(path) and (not fileio.isdir(path) or (fileio.listdir(path) and not overwrite)):
        raise UserInputError(f"{path}: already exists and is not empty (choose another --out, or pass --overwrite)")


@contextlib.contextmanager
def staged_folder(path, overwrite=False):
    """Yields an empty temporary folder beside `path`; when the block ends without an error it
    replaces `path` by a rename (an existing folder is removed only then), otherwise it is deleted
    and `path` is left as it was."""
    if not fileio.is_local(path):
        check_target(path, overwrite)
        with tempfile.TemporaryDirectory(prefix="keras-mlm-staged-") as tmp:
            yield tmp
            fileio.rmtree(path)
            fileio.copy_tree(tmp, path)
        return
    path = os.path.abspath(path)
    check_target(path, overwrite)
    parent, name = os.path.split(path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=parent)
    try:
        yield tmp
        if os.path.isdir(path) and os.listdir(path):
            old = tempfile.mkdtemp(prefix=f".{name}.old-", dir=parent)
            os.replace(path, os.path.join(old, name))
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)  # onto a missing or empty folder
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
