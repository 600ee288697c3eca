"""One vocabulary object for the three kinds keras-mlm trains and reads: WordPiece, byte-level BPE, SentencePiece.

    vocabulary = Vocabulary.load("vocab.txt")        # or "bpe-vocab/" or "spm.model"
    vocabulary.kind, vocabulary.tokens, vocabulary.mask_id, vocabulary.lowercase, vocabulary.sha256
    vocabulary.tokenizer()                           # the in-graph tokenizer (a keras-hub layer)
    vocabulary.continuation_ids                      # pieces that continue a word (whole-word masking)

It is loaded once and passed whole; nothing downstream re-derives specials, casing or the digest.

Files, one layout per kind (what `keras-mlm vocab --kind ... --out PATH` writes):

- wordpiece: a text file, one token per line, `[PAD] [UNK] [CLS] [SEP] [MASK]` = ids 0-4 (BERT).
- bpe: a folder holding `vocab.json` (token -> id) and `merges.txt` (RoBERTa's / Hugging Face's files);
  `PATH` may name the folder or its `vocab.json`. Specials have RoBERTa's names in keras-mlm's order,
  `<pad> <unk> <s> </s> <mask>` = ids 0-4 (roles pad, unk, cls, sep, mask): [PAD] is 0 everywhere in keras-mlm.
  Byte-level BPE is cased (RoBERTa); lowercase=False always.
- sentencepiece: a `.model` file (the SentencePiece ModelProto), unigram, ALBERT's specials
  `<pad> <unk> [CLS] [SEP] [MASK]` = ids 0-4. Lower-casing is the model's own normaliser
  (`nmt_nfkc_cf` folds case), so `lowercase` is read from the model, never guessed.

Word boundaries (whole-word and span masking, fill-mask's merging of pieces into words):
wordpiece: a piece starting with `##` continues a word. bpe: a piece starting with `Ġ` (a space) starts a
word; sentencepiece: a piece starting with `▁` starts a word; for both, a piece whose first character
(BPE: first byte) is neither a letter nor a digit (punctuation, `Ċ` newline) also starts one, as BERT's
basic tokenizer makes punctuation a word of its own; a BPE piece starting inside a multi-byte character
continues. Every other non-special piece continues the word before it.
"""

import dataclasses
import functools
import hashlib
import json
import os

import numpy as np

from keras_mlm import fileio
from keras_mlm.errors import UserInputError
from keras_mlm.tokenizers import vocab as wordpiece_lib

KINDS = ("wordpiece", "bpe", "sentencepiece")
ROLES = ("pad", "unk", "cls", "sep", "mask")
SPECIALS = {
    "wordpiece": wordpiece_lib.SPECIAL_TOKENS,
    "bpe": ("<pad>", "<unk>", "<s>", "</s>", "<mask>"),
    "sentencepiece": ("<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"),
}
"""The special tokens of each kind by role (pad, unk, cls, sep, mask); every vocabulary we train has them as ids 0-4."""

BPE_VOCAB, BPE_MERGES = "vocab.json", "merges.txt"
SAVED_NAMES = {"wordpiece": "vocab.txt", "bpe": "vocab-bpe", "sentencepiece": "vocab.model"}
"""The name `Vocabulary.save(directory)` writes (beside shards, in a run folder); `find_saved` looks for them."""

BPE_SPACE, SENTENCEPIECE_SPACE = "Ġ", "▁"


