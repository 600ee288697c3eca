"""Sentence pairs (NSP, SOP): A and B come from the right documents, labels are fair, all is reproducible.

The corpus gives every (document, word position) its own token, so each id in a pair row says exactly
which document and which place in it the text came from.
"""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from keras_mlm.data.dataset import read_rows
from keras_mlm.data.pairs import PairMasker, SentencePairs, pair_pretraining_dataset
from keras_mlm.data.prepare import DataConfig, prepare
from keras_mlm.errors import UserInputError
from keras_mlm.masking import MaskingConfig, MLMMasker
from keras_mlm.tokenizers import SPECIAL_TOKENS

PAD, CLS, SEP = 0, 2, 3
SEQ_LEN, BATCH = 16, 16
DOC_LENGTHS = [3, 40, 7, 22, 1, 55, 12, 9, 30, 5, 18, 2, 26, 14, 60, 8, 11, 35, 4, 20, 16, 6, 28, 10]  # rows hold 15 ids
WORDS = ["".join(letters) for letters in itertools.product("bcdfghjklmnpqrstvwxz", repeat=3)][: sum(DOC_LENGTHS)]
VOCAB = list(SPECIAL_TOKENS) + WORDS
FIRST = len(SPECIAL_TOKENS)
# Token id -> (document, position in it).
OWNER = {FIRST + i: (d, k) for i, (d, k) in enumerate((d, k) for d, n in enumerate(DOC_LENGTHS) for k in range(n))}


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pairs")
    words = iter(WORDS)
    documents = [" ".join(next(words) for _ in range(n)) for n in DOC_LENGTHS]
    (folder / "corpus.txt").write_text("\n\n".join(documents) + "\n")
    prepare([folder / "corpus.txt"], VOCAB, folder / "shards", DataConfig(seq_len=SEQ_LEN, rows_per_shard=7))
    return str(folder / "shards")


@pytest.fixture(scope="module")
def rows(shards):
    return np.stack(list(read_rows(shards).as_numpy_iterator()))  # (32, 16), in corpus order


def segments(token_ids, segment_ids):
    """The (first, second) text of a pair row as lists of (document, position), checking its layout."""
    ids, segment = list(token_ids), list(segment_ids)
    assert ids[0] == CLS and ids.count(SEP) == 2, ids
    first_sep = ids.index(SEP)
    second_sep = ids.index(SEP, first_sep + 1)
    assert all(i == PAD for i in ids[second_sep + 1 :]) and all(i >= FIRST for i in ids[1:second_sep] if i != SEP), ids
    assert segment == [0] * (first_sep + 1) + [1] * (second_sep - first_sep) + [0] * (len(ids) - second_sep - 1)
    return [OWNER[i] for i in ids[1:first_sep]], [OWNER[i] for i in ids[first_sep + 1 : second_sep]]


def contiguous(text):
    """One document, consecutive positions."""
    return len({d for d, _ in text}) == 1 and [k for _, k in text] == list(range(text[0][1], text[0][1] + len(text)))


def run(objective, rows, steps, seed=0):
    pairs = SentencePairs(objective, SEQ_LEN, CLS, SEP, PAD, seed=seed)
    for step in range(steps):
        batch = rows[np.random.default_rng(step).permutation(len(rows))[:BATCH]]
        out = {k: v.numpy() for k, v in pairs(batch, step).items()}
        yield from zip(out["token_ids"], out["segment_ids"], out["pair_labels"], out["pair_weights"])


def test_nsp_pairs_come_from_the_right_documents(rows):
    labels, other_document = [], 0
    for token_ids, segment_ids, label, weight in run("nsp", rows, steps=50):
        if not weight:
            continue
        a, b = segments(token_ids, segment_ids)
        assert a and b and contiguous(a) and contiguous(b)
        assert len(a) + len(b) <= SEQ_LEN - 3
        if label == 0:  # is next: B continues A in the same document
            assert contiguous(a + b), (a, b)
        else:
            other_document += a[0][0] != b[0][0]
        labels.append(label)
    labels = np.array(labels)
    # 800 rows; the last one ([CLS] [SEP], no text) makes no pair, nor does a negative drawn from it: 41.
    assert len(labels) > 700
    # Half are negatives: 800 coin flips, standard deviation 0.018; tolerance 3.4 of them.
    assert abs(labels.mean() - 0.5) < 0.06, labels.mean()
    # A random other row holds another document unless both rows cut one long document (5 of the 24
    # documents span 3 rows or more): seen 96% (378 of 393).
    assert other_document > 0.9 * labels.sum(), (other_document, labels.sum())


def test_sop_pairs_are_one_document_in_order_or_exactly_swapped(rows):
    labels = []
    for token_ids, segment_ids, label, weight in run("sop", rows, steps=50):
        if not weight:
            continue
        first, second = segments(token_ids, segment_ids)
        a, b = (second, first) if label == 1 else (first, second)
        assert a and b and contiguous(a + b), (label, first, second)  # B is the text right after A
        labels.append(label)
    assert abs(np.mean(labels) - 0.5) < 0.06, np.mean(labels)  # as above


