"""SQuAD v1.1 / v2.0 files -> questions, training windows with span labels, predictions and scores.

    data = read_squad("dev-v2.0.json")                       # validated: errors name file, JSON path, id
    train, dev = split_by_article(data, 0.5)                 # no context on both sides
    windows = QAWindows(tokens, lowercase, seq_len=384, doc_stride=128)
    train_ds, count = training_dataset(train.examples, windows, batch_size=32, seed=0)
    model.fit(train_ds, ...)
    scores = evaluate(Answerer(model, tokens, lowercase, 384, null_threshold=0.0), dev)

The file format is the official one: {"version", "data": [{"title", "paragraphs": [{"context",
"qas": [{"id", "question", "answers": [{"text", "answer_start"}], "is_impossible"}]}]}]}, where
`answer_start` is a character (code point) offset into the context and SQuAD 2.0's unanswerable
questions have "is_impossible": true and no answers. A training window is labelled with the first
answer when it holds the whole answer, with [CLS] (position 0) otherwise.
"""

import dataclasses
import json
import math
import os

import numpy as np
import tensorflow as tf

from keras_mlm.errors import UserInputError
from keras_mlm.evaluation.squad_metrics import squad_scores
from keras_mlm.finetuning.qa_windows import span_labels
from keras_mlm.models.encoder_base import ENCODER_INPUTS


@dataclasses.dataclass(frozen=True)
class QAExample:
    id: str
    question: str
    context: str
    answers: tuple
    """Gold answer texts (several in dev files); () for an unanswerable question."""
    answer_starts: tuple
    """Their character offsets in `context`."""
    article: int
    """Index of the article (data[i]) the paragraph belongs to."""

    @property
    def answer_bytes(self):
        """The first answer's UTF-8 byte span [start, end) in the context; (-1, -1) when unanswerable."""
        if not self.answers:
            return -1, -1
        start = len(self.context[: self.answer_starts[0]].encode("utf-8"))
        return start, start + len(self.answers[0].encode("utf-8"))


@dataclasses.dataclass(frozen=True)
class SquadData:
    path: str
    examples: list
    titles: list
    """The article titles, data order."""
    version_2: bool
    """SQuAD 2.0: unanswerable questions are allowed (the file says version v2.x or has is_impossible)."""

    def articles(self, indices):
        """The same file restricted to the articles `indices`."""
        keep = set(indices)
        return dataclasses.replace(self, examples=[e for e in self.examples if e.article in keep])

    def golds(self):
        """{id: [gold answer texts]} ([] when unanswerable), what `squad_scores` takes."""
        return {e.id: list(e.answers) for e in self.examples}


def _field(value, key, kind, where):
    if not isinstance(value, dict) or key not in value:
        raise UserInputError(f"{where}: missing {key!r}")
    if not isinstance(value[key], kind):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise UserInputError(f"{where}.{key}: expected {expected}, got {type(value[key]).__name__}")
    return value[key]


