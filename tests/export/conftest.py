"""A tiny run folder exported once per session, and the texts every export test feeds it.

The vocabulary is built from the texts themselves (letters, '##' letters and 3-letter pieces of
their words), so tokenization exercises word pieces, lowercasing, punctuation splitting and [UNK]
(digits and accented letters are not in it). Real text comes from the shared corpora when present.
"""

import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from keras_mlm.tokenizers.vocab import SPECIAL_TOKENS, SUFFIX_INDICATOR

CORPORA = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpora"
SEQUENCE_LENGTH = 32
MODEL_NAME = "mlm"

LITERAL_TEXTS = [
    "Paris is the [MASK] of France.",
    "the cat [MASK] on the mat",
    "[MASK] cat sat on the [MASK]",
    "The quick brown [MASK] jumps over the lazy dog!",
    "Café au lait, [MASK] 42 times.",  # accented letter and digits -> [UNK]
    "Is it [MASK]?  Yes:it IS.",
    "[MASK]",
    "[CLS] a [MASK] b [SEP]",  # special tokens written in the text are special tokens
    "東京 is the [MASK] of japan",  # CJK characters split one by one, then [UNK]
]


def corpus_texts(count=16, seed=0):
    """Short lines of tinyshakespeare and wikitext-2 with one or two words replaced by [MASK]."""
    lines = []
    for path, skip in ((CORPORA / "tinyshakespeare" / "input.txt", 0), (CORPORA / "wikitext-2" / "valid.txt", 0)):
        if path.is_file():
            text = path.read_text(encoding="utf-8").splitlines()[:4000]
            lines.extend(l.strip() for l in text if 4 <= len(l.split()) <= 12 and not l.strip().startswith("="))
    rng = np.random.default_rng(seed)
    picked = [lines[i] for i in sorted(rng.choice(len(lines), size=min(count, len(lines)), replace=False))] if lines else []
    texts = []
    for n, line in enumerate(picked):
        words = line.split()
        for i in sorted(rng.choice(len(words), size=1 + n % 2, replace=False)):
            words[i] = "[MASK]"
        texts.append(" ".join(words))
    return texts


def pieces_vocabulary(texts):
    """Specials, then every letter and punctuation mark, '##' + letter, and 3-letter word pieces."""
    words = {w for t in texts for w in re.findall(r"[a-z]+", t.lower().replace("[mask]", " "))}
    pieces = set("abcdefghijklmnopqrstuvwxyz.,!?:;'-") | {SUFFIX_INDICATOR + c for c in "abcdefghijklmnopqrstuvwxyz"}
    for word in words:
        pieces.add(word[:3])
        pieces.update(SUFFIX_INDICATOR + word[i : i + 3] for i in range(3, len(word), 3))
    return list(SPECIAL_TOKENS) + sorted(pieces)


@pytest.fixture(scope="session")
def texts():
    """Texts with at least one [MASK] that fit the model's 32 tokens."""
    return LITERAL_TEXTS + corpus_texts()


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory, texts):
    """RUN_DIR with model.keras (1 layer, hidden 32, seeded), vocab.txt and config.yaml."""
    import keras

    from keras_mlm.models import EncoderConfig, build_masked_lm
    from keras_mlm.tokenizers.vocab import write_vocabulary

    tokens = pieces_vocabulary(texts)
    keras.utils.set_random_seed(0)
    config = EncoderConfig(vocabulary_size=len(tokens), num_layers=1, hidden_dim=32, num_heads=2, intermediate_dim=64, max_sequence_length=64)
    model = build_masked_lm(config)
    run = tmp_path_factory.mktemp("run")
    model.save(run / "model.keras")
    write_vocabulary(tokens, run / "vocab.txt")
    (run / "config.yaml").write_text(yaml.safe_dump({"data": {"seq_len": SEQUENCE_LENGTH, "lowercase": True}}))
    return run


@pytest.fixture(scope="session")
def loaded_run(run_dir):
    from keras_mlm.inference.run import load_run

    return load_run(str(run_dir))


@pytest.fixture(scope="session")
def saved_models(tmp_path_factory):
    return tmp_path_factory.mktemp("saved_models")


@pytest.fixture(scope="session")
def exported(run_dir, saved_models):
    """The run exported with every signature as saved_models/mlm/1 (the first export of the session)."""
    from keras_mlm.export import export_run

    return export_run(str(run_dir), MODEL_NAME, to=str(saved_models))
