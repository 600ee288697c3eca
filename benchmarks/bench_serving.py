"""Serving latency of the exported SavedModel, in-process, next to keras-hub's export of the same size.

    python benchmarks/bench_serving.py [--preset tiny] [--sequence-length 128] [--iterations 50]

Four SavedModels of one encoder size (the "tiny" preset: 2 layers, hidden 128, 2 heads, 512 wide
feed-forward; BERT-tiny), the same vocabulary, random weights, loaded with `tf.saved_model.load` and
called through their signatures, the way TF Serving calls them (minus RPC):

  keras-mlm text   `fill_mask_text`: strings in; tokenize, pack, find masks, top-5 tokens out
  keras-mlm ids    `fill_mask`: token_ids + padding_mask in; top-5 ids and probabilities out
  keras-hub ids    `BertMaskedLM.export()` (Keras' Model.export; its `serve` endpoint): token_ids,
                   segment_ids, padding_mask, mask_positions in; logits (batch, masks, vocab) out
  keras-hub text   keras-hub has no text export: its BertTokenizer + MultiSegmentPacker + the same
                   BertMaskedLM, assembled here in a keras.export.ExportArchive; logits out

Each text has one [MASK]. Latency per call, after 5 warm-up calls, p50 and p99 over --iterations
calls (with 50 calls p99 is close to the maximum), the variants' calls interleaved. The serving
check of each graph is printed too: keras-hub's packer needs TFText>RoundRobinTrim, which TF Serving
before 2.20 lacks.
Vocabulary: tinyshakespeare's most frequent words (+ letters and '##' letters), texts: its lines.
"""

import argparse
import collections
import os
import re
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from keras_mlm.tokenizers.vocab import SPECIAL_TOKENS, SUFFIX_INDICATOR

CORPUS = Path(__file__).resolve().parents[1] / ".." / "shared" / "corpora" / "tinyshakespeare" / "input.txt"


def vocabulary_and_texts(size, count, seed):
    """A word-level vocabulary of about `size` tokens and `count` texts with one [MASK] each."""
    if CORPUS.is_file():
        lines = [l.strip() for l in CORPUS.read_text(encoding="utf-8").splitlines() if 5 <= len(l.split()) <= 14]
    else:  # synthetic fallback, so the benchmark runs anywhere
        rng = np.random.default_rng(seed)
        lines = [" ".join(f"w{i}" for i in rng.integers(0, size, 10)) for _ in range(2000)]
    counts = collections.Counter(w for l in lines for w in re.findall(r"[a-z0-9]+", l.lower()))
    letters = "abcdefghijklmnopqrstuvwxyz0123456789"
    pieces = list(letters) + [SUFFIX_INDICATOR + c for c in letters] + list(".,;:!?'-&$")
    words = [w for w, _ in counts.most_common(size) if w not in pieces][: size - len(SPECIAL_TOKENS) - len(pieces)]
    tokens = list(SPECIAL_TOKENS) + pieces + words
    rng = np.random.default_rng(seed)
    texts = []
    for line in (lines[i] for i in rng.choice(len(lines), count, replace=False)):
        w = line.split()
        w[rng.integers(len(w))] = "[MASK]"
        texts.append(" ".join(w))
    return tokens, texts


def latencies(fns, iterations):
    """{name: (p50 ms, p99 ms)}; calls are interleaved (one of each per round) so that a busy, shared
    machine slows every variant alike."""
    times = {name: [] for name in fns}
    for name, fn in fns.items():
        for _ in range(5):  # warm up
            fn()
    for _ in range(iterations):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: (np.percentile(t, 50) * 1e3, np.percentile(t, 99) * 1e3) for name, t in times.items()}


