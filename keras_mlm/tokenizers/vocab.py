"""WordPiece vocabularies: train one from text, load and validate one from a file.

The learner is keras-hub's `compute_word_piece_vocabulary` (tensorflow-text underneath); this module
only fixes the special tokens, makes the result deterministic and writes it atomically.
"""

import hashlib

from keras_mlm import fileio
from keras_mlm.errors import UserInputError

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK)
"""Specials come first and in this order in every vocabulary we train: [PAD]=0 ... [MASK]=4."""

SUFFIX_INDICATOR = "##"


def load_vocabulary(path):
    """Reads a vocabulary file (one token per line) and checks that every special token is there."""
    try:
        with fileio.open(path, encoding="utf-8") as f:
            tokens = [line.rstrip("\n") for line in f]
    except FileNotFoundError:
        raise UserInputError(f"{path}: vocabulary file not found") from None
    except UnicodeDecodeError as e:
        raise UserInputError(f"{path}: vocabulary is not UTF-8 (byte offset {e.start})") from None
    except fileio.read_errors(path) as e:
        raise UserInputError(f"{path}: cannot read vocabulary ({getattr(e, 'strerror', None) or getattr(e, 'message', e)})") from None
    while tokens and tokens[-1] == "":
        tokens.pop()
    missing = [t for t in SPECIAL_TOKENS if t not in tokens]
    if missing:
        raise UserInputError(
            f"{path}: vocabulary lacks required special token(s) {', '.join(missing)} "
            f"(required: {', '.join(SPECIAL_TOKENS)})"
        )
    if tokens.index(PAD) != 0:
        raise UserInputError(f"{path}: {PAD} must be the first token (id 0), found at line {tokens.index(PAD) + 1}")
    seen = set()
    for line_number, token in enumerate(tokens, start=1):
        if token in seen:
            raise UserInputError(f"{path}:{line_number}: duplicate token {token!r}")
        if not token:
            raise UserInputError(f"{path}:{line_number}: empty token")
        seen.add(token)
    return tokens


def vocabulary_sha256(tokens):
    """A fingerprint of a vocabulary, stored in manifests so shards and models can be matched."""
    return hashlib.sha256("\n".join(tokens).encode("utf-8")).hexdigest()


def special_token_ids(tokens):
    """Ids of the special tokens ([PAD], [UNK], [CLS], [SEP], [MASK] and any other `[...]` token)."""
    return sorted(
        i for i, t in enumerate(tokens) if t in SPECIAL_TOKENS or (t.startswith("[") and t.endswith("]") and len(t) > 2)
    )


def infer_lowercase(tokens):
    """A vocabulary trained on lowercased text has no upper-case letters outside its special tokens."""
    return not any(c.isupper() for t in tokens if not (t.startswith("[") and t.endswith("]")) for c in t)


def write_vocabulary(tokens, path):
    """Writes one token per line, atomically (temporary file + rename), on any filesystem (`fileio`)."""
    fileio.write_atomic(path, "\n".join(tokens) + "\n")


def train_vocabulary(inputs, vocabulary_size, lowercase=True, strip_accents=False):
    """Learns a WordPiece vocabulary from corpus files/folders with keras-hub's learner.

    The specials come first in the fixed order of `SPECIAL_TOKENS`. A small corpus can yield fewer
    tokens than asked for (the learner stops when no more pieces are worth adding); the caller reports
    the size it got. Deterministic: the same files give the same vocabulary.
    """
    import keras_hub
    import tensorflow as tf

    from keras_mlm.data.readers import iterate_documents

    if vocabulary_size <= len(SPECIAL_TOKENS):
        raise UserInputError(f"--vocab-size must be larger than {len(SPECIAL_TOKENS)} (the special tokens), got {vocabulary_size}")
    documents = list(iterate_documents(inputs))  # reading validates every file before the learner runs
    if not any(d.strip() for d in documents):
        raise UserInputError(f"empty corpus: no text in {', '.join(map(str, inputs))}")
    # keras-hub treats a Python list as file paths, so the text goes in as a dataset of strings.
    data = tf.data.Dataset.from_tensor_slices(documents).batch(1024)
    tokens = keras_hub.tokenizers.compute_word_piece_vocabulary(
        data,
        vocabulary_size,
        lowercase=lowercase,
        strip_accents=strip_accents,
        suffix_indicator=SUFFIX_INDICATOR,
        reserved_tokens=list(SPECIAL_TOKENS),
    )
    return [t.decode("utf-8") if isinstance(t, bytes) else t for t in tokens]
