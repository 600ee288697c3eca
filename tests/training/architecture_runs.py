"""One architecture's distribution, precision and resume runs, in a fresh process (2 logical CPUs).

    python tests/training/architecture_runs.py ARCHITECTURE CORPUS_DIR OUT_DIR [--runs two,bf16,resumed]

Logical CPU devices must be configured before TensorFlow starts, so the runs of one architecture
share one process, which splits the CPU first. Each run is a tiny `pretrain` of the six-sentence
corpus of tiny_run.py (global batch 8, 6 steps, a checkpoint every 3, clipping on from step 1):

    one      one device, float32, uninterrupted (the reference; always run)
    two      MirroredStrategy over 2 logical CPUs, float32, interrupted right after the step-3
             backup and resumed (as tiny_run.py's `interrupt_at`)
    bf16     one device, mixed_bfloat16, uninterrupted
    resumed  one device, float32, interrupted after the step-3 backup and resumed

Prints one JSON line: each run's summary numbers, dtypes and wall time, and the comparisons the
tests assert on: the largest weight difference of each run from `one`, and how far `one` moved over
steps 4-6 (what a resume that lost those steps would be off by).
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tiny_run.py beside this file

from tiny_run import SEQ_LEN, TINY_MODEL, load_checkpoint_weights, max_difference, weights_of  # noqa: E402

# Model fields beyond TINY_MODEL (1 layer, 32 wide, no dropout) so each architecture's own parts are
# in the run: ALBERT's factorised embedding and one block shared by 2 layers; ELECTRA's embedding
# projection (16 -> 32; its generator is then 8 wide, 1 head). An architecture not named here runs
# with TINY_MODEL alone.
MODEL_EXTRAS = {
    "albert": {"num_layers": 2, "embedding_dim": 16},
    "electra": {"embedding_dim": 16},
}
RUNS = {
    "one": {"strategy": "one-device", "precision": "float32"},
    "two": {"strategy": "mirrored", "cpu_devices": 2, "precision": "float32", "interrupt_at": 3},
    "bf16": {"strategy": "one-device", "precision": "mixed_bfloat16"},
    "resumed": {"strategy": "one-device", "precision": "float32", "interrupt_at": 3},
}
# No fill-mask samples or illustrations: they read the model, they do not train it.
TRAINING = {"steps": 6, "batch_size": 8, "checkpoint_every": 3, "log_every": 3, "sample_every": 1000, "sample_sentences": [],
            "learning_rate": 1e-2, "warmup_fraction": 0.0, "seed": 0}
CPU_DEVICES = 2
BPE_SIZE = 300  # bytes, specials and merges: the corpus's 20 words each become one piece


def vocabulary_for(architecture, corpus_dir, out_dir):
    """The vocabulary path for `architecture`: tiny_run.py's WordPiece list where the architecture
    accepts WordPiece, else a byte-level BPE learnt from the corpus (RoBERTa's kind)."""
    from keras_mlm.training.run_config import config_class

    kinds = getattr(config_class(architecture), "VOCABULARY_KINDS", ("wordpiece",))
    if "wordpiece" in kinds:
        return os.path.join(corpus_dir, "vocab.txt")
    from keras_mlm.tokenizers.learners import train_bpe

    assert "bpe" in kinds, f"{architecture} accepts {kinds}: teach vocabulary_for that kind"
    return train_bpe([os.path.join(corpus_dir, "corpus.txt")], BPE_SIZE).save(os.path.join(out_dir, "bpe"))


def architecture_config(architecture, **training):
    from keras_mlm.training.run_config import build_run_config

    model = {**TINY_MODEL, **MODEL_EXTRAS.get(architecture, {})}
    return build_run_config({"architecture": architecture, "preset": "tiny", "model": model, "data": {"seq_len": SEQ_LEN},
                             "training": {**TRAINING, **training}})


def float_output_dtypes(model):
    """The dtypes of the model's floating-point outputs (logits) on a batch like the one pretrain builds it with."""
    import tensorflow as tf

    x = {
        "token_ids": tf.zeros((2, SEQ_LEN), tf.int32),
        "segment_ids": tf.zeros((2, SEQ_LEN), tf.int32),
        "padding_mask": tf.ones((2, SEQ_LEN), tf.bool),
        "mask_positions": tf.zeros((2, 2), tf.int32),
    }
    return sorted({t.dtype.name for t in tf.nest.flatten(model(x, training=False)) if t.dtype.is_floating})


def run(architecture, shards, vocab, run_dir, interrupt_at=None, **training):
    """Trains one run in this process; returns (weights, summary without the model, with dtypes)."""
    import keras

    from keras_mlm.training import callbacks
    from keras_mlm.training.pretrain import pretrain

    config = architecture_config(architecture, **training)
    if interrupt_at:
        planned = callbacks.StopAtStep
        callbacks.StopAtStep = lambda steps: planned(interrupt_at)  # the interruption
        try:
            pretrain(config, shards, vocab, run_dir, verbose=0)
        finally:
            callbacks.StopAtStep = planned
    summary = pretrain(config, shards, vocab, run_dir, verbose=0)
    model = summary.pop("model")
    summary = {k: v for k, v in summary.items() if isinstance(v, (int, float, str, type(None)))}
    summary.update(
        replicas=model.distribute_strategy.num_replicas_in_sync,
        compute_dtype=model.compute_dtype,
        variable_dtypes=sorted({v.dtype for v in model.trainable_variables}),
        output_dtypes=float_output_dtypes(model),
    )
    weights = weights_of(model)
    keras.mixed_precision.set_global_policy("float32")  # pretrain set the run's policy globally
    return weights, summary


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("architecture")
    parser.add_argument("corpus_dir", help="tiny_run.write_corpus's folder (corpus.txt, vocab.txt)")
    parser.add_argument("out_dir")
    parser.add_argument("--runs", default="two,bf16", help=f"comma-separated runs beside 'one': of {', '.join(RUNS)}")
    args = parser.parse_args(argv)
    from keras_mlm.training.strategy import split_cpu

    split_cpu(CPU_DEVICES)  # before TensorFlow starts: every run of this process sees 2 logical CPUs
    from keras_mlm.data.prepare import DataConfig, prepare

    # The corpus prepared once, for every run of the process.
    vocab = vocabulary_for(args.architecture, args.corpus_dir, args.out_dir)
    shards = os.path.join(args.out_dir, "shards")
    prepare([os.path.join(args.corpus_dir, "corpus.txt")], vocab, shards, DataConfig(seq_len=SEQ_LEN), overwrite=True)
    names = ["one"] + [n for n in args.runs.split(",") if n and n != "one"]
    weights, result = {}, {"runs": {}}
    for name in names:
        started = time.monotonic()
        weights[name], result["runs"][name] = run(args.architecture, shards, vocab, os.path.join(args.out_dir, name), **RUNS[name])
        result["runs"][name]["wall_seconds"] = round(time.monotonic() - started, 1)  # an interrupted first part included
    for name in names[1:]:
        result[f"max_difference_{name}"] = max_difference(weights["one"], weights[name])
    step_3 = load_checkpoint_weights(os.path.join(args.out_dir, "one", "checkpoints", "ckpt-00000003.keras"))
    result["moved_after_step_3"] = max_difference(step_3, weights["one"])
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
    os._exit(0)  # skips TensorFlow's slow interpreter teardown (seconds); the result is printed and flushed
