"""Entity-level NER scores: hand-worked cases (seqeval's edge cases among them), then equality with
seqeval itself, on random tag sequences and on perturbed real WNUT-17 test tags."""

import random
import warnings

import pytest
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
from seqeval.metrics.sequence_labeling import get_entities as seqeval_entities
from seqeval.metrics.sequence_labeling import precision_recall_fscore_support

from keras_mlm.evaluation.ner_metrics import entity_scores, format_report, get_entities
from keras_mlm.finetuning.conll import read_conll


def _prf(scores):
    return scores["precision"], scores["recall"], scores["f1"]


# ---------------------------------------------------------------------------------------------------------
# Hand-worked


def test_one_missed_entity():
    gold = [["B-PER", "I-PER", "O", "B-LOC"]]
    pred = [["B-PER", "I-PER", "O", "O"]]
    # gold: PER 0-1, LOC 3-3; predicted: PER 0-1 -> 1 correct of 1 predicted, of 2 gold.
    scores = entity_scores(gold, pred)
    assert _prf(scores) == (1.0, 0.5, 2 * 1.0 * 0.5 / 1.5)
    assert (scores["support"], scores["predicted"], scores["correct"]) == (2, 1, 1)
    assert scores["per_type"] == {
        "LOC": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1},
        "PER": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1},
    }


def test_wrong_boundary_is_wrong_entity():
    gold = [["B-PER", "I-PER", "O"]]
    pred = [["B-PER", "O", "O"]]  # PER 0-0 is not PER 0-1
    assert _prf(entity_scores(gold, pred)) == (0.0, 0.0, 0.0)


def test_wrong_type_is_wrong_entity():
    assert _prf(entity_scores([["B-PER", "I-PER"]], [["B-LOC", "I-LOC"]])) == (0.0, 0.0, 0.0)


def test_stray_inside_tag_starts_an_entity():
    # conlleval: I-PER after O opens a PER entity, which matches a gold B-PER I-PER.
    assert get_entities([["O", "I-PER", "I-PER", "O"]]) == [("PER", 1, 2)]
    assert _prf(entity_scores([["O", "B-PER", "I-PER", "O"]], [["O", "I-PER", "I-PER", "O"]])) == (1.0, 1.0, 1.0)


def test_inside_tag_of_another_type_starts_a_new_entity():
    assert get_entities([["B-PER", "I-LOC", "I-LOC"]]) == [("PER", 0, 0), ("LOC", 1, 2)]


def test_begin_after_begin_starts_a_new_entity():
    assert get_entities([["B-PER", "B-PER", "I-PER"]]) == [("PER", 0, 0), ("PER", 1, 2)]


def test_entities_end_with_their_sentence():
    # Sentences are joined with an "O": the second sentence's stray I-PER is its own entity.
    assert get_entities([["O", "B-PER"], ["I-PER", "O"]]) == [("PER", 1, 1), ("PER", 3, 3)]


def test_iobes_tags():
    assert get_entities([["S-PER", "B-LOC", "E-LOC", "E-LOC", "I-LOC"]]) == [("PER", 0, 0), ("LOC", 1, 2), ("LOC", 3, 3), ("LOC", 4, 4)]


def test_tag_without_type_has_type_underscore():
    assert get_entities([["B", "I", "O", "B-X"]]) == [("_", 0, 1), ("X", 3, 3)]


def test_nothing_predicted_and_nothing_to_find_score_zero():
    assert _prf(entity_scores([["B-PER", "O"]], [["O", "O"]])) == (0.0, 0.0, 0.0)
    scores = entity_scores([["O", "O"], []], [["O", "O"], []])
    assert _prf(scores) == (0.0, 0.0, 0.0) and scores["per_type"] == {}