def test_the_longest_piece_is_cut_and_trimmed_at_the_outer_ends():
    """Exact: a full row of one document (15 ids) loses 2 ids to fit [CLS] A [SEP] B [SEP] in 16: the
    longer side loses them (A at its start, B at its end) until the sides are even. A row whose pieces
    are all shorter than 2 ids makes no pair (weight 0)."""
    full = np.array([[CLS, *range(100, 115)]], np.int32)
    mixed = np.array([[CLS, 200, SEP, 300, 301, 302, 303, SEP, 400, 401, SEP, 0, 0, 0, 0, 0]], np.int32)
    short = np.array([[CLS, 500, SEP, 600, SEP] + [0] * 11], np.int32)
    pairs = SentencePairs("sop", SEQ_LEN, CLS, SEP, PAD, seed=3)
    cuts = set()
    for step in range(40):
        out = pairs(np.concatenate([full, mixed, short]), step)
        ids, labels, weights = out["token_ids"].numpy(), out["pair_labels"].numpy(), out["pair_weights"].numpy()
        np.testing.assert_array_equal(weights, [1, 1, 0])
        seps = np.flatnonzero(ids[0] == SEP)
        first, second = list(ids[0, 1 : seps[0]]), list(ids[0, seps[0] + 1 : seps[1]])
        a, b = (second, first) if labels[0] else (first, second)
        cut = a[-1] + 1 - 100  # A = piece[:cut], B = piece[cut:] before trimming
        short_side = min(cut, 15 - cut, 13 // 2)
        long_side = min(max(cut, 15 - cut), 13 - short_side)
        kept_a, kept_b = (short_side, long_side) if cut <= 15 - cut else (long_side, short_side)
        assert a == list(range(100 + cut - kept_a, 100 + cut)) and b == list(range(100 + cut, 100 + cut + kept_b))
        cuts.add(cut)
        assert sorted(i for i in ids[1] if i >= 100) == [300, 301, 302, 303]  # the mixed row's longest piece
        assert [i for i in ids[2] if i >= 100] == [500] and list(ids[2]).count(SEP) == 2
    assert len(cuts) > 8  # cuts drawn over [1, 14]


def test_pairs_are_a_function_of_seed_and_step(rows):
    batch = rows[:BATCH]
    pairs = SentencePairs("nsp", SEQ_LEN, CLS, SEP, PAD, seed=5)
    first, again = pairs(batch, 7), SentencePairs("nsp", SEQ_LEN, CLS, SEP, PAD, seed=5)(batch, tf.constant(7, tf.int64))
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    np.testing.assert_array_equal(tf.function(pairs.__call__)(batch, tf.constant(7, tf.int64))["token_ids"],
                                  first["token_ids"])
    assert (pairs(batch, 8)["token_ids"].numpy() != first["token_ids"].numpy()).any()
    other_seed = SentencePairs("nsp", SEQ_LEN, CLS, SEP, PAD, seed=6)(batch, 7)
    assert (other_seed["token_ids"].numpy() != first["token_ids"].numpy()).any()


def masker(seed=0, config=MaskingConfig()):
    return MLMMasker.from_vocabulary(VOCAB, SEQ_LEN, config, seed=seed)


def unmasked(x, y, weights):
    """The pair rows before masking: the original ids written back at the used mask slots."""
    ids = x["token_ids"].numpy().copy()
    for row, (positions, ids_, used) in enumerate(zip(x["mask_positions"].numpy(), y["mask_ids"].numpy(),
                                                      weights["mask_weights"].numpy())):
        ids[row, positions[used > 0]] = ids_[used > 0]
    return ids


def test_dataset_masks_pair_rows_and_never_their_specials(shards):
    dataset = pair_pretraining_dataset(shards, BATCH, masker(config=MaskingConfig(selection_rate=0.5)), "sop",
                                       shuffle_buffer=100, vocabulary=VOCAB)
    for x, y, weights in dataset.take(6):
        assert sorted(x) == ["mask_positions", "padding_mask", "segment_ids", "token_ids"]
        assert sorted(y) == ["mask_ids", "pair_labels"] and sorted(weights) == ["mask_weights", "pair_weights"]
        assert x["token_ids"].shape == (BATCH, SEQ_LEN) and y["pair_labels"].shape == (BATCH,)
        original = unmasked(x, y, weights)
        chosen = y["mask_ids"].numpy()[weights["mask_weights"].numpy() > 0]
        assert len(chosen) > BATCH and (chosen >= FIRST).all()  # specials are never masked
        for row, segment_ids, label, weight in zip(original, x["segment_ids"].numpy(), y["pair_labels"].numpy(),
                                                   weights["pair_weights"].numpy()):
            if weight:
                first, second = segments(row, segment_ids)
                a, b = (second, first) if label else (first, second)
                assert contiguous(a + b)
        np.testing.assert_array_equal(x["padding_mask"], original != PAD)


def test_dataset_resumes_exactly(shards):
    def batches(start_step, n):
        dataset = pair_pretraining_dataset(shards, 4, masker(seed=1), "nsp", seed=2, shuffle_buffer=20, start_step=start_step)
        return list(dataset.take(n).as_numpy_iterator())

    whole, resumed = batches(0, 12), batches(9, 3)  # 32 rows, 8 batches a pass: step 9 is in the second
    for expected, got in zip(whole[9:], resumed):
        for part_expected, part_got in zip(expected, got):
            for key in part_expected:
                np.testing.assert_array_equal(part_got[key], part_expected[key])
    assert len(resumed) == 3


def test_dataset_refuses_what_cannot_make_pairs(shards):
    with pytest.raises(UserInputError, match="at least 2 rows"):
        pair_pretraining_dataset(shards, 1, masker(), "nsp")
    with pytest.raises(UserInputError, match="nsp, sop"):
        pair_pretraining_dataset(shards, 4, masker(), "mlm")
    with pytest.raises(UserInputError, match="another vocabulary"):
        PairMasker(SentencePairs("sop", SEQ_LEN, CLS, SEP, 9, seed=0), masker())
