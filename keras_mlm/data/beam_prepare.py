"""`prepare` as an Apache Beam pipeline: the same shards and manifest, prepared by many workers.

    prepare_with_beam(inputs, vocab, out_dir, config, "DirectRunner",
                      ["--direct_num_workers=2", "--direct_running_mode=multi_processing"])

(`keras-mlm prepare ... --runner DirectRunner -- --direct_num_workers=2 ...`; on a cluster, `--runner
DataflowRunner`, `FlinkRunner` or `SparkRunner` with that runner's options after `--`.)

    files -> read: batches of whole documents, keyed (file, batch) in corpus order -> reshuffle
          -> tokenize (the vocabulary's in-graph tokenizer; a [SEP] closes each document) -> id streams
    id stream lengths -> prefix sums in corpus order: where each batch starts in the corpus's id stream
    id streams -> cut at shard boundaries -> group by shard -> [CLS] + (seq_len - 1) ids a row -> write
    shard entries + counts -> manifest.json, the last step, run only once every shard is written

Every batch knows its place in the corpus's id stream, so rows are cut where the single-process path
cuts them: the shards are the same, byte for byte (same `records_sha256`), whichever worker wrote them.
A failed or killed pipeline never reaches the last step, so it leaves no manifest; the next run clears
what it left. The vocabulary is written beside the shards before the pipeline starts.

`ram://` paths live in one process's memory: use them only with in-process runners (DirectRunner with
`--direct_running_mode in_memory` or `multi_threading`).
"""

import os
import re

import apache_beam as beam
import numpy as np
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions
from apache_beam.runners.runner import PipelineState

from keras_mlm import fileio
from keras_mlm.data import readers
from keras_mlm.data.prepare import (
    MANIFEST,
    Packer,
    build_manifest,
    clear_leftovers,
    close_documents,
    count_tokens,
    read_manifest,
    resolve_vocabulary,
    save_vocabulary,
    special_mask,
    write_shard,
)
from keras_mlm.errors import UserInputError


def read_batches(indexed_file, batch_documents):
    """(file index, path) -> ((file index, batch index), (chunk texts, chunk-ends-document flags)).

    A batch holds `batch_documents` chunks or a few more: it always ends with a document's last chunk,
    so no document is split between batches.
    """
    file_index, path = indexed_file
    texts, lasts, batch = [], [], 0
    for chunk in readers.iterate_chunks(path):
        texts.append(chunk.text)
        lasts.append(chunk.last)
        if chunk.last and len(texts) >= batch_documents:
            yield (file_index, batch), (texts, lasts)
            texts, lasts, batch = [], [], batch + 1
    if texts:
        yield (file_index, batch), (texts, lasts)


class Tokenize(beam.DoFn):
    """A batch of chunks -> (key, id stream with a [SEP] after each document, (documents, source tokens, unknown tokens))."""

    def __init__(self, vocabulary):
        self.vocabulary = vocabulary

    def setup(self):
        import tensorflow as tf

        tokenizer = self.vocabulary.tokenizer()

        @tf.function(input_signature=[tf.TensorSpec((None,), tf.string)])
        def tokenize(texts):
            ids = tokenizer(texts)
            return ids.flat_values, ids.row_lengths()

        self.tokenize = tokenize
        self.is_special = special_mask(self.vocabulary)

    def process(self, element):
        key, (texts, lasts) = element
        flat, lengths = self.tokenize(texts)
        sep_id = self.vocabulary.sep_id
        stream, documents, still_open = close_documents(flat.numpy(), lengths.numpy(), np.array(lasts), False, sep_id)
        if still_open:  # a batch ended inside a document (cannot happen with our readers; kept exact)
            stream, documents = np.append(stream, sep_id), documents + 1
        source, unknown = count_tokens(stream, self.is_special, self.vocabulary.unk_id)
        yield key, stream.astype(np.int32), (documents, source, unknown)


def stream_layout(lengths):
    """[(batch key, id count)] -> where each batch starts in the corpus's id stream (corpus order) and its total length."""
    starts, total = {}, 0
    for key, length in sorted(lengths):
        starts[key] = total
        total += length
    return {"starts": starts, "total": total}


