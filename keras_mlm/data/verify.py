"""Are a directory's shards the ones its manifest describes? Cheap checks before training, full ones on request.

    check_shards("shards/")                 # every shard present, with the size the manifest records
    check_shards("shards/", records=True)   # ...and every record readable, hashing to records_sha256

A failure is a `UserInputError` naming the shard and what is wrong, so `pretrain` stops before it
writes anything and `keras-mlm inspect DIR --verify` prints one line. Manifests written before sizes
were recorded (no `bytes` field) are checked for presence only, without the records check.
"""

import hashlib
import os

from keras_mlm import fileio
from keras_mlm.data.prepare import read_manifest
from keras_mlm.errors import UserInputError


class CorruptShards(UserInputError):
    """A shard is missing, truncated, or holds other records than its manifest says."""


def check_shards(directory, manifest=None, records=False):
    """Checks the shards of `directory` against its manifest; returns the number of bytes checked."""
    manifest = manifest or read_manifest(directory)
    total = 0
    for shard in manifest["shards"]:
        path = os.path.join(directory, shard["file"])
        if not fileio.isfile(path):
            raise CorruptShards(f"{path}: shard missing (the manifest lists it); prepare the data again")
        size = fileio.size(path)
        expected = shard.get("bytes")
        if expected is not None and size != expected:
            what = "truncated" if size < expected else "longer than written"
            raise CorruptShards(f"{path}: {what}: {size:,} bytes, the manifest records {expected:,}; copy or prepare the data again")
        total += size
        if records:
            check_records(path, shard)
    return total


def check_records(path, shard):
    """Reads every record of one shard (TFRecord's own CRCs) and compares their digest and count with the manifest's."""
    import tensorflow as tf

    digest, count = hashlib.sha256(), 0
    try:
        for batch in tf.data.TFRecordDataset(path, buffer_size=1 << 20).batch(1024).as_numpy_iterator():
            for record in batch:
                digest.update(record)
            count += len(batch)
    except (tf.errors.DataLossError, tf.errors.OutOfRangeError) as e:
        reason = " ".join(e.message.split("}}")[-1].split("[Op:")[0].split()).strip(" '").replace("' failed with", ":") if e.message else type(e).__name__
        raise CorruptShards(f"{path}: corrupt after {count:,} readable records ({reason}); copy or prepare the data again") from None
    if "sequences" in shard and count != shard["sequences"]:
        raise CorruptShards(f"{path}: holds {count:,} records, the manifest records {shard['sequences']:,}")
    expected = shard.get("records_sha256")
    if expected is not None and digest.hexdigest() != expected:
        raise CorruptShards(
            f"{path}: records do not match the manifest's records_sha256 ({digest.hexdigest()[:12]}... != {expected[:12]}...); "
            "the shard was modified or belongs to another manifest"
        )


def find_corrupt_shard(directory):
    """The error of the first damaged shard of `directory`, or None when all check out (after a read failed in training)."""
    try:
        check_shards(directory, records=True)
    except UserInputError as e:
        return e
    return None
