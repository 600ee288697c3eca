"""SQuAD exact match and F1 against hand-worked cases: normalisation, the best gold, unanswerable
questions, the has-answer / no-answer split and the best no-answer threshold."""

import math

import pytest

from keras_mlm.evaluation.squad_metrics import best_threshold, exact_match, f1, normalize_answer, squad_scores


@pytest.mark.parametrize("text, expected", [
    ("The  Norman-Conquest!", "normanconquest"),  # lowercase, punctuation removed (not split on), article gone
    ("An apple, a day", "apple day"),
    ("theater then anthem", "theater then anthem"),  # articles only as whole words
    ("  Paris\n\tFrance. ", "paris france"),
    ("Café «Noir»", "café «noir»"),  # only ASCII punctuation is removed, as in the official script
    ("the a an", ""),
])
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


def test_exact_match_is_the_best_over_golds():
    assert exact_match("Paris", ["London", "paris."]) == 1.0
    assert exact_match("the Paris", ["Paris"]) == 1.0
    assert exact_match("Paris France", ["Paris", "France"]) == 0.0


def test_f1_hand_worked():
    # pred [cat, sat], gold [cat, sat, on]: overlap 2, precision 1, recall 2/3 -> 0.8.
    assert f1("the cat sat", ["cat sat on"]) == pytest.approx(0.8)
    # Multiset overlap: pred [x, y, y], gold [y, y, z]: overlap 2, p = r = 2/3.
    assert f1("x y y", ["y y z"]) == pytest.approx(2 / 3)
    assert f1("x y y", ["y z z"]) == pytest.approx(2 * (1 / 3) * (1 / 3) / (2 / 3))
    assert f1("cat", ["dog", "the cat"]) == 1.0  # best gold
    assert f1("dog", ["cat"]) == 0.0


def test_unanswerable_and_empty_answers():
    assert exact_match("", []) == 1.0 and f1("", []) == 1.0  # gold [""]: only "" scores
    assert exact_match("Paris", []) == 0.0 and f1("Paris", []) == 0.0
    assert exact_match("", ["Paris"]) == 0.0 and f1("", ["Paris"]) == 0.0
    assert exact_match("the", []) == 1.0  # normalises to ""
    # A gold that normalises to "" is dropped when another gold exists (official `get_raw_scores`).
    assert f1("", ["the", "cat"]) == 0.0 and f1("cat", ["the", "cat"]) == 1.0


GOLDS = {"q1": ["Paris"], "q2": ["cat sat on"], "q3": [], "q4": []}


def test_squad_scores_split_by_answerability():
    predictions = {"q1": "paris", "q2": "the cat sat", "q3": "", "q4": "x"}
    scores = squad_scores(GOLDS, predictions)
    assert scores["exact_match"] == pytest.approx(50.0) and scores["f1"] == pytest.approx(70.0) and scores["count"] == 4
    assert scores["has_answer"] == {"exact_match": pytest.approx(50.0), "f1": pytest.approx(90.0), "count": 2}
    assert scores["no_answer"] == {"exact_match": pytest.approx(50.0), "f1": pytest.approx(50.0), "count": 2}
    # SQuAD 1.1 (every question answerable): no split.
    v1 = squad_scores({"q1": ["Paris"], "q2": ["cat sat on"]}, {"q1": "Paris", "q2": "dog"})
    assert v1 == {"exact_match": 50.0, "f1": 50.0, "count": 2}


def test_best_threshold_hand_worked():
    values = {"q1": 1.0, "q2": 0.8, "q3": 0.0, "q4": 0.0}  # F1 of each best span
    has_answer = {"q1": True, "q2": True, "q3": False, "q4": False}
    margins = {"q1": -3.0, "q2": 1.0, "q3": 2.0, "q4": -1.0}
    # Answer nothing: 2 (the unanswerable ones). Answering in margin order: q1 +1 -> 3, q4 -1 -> 2,
    # q2 +0.8 -> 2.8, q3 -1 -> 1.8. Best 3 of 4 at threshold -3 (q1 answered: its margin is not > -3).
    assert best_threshold(values, has_answer, margins) == (pytest.approx(75.0), -3.0)
    # Tied margins are answered together: q1 and q4 both at -1 gives 2 + 1 - 1 = 2, no better than nothing.
    tied = {**margins, "q1": -1.0}
    assert best_threshold(values, has_answer, tied) == (pytest.approx(280 / 4), 1.0)
    # When answering never helps, the threshold is below every margin.
    assert best_threshold({"q3": 0.0, "q4": 0.0}, has_answer, margins) == (100.0, -math.inf)


def test_squad_scores_with_the_threshold_search():
    predictions = {"q1": "Paris", "q2": "", "q3": "", "q4": ""}
    spans = {"q1": "Paris", "q2": "the cat sat", "q3": "foo", "q4": "x"}
    margins = {"q1": -3.0, "q2": 1.0, "q3": 2.0, "q4": -1.0}
    scores = squad_scores(GOLDS, predictions, no_answer_margins=margins, spans=spans)
    assert scores["f1"] == pytest.approx(75.0) and scores["exact_match"] == pytest.approx(75.0)
    assert scores["best_f1"] == pytest.approx(75.0) and scores["best_f1_threshold"] == -3.0
    assert scores["best_exact_match"] == pytest.approx(75.0) and scores["best_exact_match_threshold"] == -3.0
