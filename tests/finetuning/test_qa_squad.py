"""SQuAD files: reading v1.1 and v2.0, errors naming the file, JSON path and question id, the split by
article, and training windows labelled from the real sample (every labelled span is the answer's text)."""

import collections
import json
import re

import numpy as np
import pytest
import tensorflow as tf

from keras_mlm.errors import UserInputError
from keras_mlm.finetuning import squad
from keras_mlm.finetuning.qa_windows import QAWindows, span_labels
from keras_mlm.tokenizers import SPECIAL_TOKENS


def _file(tmp_path, articles, version="v2.0", name="squad.json"):
    path = tmp_path / name
    path.write_text(json.dumps({"version": version, "data": articles}), encoding="utf-8")
    return path


def _article(title, context, qas):
    return {"title": title, "paragraphs": [{"context": context, "qas": qas}]}


CONTEXT = "Ça va: the Normans came from Normandy, in France."


def test_reads_v2_and_v1(tmp_path):
    start = CONTEXT.index("Normandy")
    qas = [
        {"id": "a", "question": "Where from?",
         "answers": [{"text": "Normandy", "answer_start": start}, {"text": "France", "answer_start": 42}]},
        {"id": "b", "question": "Who?", "answers": [], "is_impossible": True,
         "plausible_answers": [{"text": "Normans", "answer_start": 11}]},
    ]
    data = squad.read_squad(_file(tmp_path, [_article("N", CONTEXT, qas)]))
    assert data.version_2 and data.titles == ["N"] and [e.id for e in data.examples] == ["a", "b"]
    a, b = data.examples
    assert a.answers == ("Normandy", "France") and a.answer_starts == (start, 42) and b.answers == ()
    # Byte offsets of the first answer: "Ç" is 2 bytes, so one more than the character offset.
    assert a.answer_bytes == (start + 1, start + 1 + 8) and b.answer_bytes == (-1, -1)
    assert data.golds() == {"a": ["Normandy", "France"], "b": []}
    v1 = squad.read_squad(_file(tmp_path, [_article("N", CONTEXT, qas[:1])], version="1.1"))
    assert not v1.version_2


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("data"), r"squad\.json: \(top level\): missing 'data'"),
    (lambda d: d["data"][0].pop("paragraphs"), r"squad\.json: data\[0\]: missing 'paragraphs'"),
    (lambda d: d["data"][0]["paragraphs"][0].update(context=7), r"data\[0\]\.paragraphs\[0\]\.context: expected str, got int"),
    (lambda d: d["data"][0]["paragraphs"][0]["qas"][0].pop("question"), r"qas\[0\] \(id a\): missing 'question'"),
    (lambda d: d["data"][0]["paragraphs"][0]["qas"][0]["answers"][0].update(answer_start=3),
     r"qas\[0\] \(id a\)\.answers\[0\]: answer 'Normandy' is not at answer_start 3 of the context \(found 'va: the '\)"),
    (lambda d: d["data"][0]["paragraphs"][0]["qas"][0].update(answers=[]), r"\(id a\): no answers"),
    (lambda d: d["data"][0]["paragraphs"][0]["qas"][0].update(is_impossible=True),
     r"\(id a\): is_impossible is true but it has 1 answers"),
    (lambda d: d["data"][0]["paragraphs"][0]["qas"].append(dict(d["data"][0]["paragraphs"][0]["qas"][0])),
     r"qas\[1\] \(id a\): duplicate question id \(first at .*qas\[0\] \(id a\)\)"),
])
def test_bad_structure_names_file_path_and_id(tmp_path, mutate, message):
    document = {"version": "v2.0", "data": [_article("N", CONTEXT, [
        {"id": "a", "question": "Where?", "answers": [{"text": "Normandy", "answer_start": CONTEXT.index("Normandy")}]}])]}
    mutate(document)
    path = tmp_path / "squad.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(UserInputError, match=message):
        squad.read_squad(path)


def test_invalid_json_names_the_line(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"version": "v2.0",\n "data": [\n  {"title": x}]}', encoding="utf-8")
    with pytest.raises(UserInputError, match=r"broken\.json:3: not valid JSON"):
        squad.read_squad(path)
    with pytest.raises(UserInputError, match=r"nothere\.json: no such file"):
        squad.read_squad(tmp_path / "nothere.json")


