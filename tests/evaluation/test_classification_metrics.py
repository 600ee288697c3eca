"""Accuracy, macro F1 and Matthews correlation against hand-worked confusion matrices."""

import math

import pytest

from keras_mlm.evaluation.classification_metrics import classification_metrics, confusion_matrix


def test_binary_hand_worked():
    # gold    1 1 1 1 0 0 0 0 0 0
    # pred    1 1 1 0 1 0 0 0 0 0   -> tp 3, fn 1, fp 1, tn 5
    gold = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    pred = [1, 1, 1, 0, 1, 0, 0, 0, 0, 0]
    m = classification_metrics(gold, pred, 2)
    assert m["accuracy"] == pytest.approx(0.8)
    f1_pos = 2 * 0.75 * 0.75 / 1.5  # precision 3/4, recall 3/4
    f1_neg = 2 * (5 / 6) * (5 / 6) / (10 / 6)  # precision 5/6, recall 5/6
    assert m["macro_f1"] == pytest.approx((f1_pos + f1_neg) / 2)
    assert m["matthews"] == pytest.approx((3 * 5 - 1 * 1) / math.sqrt(4 * 4 * 6 * 6))
    assert m["examples"] == 10


def test_three_classes_and_degenerate_cases():
    gold, pred = [0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0]
    assert confusion_matrix(gold, pred, 3).tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    m = classification_metrics(gold, pred, 3)
    # class 0: p 1/2 r 1/2 f 1/2; class 1: p 1/2 r 1 f 2/3; class 2: p 1 r 2/3 f 4/5
    assert m["macro_f1"] == pytest.approx((0.5 + 2 / 3 + 0.8) / 3) and "matthews" not in m
    constant = classification_metrics([0, 1, 1], [1, 1, 1], 2)  # one predicted class: MCC 0, F1(0) = 0
    assert constant["matthews"] == 0.0 and constant["macro_f1"] == pytest.approx((0 + 0.8) / 2)
    # A class absent from both gold and predictions does not count in the macro average.
    assert classification_metrics([0, 1], [0, 1], 3)["macro_f1"] == 1.0
    with pytest.raises(ValueError):
        classification_metrics([0, 1], [0], 2)
