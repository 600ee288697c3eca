"""Accuracy, macro-averaged F1 and the Matthews correlation of class predictions.

Plain numpy over a confusion matrix (a few lines; scikit-learn is not a dependency). The conventions
are scikit-learn's: a class's F1 is 0 when it has neither predictions nor gold examples' matches
(precision or recall undefined counts as 0), macro F1 averages over the classes that occur in the gold
labels or the predictions, and MCC is 0 when a row or column of the 2x2 table is empty.
"""

import numpy as np


def confusion_matrix(gold, predicted, num_classes):
    """(num_classes, num_classes) counts, rows = gold class, columns = predicted class."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(gold, np.int64), np.asarray(predicted, np.int64)), 1)
    return matrix


def classification_metrics(gold, predicted, num_classes):
    """{"accuracy", "macro_f1", "examples"} and, for two classes, "matthews"."""
    gold, predicted = np.asarray(gold), np.asarray(predicted)
    if gold.shape != predicted.shape or gold.size == 0:
        raise ValueError(f"need as many predictions as gold labels (>0), got {predicted.shape} and {gold.shape}")
    matrix = confusion_matrix(gold, predicted, num_classes)
    true_positives = np.diag(matrix).astype(np.float64)
    predicted_counts, gold_counts = matrix.sum(axis=0), matrix.sum(axis=1)
    precision = np.divide(true_positives, predicted_counts, out=np.zeros(num_classes), where=predicted_counts > 0)
    recall = np.divide(true_positives, gold_counts, out=np.zeros(num_classes), where=gold_counts > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros(num_classes), where=denominator > 0)
    present = (predicted_counts + gold_counts) > 0
    out = {
        "accuracy": float(true_positives.sum() / gold.size),
        "macro_f1": float(f1[present].mean()),
        "examples": int(gold.size),
    }
    if num_classes == 2:
        (tn, fp), (fn, tp) = matrix.astype(np.float64)
        denominator = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
        out["matthews"] = float((tp * tn - fp * fn) / denominator) if denominator > 0 else 0.0
    return out