def test_split_by_article(tmp_path):
    qa = lambda i: [{"id": str(i), "question": "q", "answers": [{"text": "Ça", "answer_start": 0}]}]  # noqa: E731
    data = squad.read_squad(_file(tmp_path, [_article(f"t{i}", CONTEXT, qa(i)) for i in range(5)]))
    train, dev = squad.split_by_article(data, 0.4)
    assert [e.id for e in train.examples] == ["0", "1", "2"] and [e.id for e in dev.examples] == ["3", "4"]
    assert [len(s.examples) for s in squad.split_by_article(data, 0.01)] == [4, 1]  # at least one article
    assert [len(s.examples) for s in squad.split_by_article(data, 0.99)] == [1, 4]  # at most all but one
    with pytest.raises(UserInputError, match="needs at least 2 articles"):
        squad.split_by_article(squad.read_squad(_file(tmp_path, [_article("t", CONTEXT, qa(0))], name="one.json")), 0.5)
    with pytest.raises(UserInputError, match=r"--split-dev must be in \(0, 1\)"):
        squad.split_by_article(data, 1.0)


def test_real_sample_two_articles_one_each(corpora):
    data = squad.read_squad(corpora / "tasks" / "squad_v2_sample" / "dev_subset.json")
    assert data.version_2 and len(data.examples) == 626 and sum(not e.answers for e in data.examples) == 333
    train, dev = squad.split_by_article(data, 0.5)
    assert {e.article for e in train.examples} == {0} and {e.article for e in dev.examples} == {1}
    assert not {e.context for e in train.examples} & {e.context for e in dev.examples}
    assert (len(train.examples), len(dev.examples)) == (208, 418)


def test_training_windows_of_the_real_sample_label_the_answer_text(corpora):
    """Every question of the sample, rows of 128 pieces: each labelled window's span, cut from the context by
    its pieces' offsets, holds the answer and its first and last pieces overlap it (tight up to piece
    boundaries); every answer is labelled in some window; unanswerable questions in none."""
    data = squad.read_squad(corpora / "tasks" / "squad_v2_sample" / "dev_subset.json")
    examples = data.examples
    words = collections.Counter(w for e in examples for w in re.findall(r"[a-z]+", e.context.lower()))
    tokens = list(SPECIAL_TOKENS) + sorted(set("abcdefghijklmnopqrstuvwxyz0123456789"))
    tokens += ["##" + c for c in "abcdefghijklmnopqrstuvwxyz0123456789"] + [w for w, _ in words.most_common(1000) if len(w) > 1]
    windows = QAWindows(tokens, True, 128, doc_stride=48)
    rows = {k: v.numpy() for k, v in tf.function(windows)(tf.constant([e.question for e in examples]),
                                                         tf.constant([e.context for e in examples])).items()}
    spans = np.array([e.answer_bytes for e in examples], np.int32)
    starts, ends = (v.numpy() for v in span_labels(rows, tf.constant(spans[:, 0]), tf.constant(spans[:, 1])))

    # The training dataset holds the same windows and labels, in order when not shuffled.
    ds, count = squad.window_dataset(examples, windows, batch_size=100_000)
    (x, y), = list(ds)
    assert count == len(rows["example"]) > 1.5 * len(examples)  # long contexts need several windows
    np.testing.assert_array_equal(x["token_ids"].numpy(), rows["token_ids"])
    np.testing.assert_array_equal(y["start_logits"].numpy(), starts)
    np.testing.assert_array_equal(y["end_logits"].numpy(), ends)

    labelled = collections.Counter()
    for w in np.flatnonzero(starts > 0):
        e = examples[rows["example"][w]]
        a, b = e.answer_bytes
        s, t = rows["start_offsets"][w, starts[w]], rows["end_offsets"][w, ends[w]]
        assert s <= a and t >= b, (e.id, e.context.encode()[s:t], e.answers[0])
        assert rows["end_offsets"][w, starts[w]] > a and rows["start_offsets"][w, ends[w]] < b
        labelled[e.id] += 1
    assert set(labelled) == {e.id for e in examples if e.answers}
    exact = sum(e.context.encode()[rows["start_offsets"][w, starts[w]] : rows["end_offsets"][w, ends[w]]].decode() == e.answers[0]
                for w in np.flatnonzero(starts > 0) for e in [examples[rows["example"][w]]])
    assert exact / sum(labelled.values()) > 0.95  # the rest: answers that cut a word ("1066" of "1066s")