def keras_hub_models(tokens, preset, sequence_length, directory):
    """keras-hub's BertMaskedLM of the same size: Model.export() (ids) and a text archive built here."""
    import keras
    import keras_hub

    from keras_mlm.models.presets import PRESETS

    size = PRESETS[preset]
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(tokens), num_layers=size["num_layers"], num_heads=size["num_heads"],
        hidden_dim=size["hidden_dim"], intermediate_dim=size["intermediate_dim"], max_sequence_length=sequence_length,
    )
    masked_lm = keras_hub.models.BertMaskedLM(backbone=backbone, preprocessor=None)
    ids_path = os.path.join(directory, "keras_hub_ids")
    masked_lm.export(ids_path, verbose=False)

    tokenizer = keras_hub.models.BertTokenizer(vocabulary=tokens, lowercase=True, special_tokens_in_strings=True)
    packer = keras_hub.layers.MultiSegmentPacker(
        sequence_length=sequence_length, start_value=tokenizer.cls_token_id, end_value=tokenizer.sep_token_id,
        pad_value=tokenizer.pad_token_id,
    )
    mask_id = tokenizer.mask_token_id

    def fill_mask_text(texts):
        token_ids, segment_ids = packer(tokenizer(texts))  # (batch, seq)
        positions = tf.cast(tf.argmax(tf.cast(token_ids == mask_id, tf.int32), axis=1), tf.int32)[:, None]  # first mask
        x = {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": token_ids != tokenizer.pad_token_id,
             "mask_positions": positions}
        return {"logits": masked_lm(x, training=False)}

    archive = keras.export.ExportArchive()
    archive.track(masked_lm)
    archive.add_endpoint("fill_mask_text", fill_mask_text, input_signature=[tf.TensorSpec([None], tf.string, name="texts")])
    text_path = os.path.join(directory, "keras_hub_text")
    archive.write_out(text_path, verbose=False)
    return ids_path, text_path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--sequence-length", type=int, default=128)
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import keras

    from keras_mlm.export import export_model, serving_ops
    from keras_mlm.export.text_inputs import TextPacker
    from keras_mlm.models import EncoderConfig, build_masked_lm

    tokens, texts = vocabulary_and_texts(args.vocab_size, 32, args.seed)
    keras.utils.set_random_seed(args.seed)
    model = build_masked_lm(EncoderConfig.from_preset(args.preset, len(tokens), max_sequence_length=args.sequence_length))
    directory = tempfile.mkdtemp(prefix="bench_serving_")
    ours = export_model(model, tokens, args.sequence_length, "bench", to=directory, lowercase=True)
    hub_ids_path, hub_text_path = keras_hub_models(tokens, args.preset, args.sequence_length, directory)

    print(f"preset {args.preset}, vocabulary {len(tokens)}, sequence length {args.sequence_length}, one [MASK] per text, "
          f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs")
    print(ours.check.report())
    hub_ops = serving_ops.signature_custom_ops(hub_text_path)
    for version in ("2.18", "2.20"):
        check = serving_ops.check_serving({"keras-hub fill_mask_text": hub_ops["fill_mask_text"]}, version)
        print(check.report())

    mlm, hub_ids, hub_text = (tf.saved_model.load(p) for p in (ours.path, hub_ids_path, hub_text_path))
    token_ids = tf.function(TextPacker(tokens, args.sequence_length, lowercase=True))(tf.constant(texts)).numpy()
    first_mask = np.argmax(token_ids == 4, axis=1).astype(np.int32)[:, None]

    def variants(batch):
        t, ids = tf.constant(texts[:batch]), tf.constant(token_ids[:batch])
        mask = tf.cast(ids != 0, tf.int32)
        hub_inputs = {"token_ids": ids, "segment_ids": tf.zeros_like(ids), "padding_mask": mask,
                      "mask_positions": tf.constant(first_mask[:batch])}
        return {
            "keras-mlm text (fill_mask_text)": lambda: mlm.signatures["fill_mask_text"](texts=t),
            "keras-mlm ids  (fill_mask)": lambda: mlm.signatures["fill_mask"](token_ids=ids, padding_mask=mask),
            "keras-hub ids  (BertMaskedLM.export serve)": lambda: hub_ids.signatures["serving_default"](**hub_inputs),
            "keras-hub text (tokenizer+packer, assembled)": lambda: hub_text.signatures["fill_mask_text"](texts=t),
        }

    print(f"\n{'signature':<46} {'batch':>5} {'p50 ms':>8} {'p99 ms':>8}")
    for batch in (1, 32):
        for name, (p50, p99) in latencies(variants(batch), args.iterations).items():
            print(f"{name:<46} {batch:>5} {p50:>8.2f} {p99:>8.2f}")


if __name__ == "__main__":
    main()
