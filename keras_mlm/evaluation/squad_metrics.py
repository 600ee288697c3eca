"""SQuAD exact match and F1, as the official v2.0 evaluation script computes them.

    normalize_answer("The  Norman-conquest!")  -> "normanconquest"
    exact_match(prediction, golds)             -> 1.0 or 0.0, best over the gold answers
    f1(prediction, golds)                      -> token-overlap F1, best over the gold answers
    squad_scores(golds, predictions, no_answer_margins=None) -> the metrics.json dict

Normalisation (official): lowercase, drop every ASCII punctuation character (`string.punctuation`),
drop the articles a/an/the as words, collapse whitespace. An unanswerable question's gold is [""]:
only an empty prediction scores (EM = F1 = 1); a gold answer that normalises to "" is ignored
when others exist, as the official script does.

Scores are percentages (0-100), as the official script prints and papers report them.
"""

import collections
import math
import re
import string

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text):
    """Lowercase, no punctuation, no articles, single spaces (the official `normalize_answer`)."""
    text = "".join(c for c in text.lower() if c not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _gold_list(golds):
    """The gold answers that count: non-empty after normalisation, or [""] for an unanswerable question."""
    kept = [g for g in golds if normalize_answer(g)]
    return kept or [""]


def _exact(prediction, gold):
    return float(normalize_answer(prediction) == normalize_answer(gold))


def _f1(prediction, gold):
    predicted, wanted = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not predicted or not wanted:
        return float(predicted == wanted)  # both empty: 1; one empty: 0
    common = collections.Counter(predicted) & collections.Counter(wanted)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(predicted), overlap / len(wanted)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction, golds):
    """1.0 if `prediction` equals one of `golds` after normalisation, else 0.0 (golds [] -> [""])."""
    return max(_exact(prediction, g) for g in _gold_list(golds))


def f1(prediction, golds):
    """The best bag-of-words F1 of `prediction` against `golds` after normalisation (golds [] -> [""])."""
    return max(_f1(prediction, g) for g in _gold_list(golds))


def _summary(exact, f1_values, ids):
    n = len(ids)
    return {
        "exact_match": 100.0 * sum(exact[i] for i in ids) / n if n else 0.0,
        "f1": 100.0 * sum(f1_values[i] for i in ids) / n if n else 0.0,
        "count": n,
    }


def best_threshold(values, has_answer, no_answer_margins):
    """(best score in percent, threshold) over thresholds t: answer "" where margin > t.

    values: {id: the score of the best span (0..1)}; has_answer: {id: bool}; no_answer_margins:
    {id: no-answer score - best span score}. Answering is right or wrong as `values` says; not
    answering scores 1 on an unanswerable question and 0 on an answerable one. The official script's
    `find_best_thresh`, except that "answer nothing" gets a threshold below every margin (-inf).
    """
    ids = sorted(values, key=lambda i: no_answer_margins[i])
    total = sum(1.0 for i in ids if not has_answer[i])  # nothing answered
    best, threshold = total, -math.inf
    for n, i in enumerate(ids):
        total += values[i] - (0.0 if has_answer[i] else 1.0)  # answering i instead of ""
        tied = n + 1 < len(ids) and no_answer_margins[ids[n + 1]] == no_answer_margins[i]
        if not tied and total > best:
            best, threshold = total, no_answer_margins[i]
    return 100.0 * best / len(ids) if ids else 0.0, threshold


def squad_scores(golds, predictions, no_answer_margins=None, spans=None):
    """The metrics of `predictions` ({id: text}) against `golds` ({id: [answer texts]}, [] unanswerable).

    Returns {exact_match, f1, count} over all questions, and when any question is unanswerable (SQuAD
    2.0) also `has_answer` and `no_answer` ({exact_match, f1, count} each). With `no_answer_margins`
    ({id: no-answer score - best span score}) and `spans` ({id: the best span's text, "" or not}), adds
    best_exact_match, best_exact_match_threshold, best_f1, best_f1_threshold: the scores with the
    no-answer threshold that maximises each (as the official script's --na-prob-file), evaluated on
    these same questions, so optimistic when used to report rather than to choose a threshold.
    A question without a prediction counts as answered "" (the official script counts it wrong
    and warns; the recipe predicts every question).
    """
    missing = [i for i in golds if i not in predictions]
    if missing and len(missing) == len(golds):
        raise ValueError("no prediction for any question")
    exact = {i: exact_match(predictions.get(i, ""), g) for i, g in golds.items()}
    f1_values = {i: f1(predictions.get(i, ""), g) for i, g in golds.items()}
    result = _summary(exact, f1_values, list(golds))
    has_answer = {i: bool(_gold_list(g)[0]) for i, g in golds.items()}
    if not all(has_answer.values()):
        result["has_answer"] = _summary(exact, f1_values, [i for i in golds if has_answer[i]])
        result["no_answer"] = _summary(exact, f1_values, [i for i in golds if not has_answer[i]])
        if no_answer_margins is not None and spans is not None:
            span_exact = {i: exact_match(spans[i], g) for i, g in golds.items()}
            span_f1 = {i: f1(spans[i], g) for i, g in golds.items()}
            for name, values in (("exact_match", span_exact), ("f1", span_f1)):
                score, threshold = best_threshold(values, has_answer, no_answer_margins)
                result[f"best_{name}"] = score
                result[f"best_{name}_threshold"] = threshold if math.isfinite(threshold) else None  # None: answer nothing
    return result
