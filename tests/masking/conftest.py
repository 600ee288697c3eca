"""Shared fixtures for the masking tests: a tiny literal vocabulary and real text as packed rows."""

import re
from pathlib import Path

import numpy as np
import pytest

from keras_mlm.tokenizers.vocab import SPECIAL_TOKENS, SUFFIX_INDICATOR

CORPORA = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpora"
SEQUENCE_LENGTH = 128
PIECE_LENGTH = 3  # "citizen" -> "cit", "##ize", "##n": real words, several pieces each

TINY_VOCABULARY = list(SPECIAL_TOKENS) + [
    "the", "cat", "sat", "on", "mat", "dog", "ran", "##s", "##ed", "##ing",
    "a", "big", "red", "##dy", "hat",
]  # fmt: skip
PAD, UNK, CLS, SEP, MASK = range(5)


def pieces_of(word):
    """Splits a word into PIECE_LENGTH-character pieces, continuation pieces prefixed with '##'."""
    chunks = [word[i : i + PIECE_LENGTH] for i in range(0, len(word), PIECE_LENGTH)]
    return [chunks[0]] + [SUFFIX_INDICATOR + c for c in chunks[1:]]


def pack(stream, sequence_length):
    """Token-id stream -> rows [CLS] + ids + [SEP], the last one padded with [PAD]."""
    body = sequence_length - 2
    rows = []
    for start in range(0, len(stream), body):
        chunk = stream[start : start + body]
        row = [CLS] + chunk + [SEP]
        rows.append(row + [PAD] * (sequence_length - len(row)))
    return np.array(rows, np.int32)


@pytest.fixture(scope="session")
def tiny_vocabulary():
    """A literal 20-token vocabulary for hand-checked tests: specials 0-4, words 5-19, '##' pieces 12, 13, 14, 18."""
    return list(TINY_VOCABULARY)


def load_shakespeare(path=CORPORA / "tinyshakespeare" / "input.txt"):
    """(vocabulary, rows): tinyshakespeare, lowercased, words split into 3-character pieces, paragraphs
    separated by [SEP], packed into 128-token rows (about 2,800 rows, 350k tokens)."""
    paragraphs = [p for p in path.read_text(encoding="utf-8").lower().split("\n\n") if p.strip()]
    words = [re.findall(r"\w+|[^\w\s]", p) for p in paragraphs]
    pieces = sorted({piece for paragraph in words for word in paragraph for piece in pieces_of(word)})
    vocabulary = list(SPECIAL_TOKENS) + pieces
    index = {token: i for i, token in enumerate(vocabulary)}
    stream = []
    for paragraph in words:
        stream.extend(index[piece] for word in paragraph for piece in pieces_of(word))
        stream.append(SEP)
    return vocabulary, pack(stream, SEQUENCE_LENGTH)


@pytest.fixture(scope="session")
def shakespeare():
    """(vocabulary, rows) of `load_shakespeare`; skips when the shared corpora are absent."""
    path = CORPORA / "tinyshakespeare" / "input.txt"
    if not path.exists():
        pytest.skip(f"corpus not found: {path}")
    return load_shakespeare(path)
