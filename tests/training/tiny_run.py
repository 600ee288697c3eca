"""A tiny pre-training run for the distributed, fault and precision tests, in-process or as a script.

    python tests/training/tiny_run.py CORPUS_DIR RUN_DIR WEIGHTS.npz --training '{"strategy": "mirrored", "cpu_devices": 2}'

The script form exists because logical CPU devices and MultiWorkerMirroredStrategy must be set up
before TensorFlow starts, so such runs need a fresh process. It trains, then saves the trained
weights (one array per variable, in `model.weights` order) and the run summary to WEIGHTS.npz;
"{task}" in WEIGHTS is replaced by this process's task index in TF_CONFIG (0 without one).
"""

import argparse
import json
import os
import sys

import numpy as np

WORDS = ["the", "cat", "dog", "sat", "on", "a", "mat", "log", "ran", "to", "park", "red", "blue", "big", "small", "bird", "sang", "tree", "in", "sun"]
SENTENCES = [
    "the cat sat on a mat",
    "the dog ran to the park",
    "the bird sang in a tree",
    "the big dog sat on a log",
    "the small cat ran to the park",
    "the red bird sang in the sun",
]
TINY_MODEL = {"num_layers": 1, "hidden_dim": 32, "num_heads": 2, "intermediate_dim": 64, "dropout": 0.0}
SEQ_LEN = 16


def write_corpus(root, documents=240, seed=0):
    """vocab.txt (specials + 20 words) and corpus.txt (`documents` sentences, one per document) in `root`."""
    from keras_mlm.tokenizers import SPECIAL_TOKENS, write_vocabulary

    os.makedirs(root, exist_ok=True)
    write_vocabulary(list(SPECIAL_TOKENS) + WORDS, os.path.join(root, "vocab.txt"))
    order = np.random.default_rng(seed).integers(0, len(SENTENCES), documents)
    with open(os.path.join(root, "corpus.txt"), "w", encoding="utf-8") as f:
        f.write("\n\n".join(SENTENCES[i] for i in order) + "\n")
    return os.path.join(root, "corpus.txt"), os.path.join(root, "vocab.txt")


def tiny_config(architecture=None, model=None, **training):
    """A RunConfig of the 1-layer, 32-wide model on 16-id rows; `training` overrides the defaults,
    `model` adds encoder fields (e.g. ALBERT's embedding_dim)."""
    from keras_mlm.training.run_config import build_run_config

    # float32: the exact-equality tests (resume == uninterrupted, 2 replicas == 1) compare float32 runs;
    # the default, "auto", would pick mixed_bfloat16 on a CPU with native bfloat16.
    defaults = {"steps": 8, "batch_size": 8, "learning_rate": 3e-3, "checkpoint_every": 4, "log_every": 4, "sample_every": 1000, "warmup_fraction": 0.0, "seed": 0, "precision": "float32"}
    defaults.update(training)
    return build_run_config({"architecture": architecture, "preset": "tiny", "model": {**TINY_MODEL, **(model or {})},
                             "data": {"seq_len": SEQ_LEN}, "training": defaults})


def pretrain_flags(**training):
    """`tiny_config(**training)` as `keras-mlm pretrain` flags (all but --data, --vocab and --out)."""
    config = tiny_config(**training).training
    flags = ["--steps", config.steps, "--batch-size", config.batch_size, "--learning-rate", config.learning_rate,
             "--checkpoint-every", config.checkpoint_every, "--log-every", config.log_every, "--sample-every",
             config.sample_every, "--warmup-fraction", config.warmup_fraction, "--seed", config.seed, "--precision", config.precision]  # fmt: skip
    model = [f"--model={k}={v}" for k, v in TINY_MODEL.items()]
    return ["--preset", "tiny", "--seq-len", str(SEQ_LEN), *model, *map(str, flags)]


def weights_of(model):
    return [np.asarray(w) for w in model.get_weights()]


def max_difference(a, b):
    """Largest absolute difference between two lists of weight arrays of the same shapes."""
    assert len(a) == len(b) and all(x.shape == y.shape for x, y in zip(a, b))
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


def load_checkpoint_weights(path):
    """The weights of a `.keras` checkpoint written by a run."""
    import keras

    import keras_mlm.training.pretrain  # noqa: F401  (registers the model, loss, metric and schedule classes)

    return weights_of(keras.saving.load_model(path, compile=False))


def load_weights(path):
    with np.load(path) as saved:
        summary = json.loads(str(saved["summary"]))
        return [saved[f"w{i}"] for i in range(summary["num_weights"])], summary


def run(corpus_dir, run_dir, weights_path, interrupt_at=None, **training):
    """Trains (in this process), writes the weights and summary (with the replica count) to `weights_path`,
    returns (weights, summary); the summary holds the trained model under "model".

    `interrupt_at` (a multiple of checkpoint_every): first run the same command but stop it right
    after the backup of that step, as an interruption would; then rerun it, which resumes.
    """
    from keras_mlm.training import callbacks
    from keras_mlm.training.pretrain import pretrain

    config = tiny_config(**training)
    data, vocab = [os.path.join(corpus_dir, "corpus.txt")], os.path.join(corpus_dir, "vocab.txt")
    if interrupt_at:
        planned = callbacks.StopAtStep
        callbacks.StopAtStep = lambda steps: planned(interrupt_at)  # the interruption
        try:
            pretrain(config, data, vocab, run_dir, verbose=0)
        finally:
            callbacks.StopAtStep = planned
    summary = pretrain(config, data, vocab, run_dir, verbose=0)
    model = summary["model"]
    weights = weights_of(model)
    summary.update(num_weights=len(weights), replicas=model.distribute_strategy.num_replicas_in_sync)
    saved = json.dumps({k: v for k, v in summary.items() if k != "model"})
    np.savez(weights_path, summary=saved, **{f"w{i}": w for i, w in enumerate(weights)})
    return weights, summary


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("corpus_dir")
    parser.add_argument("run_dir")
    parser.add_argument("weights")
    parser.add_argument("--training", default="{}", help="JSON of TrainingConfig overrides")
    parser.add_argument("--also", default=None, metavar="RUN_DIR2:WEIGHTS2:JSON", help="a second run in the same process")
    args = parser.parse_args(argv)
    training = json.loads(args.training)
    task = json.loads(os.environ.get("TF_CONFIG") or "{}").get("task", {}).get("index", 0)
    from keras_mlm.training.strategy import split_cpu

    split_cpu(training.get("cpu_devices", 0))  # before TensorFlow starts
    if args.also:
        run_dir, weights, more = args.also.split(":", 2)
        run(args.corpus_dir, run_dir, weights, **json.loads(more))
    run(args.corpus_dir, args.run_dir, args.weights.format(task=task), **training)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
