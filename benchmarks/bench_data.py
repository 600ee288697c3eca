"""Data path throughput, each number next to keras-hub's on the same text in the same run.

    python benchmarks/bench_data.py [--corpus ../shared/corpora/gutenberg] [--megabytes 8]

1. `prepare` (tokenize + pack + write shards) in MB of text per second, next to keras-hub's
   WordPieceTokenizer alone over the same documents in batches (no packing, no writing).
2. Masked rows per second out of `pretraining_dataset`, next to keras-hub's WordPieceTokenizer +
   MaskedLMMaskGenerator pipeline (tokenize, pad to rows, mask per batch) on the same text.
3. Rows per second that one training step of the tiny preset consumes, and the pipeline's headroom
   (target: the pipeline delivers at least 20x what training consumes).
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

from keras_mlm.data.dataset import pretraining_dataset
from keras_mlm.data.prepare import DataConfig, prepare
from keras_mlm.data.readers import expand_inputs, iterate_documents
from keras_mlm.masking import MLMMasker
from keras_mlm.tokenizers import make_tokenizer, train_vocabulary, write_vocabulary

SEQ_LEN, BATCH = 128, 32


def pick_files(corpus, megabytes):
    files, total = [], 0
    for path in expand_inputs([corpus]):
        files.append(path)
        total += os.path.getsize(path)
        if total >= megabytes * 1e6:
            break
    return files, total


def rows_per_second(dataset, batches):
    iterator = iter(dataset)
    next(iterator)  # warm-up: tracing and first fill
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * BATCH / (time.perf_counter() - start)


def main():
    default = Path(__file__).resolve().parents[1] / ".." / "shared" / "corpora" / "gutenberg"
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", default=str(default))
    parser.add_argument("--megabytes", type=float, default=8)
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--batches", type=int, default=300)
    args = parser.parse_args()

    files, text_bytes = pick_files(args.corpus, args.megabytes)
    work = tempfile.mkdtemp(prefix="bench-data-")
    tokens = train_vocabulary(files, args.vocab_size)
    write_vocabulary(tokens, os.path.join(work, "vocab.txt"))
    print(f"corpus: {len(files)} files, {text_bytes / 1e6:.1f} MB; vocabulary {len(tokens)} tokens; rows {SEQ_LEN}, batch {BATCH}")

    # 1. prepare vs keras-hub tokenization alone
    start = time.perf_counter()
    manifest = prepare(files, tokens, os.path.join(work, "shards"), DataConfig(seq_len=SEQ_LEN))
    ours = text_bytes / 1e6 / (time.perf_counter() - start)
    documents = list(iterate_documents(files))
    hub_tokenizer = keras_hub.tokenizers.WordPieceTokenizer(vocabulary=tokens, lowercase=True)
    start = time.perf_counter()
    for _ in tf.data.Dataset.from_tensor_slices(documents).batch(256).map(hub_tokenizer, num_parallel_calls=tf.data.AUTOTUNE):
        pass
    hub = text_bytes / 1e6 / (time.perf_counter() - start)
    print(f"prepare (tokenize+pack+write): {ours:6.2f} MB/s | keras-hub tokenize only: {hub:6.2f} MB/s | ratio {ours / hub:.2f}x")
    print(f"  {manifest['source_tokens']:,} tokens in {manifest['sequences']:,} rows, padding {manifest['padding_fraction']:.5f}")

    # 2. masked rows out of the dataset vs keras-hub's tokenizer + masker pipeline
    masker = MLMMasker.from_vocabulary(tokens, SEQ_LEN, seed=0)
    ours_rows = rows_per_second(pretraining_dataset(os.path.join(work, "shards"), BATCH, masker), args.batches)
    hub_packer = keras_hub.layers.StartEndPacker(sequence_length=SEQ_LEN, start_value=2, end_value=3, pad_value=0)
    hub_masker = keras_hub.layers.MaskedLMMaskGenerator(
        vocabulary_size=len(tokens), mask_selection_rate=0.15, mask_token_id=4, mask_selection_length=masker.max_selections, unselectable_token_ids=[0, 1, 2, 3, 4]
    )
    hub_ds = (
        tf.data.Dataset.from_tensor_slices(documents)
        .repeat()
        .batch(BATCH, drop_remainder=True)
        .map(lambda t: hub_masker(hub_packer(hub_tokenizer(t))), num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
    hub_rows = rows_per_second(hub_ds, args.batches)
    print(f"masked rows/s: ours {ours_rows:,.0f} | keras-hub tokenize+pack+mask {hub_rows:,.0f} | ratio {ours_rows / hub_rows:.2f}x")
    print(f"  ours = {ours_rows * SEQ_LEN / 1e6:.2f}M tokens/s out of the dataset")

    # 3. headroom over a training step of the tiny preset
    from keras_mlm.models import EncoderConfig, build_masked_lm
    from keras_mlm.training.config import TrainingConfig
    from keras_mlm.training.pretrain import compile_masked_lm

    model = compile_masked_lm(build_masked_lm(EncoderConfig.from_preset("tiny", len(tokens))), TrainingConfig(steps=100))
    batches = list(pretraining_dataset(os.path.join(work, "shards"), BATCH, masker).take(12))
    model.train_on_batch(*batches[0])
    start = time.perf_counter()
    for x, y, w in batches[1:]:
        model.train_on_batch(x, y, w)
    train_rows = (len(batches) - 1) * BATCH / (time.perf_counter() - start)
    print(f"tiny training consumes {train_rows:,.0f} rows/s; the pipeline delivers {ours_rows / train_rows:.0f}x that (target >= 20x)")


if __name__ == "__main__":
    sys.exit(main())
