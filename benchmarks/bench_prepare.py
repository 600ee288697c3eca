"""`prepare` throughput, single process against Apache Beam's DirectRunner, next to keras-hub's bare tokenizer.

    python benchmarks/bench_prepare.py [--corpus ../shared/corpora/gutenberg] [--megabytes 8] [--workers 2]

On the same text, in one run, in MB of text per second:
1. `prepare` in this process (tokenize + pack + write shards + manifest);
2. `prepare --runner DirectRunner` with `--workers` worker processes (`--direct_running_mode
   multi_processing`): the same shards (checked: equal manifests), and the time the runner takes to
   start its workers, measured apart on a one-document corpus, since it does not grow with the corpus;
3. keras-hub's WordPieceTokenizer alone over the same documents in batches (no packing, no writing).
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras_hub
import tensorflow as tf

from keras_mlm.data.prepare import DataConfig, prepare
from keras_mlm.data.readers import expand_inputs, file_size, iterate_documents
from keras_mlm.tokenizers import train_vocabulary, write_vocabulary

SEQ_LEN = 128


def pick_files(corpus, megabytes):
    files, total = [], 0
    for path in expand_inputs([corpus]):
        files.append(path)
        total += file_size(path)
        if total >= megabytes * 1e6:
            break
    return files, total


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def main():
    default = Path(__file__).resolve().parents[1] / ".." / "shared" / "corpora" / "gutenberg"
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", default=str(default))
    parser.add_argument("--megabytes", type=float, default=8)
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--workers", type=int, default=2, help="DirectRunner worker processes")
    args = parser.parse_args()

    files, text_bytes = pick_files(args.corpus, args.megabytes)
    megabytes = text_bytes / 1e6
    work = tempfile.mkdtemp(prefix="bench-prepare-")
    tokens = train_vocabulary(files, args.vocab_size)
    vocab = os.path.join(work, "vocab.txt")
    write_vocabulary(tokens, vocab)
    config = DataConfig(seq_len=SEQ_LEN)
    beam_options = [f"--direct_num_workers={args.workers}", "--direct_running_mode=multi_processing", "--default_sdk_harness_log_level=WARNING"]
    print(f"corpus: {len(files)} files, {megabytes:.1f} MB; vocabulary {len(tokens)} tokens; rows {SEQ_LEN}; {os.cpu_count()} CPUs")

    single, single_s = timed(prepare, files, vocab, os.path.join(work, "single"), config)
    print(f"single process:        {megabytes / single_s:6.2f} MB/s ({single_s:.1f} s)")

    one_document = os.path.join(work, "one.txt")
    with open(one_document, "w", encoding="utf-8") as f:
        f.write("one short document\n")
    _, startup_s = timed(prepare, [one_document], vocab, os.path.join(work, "beam-startup"), config, runner="DirectRunner", pipeline_options=beam_options)
    beam, beam_s = timed(prepare, files, vocab, os.path.join(work, "beam"), config, runner="DirectRunner", pipeline_options=beam_options)
    same = {k: v for k, v in beam.items() if k != "created"} == {k: v for k, v in single.items() if k != "created"}
    print(f"DirectRunner, {args.workers} workers: {megabytes / beam_s:6.2f} MB/s ({beam_s:.1f} s, of which ~{startup_s:.1f} s starting the "
          f"runner and workers: {megabytes / max(beam_s - startup_s, 1e-9):.2f} MB/s after it); same shards as single process: {same}")

    documents = list(iterate_documents(files))
    hub_tokenizer = keras_hub.tokenizers.WordPieceTokenizer(vocabulary=tokens, lowercase=True)
    texts = tf.data.Dataset.from_tensor_slices(documents).batch(256).map(hub_tokenizer, num_parallel_calls=tf.data.AUTOTUNE)
    _, hub_s = timed(lambda: [None for _ in texts])
    print(f"keras-hub tokenize only: {megabytes / hub_s:6.2f} MB/s ({hub_s:.1f} s)")
    print(f"  {single['source_tokens']:,} tokens in {single['sequences']:,} rows, {len(single['shards'])} shards")


if __name__ == "__main__":
    sys.exit(main())