def read_squad(path):
    """A `SquadData` of a SQuAD JSON file; bad structure or an answer that is not at its
    answer_start is a `UserInputError` naming the file and the JSON path (and question id)."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            document = json.load(f)
    except FileNotFoundError:
        raise UserInputError(f"{path}: no such file") from None
    except UnicodeDecodeError as e:
        raise UserInputError(f"{path}: not UTF-8 (byte offset {e.start})") from None
    except json.JSONDecodeError as e:
        raise UserInputError(f"{path}:{e.lineno}: not valid JSON ({e.msg}, column {e.colno})") from None
    if not isinstance(document, dict):
        raise UserInputError(f"{path}: expected a JSON object with 'version' and 'data', got {type(document).__name__}")
    articles = _field(document, "data", list, f"{path}: (top level)")
    version = str(document.get("version", ""))
    examples, titles, seen = [], [], {}
    for a, article in enumerate(articles):
        where = f"{path}: data[{a}]"
        paragraphs = _field(article, "paragraphs", list, where)
        titles.append(str(article.get("title", f"article {a}")))
        for p, paragraph in enumerate(paragraphs):
            where = f"{path}: data[{a}].paragraphs[{p}]"
            context = _field(paragraph, "context", str, where)
            for q, qa in enumerate(_field(paragraph, "qas", list, where)):
                where = f"{path}: data[{a}].paragraphs[{p}].qas[{q}]"
                qid = _field(qa, "id", str, where)
                where = f"{where} (id {qid})"
                if qid in seen:
                    raise UserInputError(f"{where}: duplicate question id (first at {seen[qid]})")
                seen[qid] = where
                question = _field(qa, "question", str, where)
                answers = _field(qa, "answers", list, where)
                impossible = qa.get("is_impossible", False)
                if not isinstance(impossible, bool):
                    raise UserInputError(f"{where}.is_impossible: expected true or false, got {impossible!r}")
                if impossible and answers:
                    raise UserInputError(f"{where}: is_impossible is true but it has {len(answers)} answers")
                if not impossible and not answers:
                    raise UserInputError(f"{where}: no answers (an unanswerable question needs \"is_impossible\": true, SQuAD 2.0)")
                texts, starts = [], []
                for n, answer in enumerate(answers):
                    at = f"{where}.answers[{n}]"
                    text = _field(answer, "text", str, at)
                    start = _field(answer, "answer_start", int, at)
                    if isinstance(start, bool) or context[start : start + len(text)] != text or start < 0:
                        found = context[max(start, 0) : max(start, 0) + len(text)]
                        raise UserInputError(f"{at}: answer {text!r} is not at answer_start {start} of the context (found {found!r})")
                    texts.append(text)
                    starts.append(start)
                examples.append(QAExample(qid, question, context, tuple(texts), tuple(starts), a))
    if not examples:
        raise UserInputError(f"{path}: no questions")
    version_2 = version.startswith("v2") or any(not e.answers for e in examples)
    return SquadData(path, examples, titles, version_2)


def split_by_article(data, fraction):
    """(train, dev) `SquadData`: the last round(fraction * articles) articles (at least one, at most
    all but one) are the dev split, so no context is on both sides. With 2 articles any fraction in
    (0, 1) gives one article each."""
    if not 0 < fraction < 1:
        raise UserInputError(f"--split-dev must be in (0, 1), got {fraction}")
    count = len(data.titles)
    if count < 2:
        raise UserInputError(f"{data.path}: --split-dev needs at least 2 articles to hold some out, the file has {count}")
    dev_count = min(max(round(fraction * count), 1), count - 1)
    return data.articles(range(count - dev_count)), data.articles(range(count - dev_count, count))


# ---------------------------------------------------------------------------------------------------------
# Training windows


def _columns(examples):
    spans = np.array([e.answer_bytes for e in examples], np.int32).reshape(-1, 2)
    return (
        tf.constant([e.question for e in examples], tf.string),
        tf.constant([e.context for e in examples], tf.string),
        spans[:, 0],
        spans[:, 1],
    )


def window_dataset(examples, windows, batch_size, seed=None):
    """(dataset, number of windows): batches of ({token_ids, segment_ids, padding_mask} (batch, seq),
    {"start_logits": starts, "end_logits": ends} (batch,)) over every window of every example,
    computed once and cached in memory (SQuAD 2.0's 130k training questions at 384 pieces: about 0.7 GB);
    reshuffled each epoch when `seed` is given."""
    questions, contexts, starts, ends = _columns(examples)

    def featurize(question, context, start, end):
        rows = windows(question, context)
        start_positions, end_positions = span_labels(rows, start, end)
        return {k: rows[k] for k in ENCODER_INPUTS}, {"start_logits": start_positions, "end_logits": end_positions}

    ds = tf.data.Dataset.from_tensor_slices((questions, contexts, starts, ends)).batch(256)
    ds = ds.map(featurize).unbatch().cache()
    count = int(ds.reduce(np.int64(0), lambda n, _: n + 1).numpy())  # one pass: also fills the cache
    ds = ds.apply(tf.data.experimental.assert_cardinality(count))  # so Keras knows the epoch's length
    if seed is not None:
        ds = ds.shuffle(min(count, 20_000), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE), count


# ---------------------------------------------------------------------------------------------------------
# Predictions and scores


def predict(answerer, examples, batch_size=64):
    """{id: {answer, span, start_char, end_char, score}} for every example (see `Answerer`)."""
    string = tf.TensorSpec([None], tf.string)

    @tf.function(input_signature=[string, string])
    def answer(questions, contexts):
        best = answerer.spans(questions, contexts)
        return {**answerer.decide(best), "span": best["span"]}

    predictions = {}
    for i in range(0, len(examples), batch_size):
        chunk = examples[i : i + batch_size]
        out = answer(tf.constant([e.question for e in chunk]), tf.constant([e.context for e in chunk]))
        out = {k: v.numpy() for k, v in out.items()}
        for n, example in enumerate(chunk):
            predictions[example.id] = {
                "answer": out["answer"][n].decode("utf-8"),
                "span": out["span"][n].decode("utf-8"),
                "start_char": int(out["start_char"][n]),
                "end_char": int(out["end_char"][n]),
                "score": float(out["score"][n]),
            }
    return predictions


def evaluate(answerer, data, batch_size=64):
    """The SQuAD scores (percent) of `answerer` on `data`: exact_match, f1, count, and for SQuAD 2.0
    has_answer / no_answer and the best no-answer threshold (see `squad_scores`)."""
    predictions = predict(answerer, data.examples, batch_size)
    answers = {i: p["answer"] for i, p in predictions.items()}
    if not data.version_2:
        return squad_scores(data.golds(), answers)
    margins = {i: -p["score"] if math.isfinite(p["score"]) else math.inf for i, p in predictions.items()}
    return squad_scores(data.golds(), answers, no_answer_margins=margins, spans={i: p["span"] for i, p in predictions.items()})