def cut_at_shards(tokenized, layout, shard_ids):
    """One batch's id stream -> (shard, (stream position, ids)) for each shard the batch reaches into."""
    key, stream, _ = tokenized
    if not len(stream):  # documents without a single id
        return
    begin = layout["starts"][key]
    end = begin + len(stream)
    for shard in range(begin // shard_ids, -(-end // shard_ids)):
        lo, hi = max(begin, shard * shard_ids), min(end, (shard + 1) * shard_ids)
        yield shard, (lo, stream[lo - begin : hi - begin])


class WriteShard(beam.DoFn):
    """(shard, [(stream position, ids)]) -> (manifest entry, [PAD] ids added), the shard written to `out_dir`."""

    def __init__(self, out_dir, config, cls_id, pad_id):
        self.out_dir, self.config, self.cls_id, self.pad_id = out_dir, config, cls_id, pad_id

    def process(self, element, layout):
        shard, pieces = element
        shard_ids = self.config.rows_per_shard * (self.config.seq_len - 1)
        pieces = sorted(pieces, key=lambda piece: piece[0])
        first, last = shard * shard_ids, min((shard + 1) * shard_ids, layout["total"])
        positions = [position for position, _ in pieces]
        expected = np.cumsum([first] + [len(ids) for _, ids in pieces])
        if positions != list(expected[:-1]) or expected[-1] != last:  # a bug, never bad input
            raise AssertionError(f"shard {shard}: pieces at {positions} do not tile ids {first}..{last}")
        packer = Packer(self.config.seq_len, self.cls_id, self.pad_id)
        rows = packer.push(np.concatenate([ids for _, ids in pieces]).astype(np.int64))
        if last == layout["total"]:  # the corpus's last row: padded
            rows = np.concatenate([rows, packer.finish()])
        yield write_shard(self.out_dir, shard, rows), packer.padding


def write_manifest(_, out_dir, vocabulary, config, files, text_bytes, shards, counts):
    """The last step: the manifest, once every shard is written (nothing for a corpus without text)."""
    documents, source_tokens, unknown_tokens = counts
    if not documents:
        return
    entries = sorted((entry for entry, _ in shards), key=lambda entry: entry["file"])
    padding = sum(padding for _, padding in shards)
    manifest = build_manifest(vocabulary, config, files, text_bytes, documents, source_tokens, unknown_tokens, entries, padding)
    fileio.write_json(os.path.join(out_dir, MANIFEST), manifest)


def sum_counts(counts):
    return tuple(int(sum(values)) for values in zip(*counts)) if counts else (0, 0, 0)


def build_pipeline(pipeline, files, vocabulary, out_dir, config, text_bytes):
    """Adds the preparation of `files` into `out_dir` to `pipeline` (see the module docstring)."""
    shard_ids = config.rows_per_shard * (config.seq_len - 1)  # stream ids per shard ([CLS] excluded)
    tokenized = (
        pipeline
        | "Files" >> beam.Create(list(enumerate(files)))
        | "Read" >> beam.FlatMap(read_batches, config.batch_documents)
        | "Spread" >> beam.Reshuffle()
        | "Tokenize" >> beam.ParDo(Tokenize(vocabulary))
    )
    layout = (
        tokenized
        | "Lengths" >> beam.Map(lambda t: (t[0], len(t[1])))
        | "AllLengths" >> beam.combiners.ToList()
        | "Layout" >> beam.Map(stream_layout)
    )
    counts = tokenized | "Counts" >> beam.Map(lambda t: t[2]) | "SumCounts" >> beam.CombineGlobally(sum_counts)
    shards = (
        tokenized
        | "Cut" >> beam.FlatMap(cut_at_shards, beam.pvalue.AsSingleton(layout), shard_ids)
        | "GroupByShard" >> beam.GroupByKey()
        | "WriteShards" >> beam.ParDo(WriteShard(out_dir, config, vocabulary.cls_id, vocabulary.pad_id), beam.pvalue.AsSingleton(layout))
    )
    return (
        pipeline
        | "Finish" >> beam.Create([None])
        | "WriteManifest" >> beam.Map(
            write_manifest, out_dir, vocabulary, config, files, text_bytes,
            shards=beam.pvalue.AsList(shards), counts=beam.pvalue.AsSingleton(counts),
        )
    )


def prepare_with_beam(inputs, vocab, out_dir, config, runner, pipeline_options=(), overwrite=False):
    """`prepare` (same arguments, same result) run by Beam's `runner` with `pipeline_options` (Beam's flags)."""
    options = PipelineOptions(list(pipeline_options), runner=runner)
    vocabulary = resolve_vocabulary(vocab, config.lowercase)
    files = readers.expand_inputs(inputs)
    out_dir = fileio.abspath(out_dir)  # workers may start elsewhere
    if options.view_as(DirectOptions).direct_running_mode == "multi_processing" and any(
        p.startswith("ram://") for p in [out_dir, *files]
    ):
        raise UserInputError("ram:// paths live in one process: use --direct_running_mode in_memory or multi_threading")
    text_bytes = sum(readers.file_size(f) for f in files)
    try:
        pipeline = beam.Pipeline(runner=runner, options=options)
    except ValueError as e:  # an unknown runner
        raise UserInputError(f"--runner {runner}: {e}") from None
    clear_leftovers(out_dir, overwrite)
    save_vocabulary(vocabulary, out_dir)
    build_pipeline(pipeline, files, vocabulary, out_dir, config, text_bytes)
    result = None
    try:
        result = pipeline.run()
        state = result.wait_until_finish()
        if state != PipelineState.DONE:
            raise UserInputError(f"the {runner} pipeline ended {state}; no manifest was written")
    except BaseException as e:
        if result is not None and not PipelineState.is_terminal(result.state):
            result.cancel()  # a cluster job must not go on writing into what is cleared next
        if not fileio.isfile(os.path.join(out_dir, MANIFEST)):
            clear_leftovers(out_dir, overwrite=False)  # shards, temporary files and the vocabulary go
        user_error = _user_error(e)
        if user_error is None:
            raise
        raise user_error from None
    if not fileio.isfile(os.path.join(out_dir, MANIFEST)):  # the pipeline ran and found no text
        clear_leftovers(out_dir, overwrite=False)
        raise UserInputError(f"empty corpus: no text in {', '.join(files)}")
    return read_manifest(out_dir)


def _user_error(error):
    """The `UserInputError` a worker raised (a bad input file), out of the runner's wrapping of it; else None."""
    if isinstance(error, UserInputError):
        return error
    found = re.search(r"UserInputError: (.+)", str(error))
    if found is None:
        return None
    message = found.group(1).split("\\n")[0]  # a worker's traceback may come as one line with escaped newlines
    return UserInputError(re.sub(r" \[while running '[^']*'\]$", "", message.strip()))
