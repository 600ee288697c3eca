"""Shards -> the `tf.data.Dataset` that `model.fit` consumes: `(x, mask_ids, mask_weights)` batches.

    files (seeded shuffle) -> this pipeline's share -> interleave TFRecords -> parse rows
        -> row shuffle -> repeat -> skip (resume) -> batch(drop_remainder) -> mask per batch -> prefetch

Masking runs per batch, after batching (6.6x faster than per row), with a step counter that continues
across epochs, so every pass sees fresh masks (RoBERTa) and a resumed run at step k sees exactly the
batches and masks the uninterrupted run would have seen.
"""

import tensorflow as tf

from keras_mlm.data.prepare import FEATURE, read_manifest, shard_paths
from keras_mlm.errors import UserInputError


def _check_vocabulary(manifest, directory, tokens):
    if tokens is None:
        return
    from keras_mlm.tokenizers.vocabulary import vocabulary_digest

    given = vocabulary_digest(tokens)  # a Vocabulary or a WordPiece token list
    if manifest["vocab_sha256"] != given:
        raise UserInputError(
            f"{directory}: shards were prepared with another vocabulary "
            f"(manifest vocab_sha256 {manifest['vocab_sha256'][:12]}..., given {given[:12]}...)"
        )


def read_rows(directory, seq_len=None, input_context=None, shuffle_files=False, seed=0, interleave=False):
    """The packed rows of a shards directory as a dataset of int32 (seq_len,) tensors.

    In file order unless `shuffle_files`; `interleave` reads several files at once (rows mixed).

    With an `input_context` each input pipeline reads its own files (or, when there are fewer files than
    pipelines, its own rows), so in one epoch no row is read twice and none is skipped.
    """
    manifest = read_manifest(directory)
    if seq_len is not None and manifest["seq_len"] != seq_len:
        raise UserInputError(f"{directory}: shards hold rows of {manifest['seq_len']} ids, the model expects {seq_len}")
    seq_len = manifest["seq_len"]
    paths = shard_paths(directory, manifest)
    files = tf.data.Dataset.from_tensor_slices(paths)
    num_pipelines = input_context.num_input_pipelines if input_context else 1
    pipeline = input_context.input_pipeline_id if input_context else 0
    shard_by_file = num_pipelines > 1 and len(paths) >= num_pipelines
    if shard_by_file:
        files = files.shard(num_pipelines, pipeline)
    if shuffle_files:
        files = files.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    rows = files.interleave(
        tf.data.TFRecordDataset,
        cycle_length=min(4, len(paths)) if interleave else 1,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    if num_pipelines > 1 and not shard_by_file:
        rows = rows.shard(num_pipelines, pipeline)
    spec = {FEATURE: tf.io.FixedLenFeature([seq_len], tf.int64)}
    return rows.map(
        lambda record: tf.cast(tf.io.parse_single_example(record, spec)[FEATURE], tf.int32),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )


def pretraining_dataset(
    directory,
    batch_size,
    masker,
    *,
    seed=0,
    shuffle_buffer=10_000,
    repeat=True,
    start_step=0,
    input_context=None,
    vocabulary=None,
):
    """The training dataset: shuffled, repeated, batched, dynamically masked.

    Args:
        directory: a folder written by `keras-mlm prepare` (holds `manifest.json`).
        batch_size: the global batch size; with an `input_context` each pipeline batches its share.
        masker: a `keras_mlm.masking.MLMMasker` (its seed and rates decide the masks).
        seed: seeds the file and row shuffles (the masker has its own seed).
        repeat: loop forever (training) or stop after one pass.
        start_step: batches to skip, to resume a run exactly where it stopped.
        input_context: a `tf.distribute.InputContext`, as passed by `distribute_datasets_from_function`.
        vocabulary: the token list, to check the shards were made with it.
    """
    manifest = read_manifest(directory)
    _check_vocabulary(manifest, directory, vocabulary)
    if batch_size < 1:
        raise UserInputError(f"batch_size must be at least 1, got {batch_size}")
    per_pipeline = input_context.get_per_replica_batch_size(batch_size) if input_context else batch_size
    pipeline = input_context.input_pipeline_id if input_context else 0
    seed = seed + 1_000_003 * pipeline  # each pipeline shuffles (and masks) differently
    rows = read_rows(directory, masker.sequence_length, input_context, shuffle_files=True, seed=seed, interleave=True)
    if shuffle_buffer > 1:
        rows = rows.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        rows = rows.repeat()
    batches = rows.batch(per_pipeline, drop_remainder=True)
    if start_step:
        batches = batches.skip(start_step)
    step_offset = tf.constant(start_step, tf.int64) + (pipeline << 40)
    return (
        batches.enumerate()
        .map(lambda step, ids: masker(ids, step=step + step_offset), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
    )


def evaluation_dataset(directory, batch_size, masker, vocabulary=None, max_rows=None):
    """One pass in file order with the masker's fixed evaluation mask: the same numbers every run.

    `max_rows`: only the first that many rows.
    """
    manifest = read_manifest(directory)
    _check_vocabulary(manifest, directory, vocabulary)
    rows = read_rows(directory, masker.sequence_length)
    if max_rows is not None:
        rows = rows.take(max_rows)
    return (
        rows.batch(batch_size)
        .enumerate()
        .map(lambda step, ids: masker(ids, step=step), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
    )
