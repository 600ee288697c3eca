"""A tiny encoder pre-trained once per session on real task text, for the recipes' real-data tests.

Pre-training (WordPiece vocabulary, then a 2-layer, 64-wide masked LM) runs on the SST-2 training
sentences and the WNUT-17 training tokens: unlabelled text of the tasks' own domains, as
domain-adaptive pre-training would use. Nothing of the dev or test splits is seen.
"""

import os

import pytest

PRETRAIN_STEPS = 400
TINY_ENCODER = {"num_layers": 2, "hidden_dim": 64, "num_heads": 2, "intermediate_dim": 128, "dropout": 0.0}


def _task_text(corpora, path):
    """One document of SST-2 training sentences and WNUT-17 training sentences, a sentence a line."""
    lines = [line.split("\t")[0] for line in (corpora / "tasks" / "sst2" / "train.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    sentence = []
    for line in (corpora / "tasks" / "wnut17" / "train.conll").read_text(encoding="utf-8").splitlines():
        token = line.split("\t")[0].strip()
        if token:
            sentence.append(token)
        elif sentence:
            lines.append(" ".join(sentence))
            sentence = []
    path.write_text("\n\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def pretrained_tiny_run(corpora, tmp_path_factory):
    """A run folder (model.keras, vocab.txt, config.yaml) of a tiny encoder pre-trained on task text."""
    from keras_mlm.tokenizers import train_vocabulary, write_vocabulary
    from keras_mlm.training.pretrain import pretrain
    from keras_mlm.training.run_config import build_run_config

    root = tmp_path_factory.mktemp("pretrained")
    text = _task_text(corpora, root / "task_text.txt")
    tokens = train_vocabulary([str(text)], 3000)
    write_vocabulary(tokens, str(root / "vocab.txt"))
    config = build_run_config({
        "preset": "tiny", "model": TINY_ENCODER, "data": {"seq_len": 64},
        "training": {"steps": PRETRAIN_STEPS, "batch_size": 32, "learning_rate": 2e-3, "checkpoint_every": PRETRAIN_STEPS,
                     "log_every": 100, "sample_every": 10_000, "warmup_fraction": 0.05, "seed": 0, "precision": "float32"},
    })
    pretrain(config, [str(text)], str(root / "vocab.txt"), str(root / "run"), verbose=0)
    assert os.path.isfile(root / "run" / "model.keras")
    return root / "run"
