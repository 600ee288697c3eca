"""Tagged sentences from CoNLL files (NER), and the tag set a token classifier predicts.

    EU	B-ORG          one word a line: the word, a tab, its tag (or, CoNLL-2003 style, columns
    rejects	O          separated by spaces: the word first, the tag last)
    German	B-MISC
                       a blank line (or one holding only whitespace) ends a sentence
    -DOCSTART-	O      document markers are skipped

Tags are `O` or PREFIX-TYPE with PREFIX one of B, I (IOB2/BIO), E, S (IOBES). Anything else stops
the reading with `UserInputError("FILE:LINE: ...")`.
"""

import dataclasses
import re

from keras_mlm.errors import UserInputError

OUTSIDE = "O"
DOCSTART = "-DOCSTART-"
TAG_PATTERN = re.compile(r"^(?:O|[BIES]-\S+)$")
PREFIX_ORDER = "BIES"


@dataclasses.dataclass(frozen=True)
class TaggedSentences:
    """Parallel lists: `words[i]` and `tags[i]` are sentence i, which starts at file line `lines[i]`."""

    words: list
    tags: list
    lines: list
    path: str

    def __len__(self):
        return len(self.words)

    def head(self, count):
        """The first `count` sentences (all when `count` is None)."""
        if count is None:
            return self
        return TaggedSentences(self.words[:count], self.tags[:count], self.lines[:count], self.path)


def read_conll(path):
    """The sentences of a CoNLL file (see the module docstring); raises UserInputError on bad lines."""
    path = str(path)
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise UserInputError(f"{path}: no such file") from None
    except OSError as e:
        raise UserInputError(f"{path}: cannot read ({e.strerror})") from None
    words, tags, lines = [], [], []
    sentence_words, sentence_tags, start = [], [], None

    def end_sentence():
        if sentence_words:
            words.append(sentence_words)
            tags.append(sentence_tags)
            lines.append(start)

    with f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as e:
                raise UserInputError(f"{path}:{number}: not UTF-8 (byte {e.start + 1} of the line)") from None
            if not line.strip():
                end_sentence()
                sentence_words, sentence_tags, start = [], [], None
                continue
            fields = line.split("\t") if "\t" in line else line.split()
            fields = [field.strip() for field in fields]
            if len(fields) < 2 or not fields[0] or not fields[-1]:
                raise UserInputError(f"{path}:{number}: expected a word and its tag separated by a tab, got {line!r}")
            word, tag = fields[0], fields[-1]
            if word == DOCSTART:
                continue
            if not TAG_PATTERN.match(tag):
                raise UserInputError(f"{path}:{number}: tag {tag!r} is not O or B-/I-/E-/S- followed by an entity type")
            if start is None:
                start = number
            sentence_words.append(word)
            sentence_tags.append(tag)
    end_sentence()
    if not words:
        raise UserInputError(f"{path}: no tagged sentences")
    return TaggedSentences(words, tags, lines, path)


def tag_set(*datasets):
    """The tags a model predicts: "O", then every entity type's B-, I- (and E-, S- when any file uses
    them) tags, types sorted. Built from every given file, so a type or prefix that a (shortened)
    training set lacks still has an id, and a dev or test tag never falls outside the set."""
    types, prefixes = set(), {"B", "I"}
    for data in datasets:
        for sentence in data.tags:
            for tag in sentence:
                if tag != OUTSIDE:
                    prefixes.add(tag[0])
                    types.add(tag[2:])
    return [OUTSIDE] + [f"{p}-{t}" for t in sorted(types) for p in PREFIX_ORDER if p in prefixes]
