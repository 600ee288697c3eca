"""Measured statistics of a shards directory: what the corpus holds and what masking does to it."""

import numpy as np

from keras_mlm.data.dataset import read_rows


def masking_statistics(directory, masker, min_tokens=100_000, batch_size=64, show_rows=3):
    """Masks rows of `directory` until at least `min_tokens` candidate tokens were seen; counts outcomes.

    Fractions of the selected tokens: `mask_fraction` became [MASK], `random_fraction` became another
    token, `keep_fraction` stayed (a random draw that hits the original token counts as kept).
    """
    special = np.zeros(masker.vocabulary_size, bool)
    special[list(masker.special_token_ids)] = True
    rows = read_rows(directory, masker.sequence_length).batch(batch_size).repeat()
    counts = dict(rows=0, candidates=0, selected=0, masked=0, random=0, kept=0, specials_selected=0)
    examples = []
    for step, ids in enumerate(rows):
        x, mask_ids, weights = masker(ids, step=step)
        ids = ids.numpy()
        positions = x["mask_positions"].numpy()
        new_ids = x["token_ids"].numpy()
        live = weights.numpy() > 0
        original = np.take_along_axis(ids, positions, axis=1)
        became = np.take_along_axis(new_ids, positions, axis=1)
        assert np.array_equal(original[live], mask_ids.numpy()[live]), "mask_ids must be the original ids"
        counts["rows"] += len(ids)
        counts["candidates"] += int(np.count_nonzero(~special[ids]))
        counts["selected"] += int(live.sum())
        counts["specials_selected"] += int(np.count_nonzero(special[original[live]]))
        counts["masked"] += int(np.count_nonzero(became[live] == masker.mask_token_id))
        counts["kept"] += int(np.count_nonzero(became[live] == original[live]))
        counts["random"] += int(np.count_nonzero((became[live] != original[live]) & (became[live] != masker.mask_token_id)))
        for row in range(len(ids)):
            if len(examples) < show_rows:
                examples.append({"original": ids[row], "masked": new_ids[row], "positions": positions[row][live[row]]})
        if counts["candidates"] >= min_tokens:
            break
    selected = max(counts["selected"], 1)
    return {
        "sample_rows": counts["rows"],
        "sample_tokens": counts["candidates"],
        "selected_fraction": counts["selected"] / max(counts["candidates"], 1),
        "mask_fraction": counts["masked"] / selected,
        "random_fraction": counts["random"] / selected,
        "keep_fraction": counts["kept"] / selected,
        "specials_selected": counts["specials_selected"],
        "masks_per_row": counts["selected"] / max(counts["rows"], 1),
        "mask_slots": masker.max_selections,
    }, examples


def render_row(example, tokens):
    """A row as text, each masked position shown as `[original->became]`."""
    marked = set(int(p) for p in example["positions"])
    words = []
    for position, (was, now) in enumerate(zip(example["original"], example["masked"])):
        if tokens[was] == "[PAD]":
            break
        words.append(f"[{tokens[was]}->{tokens[now]}]" if position in marked else tokens[was])
    return " ".join(words)
