"""Entity-level precision, recall and F1 of tag sequences, exactly as `seqeval` computes them.

    scores = entity_scores(gold, predicted)   # lists of sentences, each a list of tags
    scores["f1"], scores["per_type"]["person"]["recall"]

This is seqeval's default mode (`f1_score(y_true, y_pred)` without `mode="strict"`), which is
conlleval.pl's: an entity is a maximal chunk of tags of one type, found by the rules below, and it
counts as correct only when a predicted entity has the same type, start and end as a gold one.

    B-X            starts an entity of type X (ending any open one)
    I-X            continues an open X entity; after O, after an entity of another type, or after
                   an E-/S- tag it starts a new X entity (a "stray" I-X is an entity, as in conlleval)
    E-X, S-X       (IOBES) E-X continues and then closes, S-X is a one-word entity
    O              outside; ends any open entity
    a sentence's end closes any open entity (sentences are joined with an O between them)

A tag is split as seqeval splits it: its first character is the prefix, the rest after the first "-"
the type ("B-PER" -> B, PER; "B" -> B, "_"). Precision is correct / predicted entities, recall
correct / gold entities, F1 their harmonic mean; each is 0 when its denominator is 0 (seqeval's
`zero_division="warn"` value, without the warning). Scores are micro-averaged over types, and
`per_type` holds every type found in either sequence, as seqeval's `classification_report`.

Why our own implementation instead of importing seqeval: seqeval pulls in scikit-learn (and SciPy)
for this one function, which is ~40 lines of pure Python, and it runs after `model.predict`, outside
the graph, where speed does not matter (the WNUT-17 test set scores in milliseconds). seqeval is a
test dependency only: tests/evaluation/test_ner_metrics.py checks that every number here equals
seqeval's, on hand-worked edge cases and on real WNUT-17 predictions.
"""

OUTSIDE = "O"


def _split_tag(tag):
    """("B", "PER") from "B-PER"; the type is "_" when the tag has none (seqeval's rule)."""
    return tag[0], tag[1:].split("-", maxsplit=1)[-1] or "_"


def _ends(prev_tag, tag, prev_type, type_):
    """Whether the entity open at the previous tag ends before this one (seqeval's `end_of_chunk`)."""
    if prev_tag in ("E", "S"):
        return True
    if prev_tag in ("B", "I") and tag in ("B", "S", "O"):
        return True
    return prev_tag not in ("O", ".") and prev_type != type_


def _starts(prev_tag, tag, prev_type, type_):
    """Whether an entity starts at this tag (seqeval's `start_of_chunk`)."""
    if tag in ("B", "S"):
        return True
    if prev_tag in ("E", "S", "O") and tag in ("E", "I"):
        return True
    return tag not in ("O", ".") and prev_type != type_


def get_entities(sentences):
    """[(type, start, end)] of a list of tag sentences, end inclusive, positions in the sentences
    joined with one "O" between them (so an entity never spans two sentences)."""
    tags = [tag for sentence in sentences for tag in [*sentence, OUTSIDE]]
    entities = []
    prev_tag, prev_type, begin = "O", "", 0
    for i, chunk in enumerate([*tags, OUTSIDE]):
        tag, type_ = _split_tag(chunk)
        if _ends(prev_tag, tag, prev_type, type_):
            entities.append((prev_type, begin, i - 1))
        if _starts(prev_tag, tag, prev_type, type_):
            begin = i
        prev_tag, prev_type = tag, type_
    return entities


def _ratio(numerator, denominator):
    return numerator / denominator if denominator else 0.0


def _scores(correct, predicted, gold):
    precision, recall = _ratio(correct, predicted), _ratio(correct, gold)
    denominator = precision + recall
    f1 = 2.0 * precision * recall / denominator if denominator else 0.0  # seqeval's order of operations
    return precision, recall, f1


def check_sentences(gold, predicted):
    """Raises ValueError unless both are lists of sentences of string tags with the same lengths."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold sentences but {len(predicted)} predicted")
    for i, (g, p) in enumerate(zip(gold, predicted)):
        if isinstance(g, str) or isinstance(p, str):
            raise ValueError(f"sentence {i}: expected a list of tags, got a string")
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted")
        bad = [t for t in (*g, *p) if not isinstance(t, str) or not t]
        if bad:
            raise ValueError(f"sentence {i}: tags must be non-empty strings, got {bad[0]!r}")


def entity_scores(gold, predicted):
    """{"precision", "recall", "f1", "support", "predicted", "correct", "per_type": {type: {"precision",
    "recall", "f1", "support"}}} of predicted tag sentences against gold ones (see the module docstring).

    `support` is the number of gold entities, `predicted` of predicted ones, `correct` of exact matches.
    """
    check_sentences(gold, predicted)
    gold_entities, predicted_entities = set(get_entities(gold)), set(get_entities(predicted))
    types = sorted({t for t, _, _ in gold_entities} | {t for t, _, _ in predicted_entities})
    per_type = {}
    for type_ in types:
        g = {e for e in gold_entities if e[0] == type_}
        p = {e for e in predicted_entities if e[0] == type_}
        precision, recall, f1 = _scores(len(g & p), len(p), len(g))
        per_type[type_] = {"precision": precision, "recall": recall, "f1": f1, "support": len(g)}
    correct = len(gold_entities & predicted_entities)
    precision, recall, f1 = _scores(correct, len(predicted_entities), len(gold_entities))
    return {
        "precision": precision, "recall": recall, "f1": f1, "support": len(gold_entities),
        "predicted": len(predicted_entities), "correct": correct, "per_type": per_type,
    }


def format_report(scores, digits=4):
    """A plain-text table like seqeval's `classification_report`, with a micro-average row."""
    rows = [(t, s["precision"], s["recall"], s["f1"], s["support"]) for t, s in scores["per_type"].items()]
    rows.append(("micro avg", scores["precision"], scores["recall"], scores["f1"], scores["support"]))
    width = max([len("micro avg"), *(len(r[0]) for r in rows)])
    lines = [f"{'':<{width}}  {'precision':>9}  {'recall':>9}  {'f1':>9}  {'support':>7}"]
    for name, precision, recall, f1, support in rows:
        lines.append(f"{name:<{width}}  {precision:>9.{digits}f}  {recall:>9.{digits}f}  {f1:>9.{digits}f}  {support:>7}")
    return "\n".join(lines)