def test_a_type_only_predicted_is_in_the_table_with_support_zero():
    scores = entity_scores([["B-PER", "O"]], [["B-PER", "B-ORG"]])
    assert scores["per_type"]["ORG"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert _prf(scores) == (0.5, 1.0, 2 * 0.5 * 1.0 / 1.5)


def test_micro_average_pools_counts_over_types():
    gold = [["B-A", "O", "B-B", "I-B", "O", "B-B"]]
    pred = [["B-A", "O", "B-B", "O", "O", "B-B"]]
    # A: 1/1 correct; B: gold {2-3, 5-5}, predicted {2-2, 5-5} -> 1 correct. Pooled: 2 of 3 and 2 of 3.
    scores = entity_scores(gold, pred)
    assert _prf(scores) == (2 / 3, 2 / 3, 2 * (2 / 3) * (2 / 3) / (2 / 3 + 2 / 3))
    assert scores["per_type"]["B"]["precision"] == 0.5


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="sentence 0: 2 gold tags but 1 predicted"):
        entity_scores([["O", "O"]], [["O"]])
    with pytest.raises(ValueError, match="2 gold sentences but 1 predicted"):
        entity_scores([["O"], ["O"]], [["O"]])
    with pytest.raises(ValueError, match="expected a list of tags"):
        entity_scores(["B-PER"], ["B-PER"])


def test_report_lists_every_type_and_the_micro_average():
    lines = format_report(entity_scores([["B-PER", "O", "B-LOC"]], [["B-PER", "O", "O"]]), digits=2).splitlines()
    assert [line.split()[0] for line in lines[1:]] == ["LOC", "PER", "micro"]
    assert lines[-1].split() == ["micro", "avg", "1.00", "0.50", "0.67", "2"]


# ---------------------------------------------------------------------------------------------------------
# Equal to seqeval


def _assert_equal_to_seqeval(gold, pred):
    ours = entity_scores(gold, pred)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # seqeval warns on zero divisions and non-NE tags
        assert ours["precision"] == precision_score(gold, pred)
        assert ours["recall"] == recall_score(gold, pred)
        assert ours["f1"] == f1_score(gold, pred)
        p, r, f, s = precision_recall_fscore_support(gold, pred, average=None)
        assert list(ours["per_type"].values()) == [
            {"precision": a, "recall": b, "f1": c, "support": d} for a, b, c, d in zip(p.tolist(), r.tolist(), f.tolist(), s.tolist())
        ]
        if ours["per_type"]:
            report = classification_report(gold, pred, output_dict=True)
            assert sorted(ours["per_type"]) == sorted(k for k in report if not k.endswith(" avg"))
    assert get_entities(gold) == seqeval_entities(gold)
    return ours


def test_equal_to_seqeval_on_random_tag_sequences():
    rng = random.Random(0)
    tags = ["O", "O", "B-A", "I-A", "B-B", "I-B", "E-A", "S-B", "I-C", "B", "I", "E", "S"]
    for _ in range(2000):
        gold = [[rng.choice(tags) for _ in range(rng.randint(0, 7))] for _ in range(rng.randint(1, 4))]
        pred = [[rng.choice(tags) for _ in sentence] for sentence in gold]
        _assert_equal_to_seqeval(gold, pred)


def _perturb(sentences, types, rate, seed):
    """Gold tags with `rate` of the words retagged at random: stray I-, wrong types, cut and grown entities."""
    rng = random.Random(seed)
    choices = ["O"] + [f"{p}-{t}" for t in types for p in "BI"]
    return [[rng.choice(choices) if rng.random() < rate else tag for tag in sentence] for sentence in sentences]


@pytest.mark.parametrize("rate", [0.02, 0.1, 0.5])
def test_equal_to_seqeval_on_perturbed_wnut17_test_tags(corpora, rate):
    gold = read_conll(corpora / "tasks" / "wnut17" / "test.conll").tags
    types = sorted({tag[2:] for sentence in gold for tag in sentence if tag != "O"})
    ours = _assert_equal_to_seqeval(gold, _perturb(gold, types, rate, seed=1))
    assert ours["support"] == 1079  # WNUT-17 test: 1079 gold entities
    assert 0.0 < ours["f1"] < 1.0
    assert _prf(entity_scores(gold, gold)) == (1.0, 1.0, 1.0)
