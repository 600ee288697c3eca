"""Reading CoNLL files: sentences, separators, -DOCSTART-, bad lines named FILE:LINE; the tag set."""

import pytest

from keras_mlm.errors import UserInputError
from keras_mlm.finetuning.conll import read_conll, tag_set


def _write(tmp_path, text, name="data.conll"):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def test_sentences_words_tags_and_first_lines(tmp_path):
    path = _write(tmp_path, "-DOCSTART-\tO\n\nEU\tB-ORG\nrejects\tO\n\t\nNew York\tB-LOC\r\n\n\n  \nhi\tO\n")
    data = read_conll(path)
    assert data.words == [["EU", "rejects"], ["New York"], ["hi"]]  # a tab inside the line splits; a space does not
    assert data.tags == [["B-ORG", "O"], ["B-LOC"], ["O"]]
    assert data.lines == [3, 6, 10]
    assert len(data) == 3 and data.head(2).words == data.words[:2] and data.head(None) is data


def test_conll2003_style_space_separated_columns(tmp_path):
    data = read_conll(_write(tmp_path, "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n"))
    assert data.words == [["EU", "rejects"]] and data.tags == [["B-ORG", "O"]]


@pytest.mark.parametrize("text, line, message", [
    ("EU\tB-ORG\nrejects\n", 2, "expected a word and its tag separated by a tab, got 'rejects'"),
    ("EU\tB-ORG\n\tO\n", 2, "expected a word and its tag"),
    ("EU\tB-ORG\nrejects\tX-ORG\n", 2, "tag 'X-ORG' is not O or B-/I-/E-/S- followed by an entity type"),
    ("EU\tB-\n", 1, "tag 'B-' is not O"),
    ("EU\tPER\n", 1, "tag 'PER' is not O"),
])
def test_bad_lines_are_named(tmp_path, text, line, message):
    path = _write(tmp_path, text)
    with pytest.raises(UserInputError) as error:
        read_conll(path)
    assert str(error.value).startswith(f"{path}:{line}: {message}")


def test_not_utf8_missing_and_empty_files(tmp_path):
    path = _write(tmp_path, b"EU\tB-ORG\ncaf\xe9\tO\n")
    with pytest.raises(UserInputError, match=r":2: not UTF-8"):
        read_conll(path)
    with pytest.raises(UserInputError, match="no such file"):
        read_conll(tmp_path / "missing.conll")
    with pytest.raises(UserInputError, match="no tagged sentences"):
        read_conll(_write(tmp_path, "-DOCSTART-\tO\n\n\t\n"))


def test_tag_set_has_both_prefixes_of_every_type_of_every_file(tmp_path):
    train = read_conll(_write(tmp_path, "a\tB-person\nb\tO\n", "train.conll"))
    dev = read_conll(_write(tmp_path, "a\tB-location\nb\tI-location\n", "dev.conll"))
    assert tag_set(train, dev) == ["O", "B-location", "I-location", "B-person", "I-person"]
    iobes = read_conll(_write(tmp_path, "a\tS-X\nb\tO\n", "iobes.conll"))
    assert tag_set(iobes) == ["O", "B-X", "I-X", "S-X"]


def test_wnut17_reads_whole(corpora):
    root = corpora / "tasks" / "wnut17"
    sizes = {split: read_conll(root / f"{split}.conll") for split in ("train", "dev", "test")}
    assert {k: len(v) for k, v in sizes.items()} == {"train": 3394, "dev": 1009, "test": 1287}
    assert sum(map(len, sizes["train"].words)) == 62730
    assert tag_set(*sizes.values()) == ["O"] + [f"{p}-{t}" for t in ("corporation", "creative-work", "group", "location", "person", "product") for p in "BI"]
