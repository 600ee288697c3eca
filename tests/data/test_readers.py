import gzip
import json

import pytest

from keras_mlm.data.readers import expand_inputs, iterate_chunks, iterate_documents
from keras_mlm.errors import UserInputError


def test_text_documents_are_separated_by_blank_lines(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("first line\nof doc one\n\n\nsecond doc\n  \nthird\n", encoding="utf-8")
    assert list(iterate_documents([path])) == ["first line of doc one", "second doc", "third"]


def test_jsonl_and_gzip_forms(tmp_path):
    (tmp_path / "a.jsonl").write_text(json.dumps({"text": "one two"}) + "\n\n" + json.dumps({"text": "three", "id": 7}) + "\n")
    with gzip.open(tmp_path / "b.txt.gz", "wt", encoding="utf-8") as f:
        f.write("four\n\nfive six\n")
    with gzip.open(tmp_path / "c.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write(json.dumps({"text": "seven"}) + "\n")
    # A folder is read recursively in sorted order.
    assert list(iterate_documents([tmp_path])) == ["one two", "three", "four", "five six", "seven"]


def test_long_documents_stream_in_chunks_cut_between_words(tmp_path):
    words = [f"w{i}" for i in range(5000)]
    (tmp_path / "a.txt").write_text("\n".join(" ".join(words[i : i + 10]) for i in range(0, 5000, 10)) + "\n")
    (tmp_path / "b.jsonl").write_text(json.dumps({"text": " ".join(words)}) + "\n")
    for name in ("a.txt", "b.jsonl"):
        chunks = list(iterate_chunks(str(tmp_path / name), chunk_chars=1000))
        assert len(chunks) > 10
        assert [c.last for c in chunks] == [False] * (len(chunks) - 1) + [True]
        assert all(len(c.text) <= 1000 for c in chunks)
        assert " ".join(c.text for c in chunks).split() == words


def test_not_utf8_names_file_line_and_offset(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("ok line\n".encode() + "caf\xe9\n".encode("latin-1"))
    with pytest.raises(UserInputError, match=r"latin1.txt:2: bytes that are not UTF-8 at byte offset 11"):
        list(iterate_documents([path]))


@pytest.mark.parametrize(
    "content, message",
    [("{not json}\n", r"b.jsonl:1: invalid JSON"), ('{"txt": "x"}\n', r"b.jsonl:1: field 'text' is missing"), ('"just a string"\n', "field 'text'")],
)
def test_bad_jsonl_lines(tmp_path, content, message):
    (tmp_path / "b.jsonl").write_text(content)
    with pytest.raises(UserInputError, match=message):
        list(iterate_documents([tmp_path / "b.jsonl"]))


def test_unusable_inputs(tmp_path):
    with pytest.raises(UserInputError, match="no such file or folder"):
        expand_inputs([tmp_path / "missing.txt"])
    (tmp_path / "data.csv").write_text("a,b\n")
    with pytest.raises(UserInputError, match=r"unsupported file type \(allowed: .txt"):
        expand_inputs([tmp_path / "data.csv"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserInputError, match="folder holds no corpus files"):
        expand_inputs([empty])