@dataclasses.dataclass(frozen=True, eq=False)
class Vocabulary:
    """A vocabulary of one kind with everything derived from it. Build it with `load`/`from_tokens`."""

    kind: str
    """"wordpiece", "bpe" or "sentencepiece"."""

    tokens: tuple
    """The pieces, id = index."""

    special_ids: dict
    """Role -> id: "pad", "unk", "cls", "sep", "mask"."""

    lowercase: bool
    """Whether text is lower-cased before tokenization (WordPiece: inferred or given; BPE: False;
    SentencePiece: the model's normaliser folds case)."""

    merges: tuple = ()
    """bpe only: the merge rules, "a b" strings in priority order."""

    model_proto: bytes = b""
    """sentencepiece only: the serialized ModelProto."""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise UserInputError(f"vocabulary kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        missing = [r for r in ROLES if r not in self.special_ids]
        if missing:
            raise UserInputError(f"{self.kind} vocabulary lacks special token(s) for {', '.join(missing)}")

    # -- construction -------------------------------------------------------------------------------

    @classmethod
    def from_tokens(cls, tokens, lowercase=None):
        """A WordPiece vocabulary from a list of tokens (`lowercase=None` infers it from the tokens)."""
        tokens = tuple(tokens)
        index = {t: i for i, t in enumerate(tokens)}
        missing = [t for t in wordpiece_lib.SPECIAL_TOKENS if t not in index]
        if missing:
            raise UserInputError(f"vocabulary lacks required special token(s) {', '.join(missing)}")
        lowercase = wordpiece_lib.infer_lowercase(tokens) if lowercase is None else bool(lowercase)
        specials = {role: index[t] for role, t in zip(ROLES, wordpiece_lib.SPECIAL_TOKENS)}
        return cls("wordpiece", tokens, specials, lowercase)

    @classmethod
    def from_bpe(cls, vocabulary, merges, path="vocabulary"):
        """A byte-level BPE vocabulary from a token -> id dict and merge rules ("a b" strings or pairs)."""
        ids = sorted(vocabulary.values())
        if ids != list(range(len(ids))):
            raise UserInputError(f"{path}: BPE ids must be 0 .. {len(ids) - 1} without gaps")
        tokens = [None] * len(ids)
        for token, i in vocabulary.items():
            tokens[i] = token
        specials = _specials_by_role("bpe", tokens, path)
        merges = tuple(" ".join(m) if isinstance(m, (list, tuple)) else m for m in merges)
        return cls("bpe", tuple(tokens), specials, False, merges=merges)

    @classmethod
    def from_sentencepiece(cls, model_proto, path="vocabulary"):
        """A SentencePiece vocabulary from a serialized ModelProto."""
        proto = _parse_sentencepiece(model_proto, path)
        tokens = tuple(p.piece for p in proto.pieces)
        specials = _specials_by_role("sentencepiece", tokens, path)
        lowercase = proto.normalizer_spec.name.endswith("_cf")
        return cls("sentencepiece", tokens, specials, lowercase, model_proto=bytes(model_proto))

    @classmethod
    def load(cls, path, lowercase=None):
        """Reads any kind: a `.model` file is SentencePiece, a folder (or a `vocab.json`) BPE, anything
        else a WordPiece token-per-line file. `lowercase` only applies to WordPiece (None: inferred)."""
        path = os.fspath(path)
        if path.endswith(".model"):
            try:
                with fileio.open(path, "rb") as f:
                    return cls.from_sentencepiece(f.read(), path)
            except FileNotFoundError:
                raise UserInputError(f"{path}: vocabulary file not found") from None
        if fileio.isdir(path) or os.path.basename(path) == BPE_VOCAB:
            folder = path if fileio.isdir(path) else os.path.dirname(path)
            return cls.from_bpe(*_read_bpe(folder), path)
        return cls.from_tokens(wordpiece_lib.load_vocabulary(path), lowercase)

    def save(self, path):
        """Writes the vocabulary in its kind's layout at `path` (file, folder or `.model` file); returns path."""
        path = os.fspath(path)
        if self.kind == "wordpiece":
            wordpiece_lib.write_vocabulary(list(self.tokens), path)
        elif self.kind == "bpe":
            fileio.makedirs(path)
            fileio.write_atomic(os.path.join(path, BPE_VOCAB), json.dumps({t: i for i, t in enumerate(self.tokens)}, ensure_ascii=False))
            fileio.write_atomic(os.path.join(path, BPE_MERGES), "#version: 0.2\n" + "\n".join(self.merges) + "\n")
        else:
            fileio.write_atomic(path, self.model_proto)
        return path

    def save_beside(self, directory):
        """Saves under the kind's standard name (`SAVED_NAMES`) in `directory`; returns the path."""
        return self.save(os.path.join(directory, SAVED_NAMES[self.kind]))

    def __repr__(self):
        return f"Vocabulary(kind={self.kind!r}, size={len(self.tokens)}, lowercase={self.lowercase}, sha256={self.sha256[:12]}...)"

    # -- derived information --------------------------------------------------------------------------

    def __len__(self):
        return len(self.tokens)

    @property
    def size(self):
        return len(self.tokens)

    pad_id = property(lambda self: self.special_ids["pad"])
    unk_id = property(lambda self: self.special_ids["unk"])
    cls_id = property(lambda self: self.special_ids["cls"])
    sep_id = property(lambda self: self.special_ids["sep"])
    mask_id = property(lambda self: self.special_ids["mask"])

    @property
    def mask_token(self):
        return self.tokens[self.mask_id]

    @property
    def special_token_ids(self):
        """Sorted ids never masked nor predicted: the five roles, and for WordPiece every `[...]` token."""
        if self.kind == "wordpiece":
            return wordpiece_lib.special_token_ids(self.tokens)
        return sorted(set(self.special_ids.values()))

    @property
    def sha256(self):
        """The fingerprint stored in manifests. WordPiece: `vocabulary_sha256(tokens)` as always, so old
        manifests and runs stay valid; the other kinds also cover their merges / model."""
        if self.kind == "wordpiece":
            return wordpiece_lib.vocabulary_sha256(self.tokens)
        digest = hashlib.sha256(f"{self.kind}\n".encode())
        if self.kind == "bpe":
            digest.update("\n".join(self.tokens).encode("utf-8") + b"\n\n" + "\n".join(self.merges).encode("utf-8"))
        else:
            digest.update(self.model_proto)
        return digest.hexdigest()

    def starts_word(self, token):
        """Whether a (non-special) piece starts a word; see the module docstring for each kind's rule."""
        if self.kind == "wordpiece":
            return not token.startswith(wordpiece_lib.SUFFIX_INDICATOR)
        if self.kind == "bpe":  # the piece's first byte: a space, newline or punctuation starts a word
            first = _byte_decoder().get(token[:1], 0)
            return not (first >= 0x80 or chr(first).isalnum())
        return token.startswith(SENTENCEPIECE_SPACE) or not token[:1].isalnum()

    @property
    def continuation_ids(self):
        """Sorted ids of the pieces that continue a word (what `MLMMasker` needs for whole-word masking)."""
        special = set(self.special_token_ids)
        return [i for i, t in enumerate(self.tokens) if i not in special and not self.starts_word(t)]

    def tokenizer(self, special_tokens_in_strings=False, sequence_length=None):
        """The in-graph tokenizer: (batch,) strings -> ragged int32 ids, usable in `tf.data` and SavedModels.

        `special_tokens_in_strings=True` (fill-mask) makes the mask token written in the text the mask id;
        corpus text is tokenized with it off. For BPE and SentencePiece the space before a written mask
        (`Ġ` / `▁` alone) is dropped, so the model sees what it was trained on: a mask in place of a
        word-start piece.
        """
        from keras_mlm.tokenizers import tokenizer as tokenizer_lib

        if self.kind == "wordpiece":
            return tokenizer_lib.make_tokenizer(
                list(self.tokens), lowercase=self.lowercase,
                special_tokens_in_strings=special_tokens_in_strings, sequence_length=sequence_length,
            )
        return tokenizer_lib.make_piece_tokenizer(self, special_tokens_in_strings, sequence_length)

    def decode(self, ids):
        """Ids -> text, specials dropped, pieces merged into words (WordPiece: words joined by spaces)."""
        special = set(self.special_token_ids)
        pieces = [self.tokens[int(i)] for i in ids if int(i) not in special]
        if self.kind == "wordpiece":
            words = []
            for piece in pieces:
                if piece.startswith(wordpiece_lib.SUFFIX_INDICATOR) and words:
                    words[-1] += piece[len(wordpiece_lib.SUFFIX_INDICATOR) :]
                else:
                    words.append(piece)
            return " ".join(words)
        if self.kind == "bpe":
            return bytes(_byte_decoder()[c] for c in "".join(pieces) if c in _byte_decoder()).decode("utf-8", errors="replace")
        return "".join(pieces).replace(SENTENCEPIECE_SPACE, " ").lstrip(" ")

    def piece_text(self, token, first=False):
        """How a piece reads when put into text: with the space before it when it starts a word (BPE,
        SentencePiece) and without when it continues one; WordPiece `##` pieces lose the `##`."""
        if self.kind == "wordpiece":
            if token.startswith(wordpiece_lib.SUFFIX_INDICATOR):
                return token[len(wordpiece_lib.SUFFIX_INDICATOR) :]
            return token
        if self.kind == "bpe":
            return bytes(_byte_decoder()[c] for c in token if c in _byte_decoder()).decode("utf-8", errors="replace")
        return token.replace(SENTENCEPIECE_SPACE, " ")


def load_vocabulary_object(path, lowercase=None):
    """`Vocabulary.load(path)`: any kind, from its file or folder."""
    return Vocabulary.load(path, lowercase)


def as_vocabulary(vocabulary, lowercase=None):
    """A Vocabulary from a Vocabulary (returned as is), a path, or a WordPiece token list."""
    if isinstance(vocabulary, Vocabulary):
        return vocabulary
    if isinstance(vocabulary, (str, os.PathLike)):
        return Vocabulary.load(vocabulary, lowercase)
    return Vocabulary.from_tokens(vocabulary, lowercase)


def vocabulary_digest(vocabulary):
    """The manifest digest of a Vocabulary or of a WordPiece token list (`vocabulary_sha256`)."""
    return vocabulary.sha256 if isinstance(vocabulary, Vocabulary) else wordpiece_lib.vocabulary_sha256(vocabulary)


def find_saved(directory):
    """The vocabulary `Vocabulary.save_beside` wrote in `directory` (whatever its kind), or None."""
    for name in SAVED_NAMES.values():
        path = os.path.join(directory, name)
        if fileio.exists(path):
            return path
    return None


def _specials_by_role(kind, tokens, path):
    index = {t: i for i, t in enumerate(tokens)}
    missing = [t for t in SPECIALS[kind] if t not in index]
    if missing:
        raise UserInputError(
            f"{path}: {kind} vocabulary lacks special token(s) {', '.join(missing)} (required: {', '.join(SPECIALS[kind])})"
        )
    return {role: index[t] for role, t in zip(ROLES, SPECIALS[kind])}


def _read_bpe(folder):
    vocab_path, merges_path = os.path.join(folder, BPE_VOCAB), os.path.join(folder, BPE_MERGES)
    for p in (vocab_path, merges_path):
        if not fileio.isfile(p):
            raise UserInputError(f"{folder}: a BPE vocabulary folder needs {BPE_VOCAB} and {BPE_MERGES} ({p} not found)")
    try:
        with fileio.open(vocab_path, encoding="utf-8") as f:
            vocabulary = json.load(f)
        with fileio.open(merges_path, encoding="utf-8") as f:
            merges = [line.rstrip("\n") for line in f if line.strip() and not line.startswith("#version")]
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserInputError(f"{folder}: unreadable BPE vocabulary ({e})") from None
    if not isinstance(vocabulary, dict):
        raise UserInputError(f"{vocab_path}: must be a JSON object token -> id")
    return vocabulary, merges


def _parse_sentencepiece(model_proto, path):
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()
    try:
        proto.ParseFromString(bytes(model_proto))
    except Exception:  # protobuf's DecodeError
        raise UserInputError(f"{path}: not a SentencePiece model") from None
    if not proto.pieces:
        raise UserInputError(f"{path}: not a SentencePiece model (no pieces)")
    return proto


def sentencepiece_proto_with_user_mask(vocabulary):
    """The model with its mask piece made USER_DEFINED, so a mask written in the text becomes the mask id."""
    from sentencepiece import sentencepiece_model_pb2

    proto = _parse_sentencepiece(vocabulary.model_proto, "vocabulary")
    proto.pieces[vocabulary.mask_id].type = sentencepiece_model_pb2.ModelProto.SentencePiece.USER_DEFINED
    return proto.SerializeToString()


@functools.lru_cache(maxsize=1)
def _byte_decoder():
    """GPT-2's byte-level alphabet: printable character -> byte."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}

