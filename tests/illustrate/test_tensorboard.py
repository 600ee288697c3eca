"""TensorBoard during pre-training: corruption kinds read back from the masker's outputs, accuracy per
kind, and the callback's event files (image, text, scalars at optimizer steps)."""

import glob
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_mlm.illustrate.illustration import KINDS, corruption_kinds
from keras_mlm.illustrate.tensorboard import ACCURACY_TAG, IMAGE_TAG, TEXT_TAG, IllustrationSamples, accuracy_by_corruption
from keras_mlm.masking import MaskingConfig, MLMMasker

MASK_ID = 4
MASK, RANDOM, KEPT = (KINDS.index(k) for k in ("mask", "random", "kept"))


def test_corruption_kinds_exact():
    token_ids = tf.constant([[2, 4, 7, 9, 3, 0], [2, 8, 4, 4, 3, 0]])  # masked rows
    mask_positions = tf.constant([[1, 2, 3], [2, 3, 1]])
    mask_ids = tf.constant([[6, 7, 5], [9, 4, 8]])  # originals; slot (1, 1) was a [MASK] in the text itself
    kinds = corruption_kinds(token_ids, mask_positions, mask_ids, MASK_ID).numpy()
    assert kinds.tolist() == [[MASK, KEPT, RANDOM], [MASK, MASK, KEPT]]


class FixedLogits:
    """A stand-in masked LM returning given logits."""

    def __init__(self, logits):
        self.logits = tf.constant(logits, tf.float32)

    def __call__(self, x, training=False):
        return self.logits


def test_accuracy_by_corruption_exact():
    x = {"token_ids": tf.constant([[2, 4, 7, 9, 4, 3]]), "mask_positions": tf.constant([[1, 2, 3, 4, 0]])}
    mask_ids = tf.constant([[6, 7, 5, 8, 0]])  # kinds: mask, kept, random, mask, (unused slot)
    weights = np.array([[1, 1, 1, 1, 0]], np.float32)
    predicted = [6, 7, 9, 5, 0]  # right, right, wrong, wrong, (ignored)
    logits = np.eye(10, dtype=np.float32)[predicted][None]  # (1, 5, 10)
    result = accuracy_by_corruption(FixedLogits(logits), (x, mask_ids, weights), MASK_ID)
    assert result == {
        "mask": {"accuracy": 0.5, "count": 2},
        "random": {"accuracy": 0.0, "count": 1},
        "kept": {"accuracy": 1.0, "count": 1},
    }
    no_random = accuracy_by_corruption(FixedLogits(logits), (x, mask_ids, np.array([[1, 1, 0, 1, 0]], np.float32)), MASK_ID)
    assert no_random["random"] == {"accuracy": None, "count": 0}


def test_kinds_read_back_follow_the_80_10_10_split():
    """Seeded: 400 rows x ~7 selections. A random draw equal to the original (1 in 20 words here)
    reads as kept: expected mask 0.80, random 0.10 * 19/20 = 0.095, kept 0.105 (tolerance 0.02)."""
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(20)]
    masker = MLMMasker.from_vocabulary(tokens, 48, MaskingConfig(), seed=3)
    rows = np.random.default_rng(0).integers(5, 25, (400, 48)).astype(np.int32)
    rows[:, 0], rows[:, -1] = 2, 3
    x, y, weights = masker(rows)
    kinds = corruption_kinds(x["token_ids"], x["mask_positions"], y, 4).numpy()[weights.numpy() > 0]
    shares = np.bincount(kinds, minlength=3) / len(kinds)
    assert len(kinds) > 2500
    np.testing.assert_allclose(shares[[MASK, RANDOM, KEPT]], [0.80, 0.095, 0.105], atol=0.02)


def read_events(log_dir):
    """{tag: [(step, plugin), ...]} from every event file under log_dir."""
    found = {}
    for path in sorted(glob.glob(os.path.join(log_dir, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                found.setdefault(value.tag, []).append((event.step, value.metadata.plugin_data.plugin_name, value))
    return found


@pytest.mark.parametrize("sentence", ["the small cat ran to the park", "the [MASK] sat on a mat"])
def test_callback_writes_image_text_and_accuracy_by_kind(trained_run, tmp_path, sentence):
    from keras_mlm.inference.run import load_run
    from keras_mlm.losses import MaskedLMLoss

    run_dir, _ = trained_run
    run = load_run(str(run_dir))  # its own copy: fit below must not touch the shared one
    model = run.model
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0), loss=MaskedLMLoss())
    masker = MLMMasker.from_vocabulary(run.tokens, 48, MaskingConfig(), seed=0)
    ids = {t: i for i, t in enumerate(run.tokens)}
    words = "the cat sat on a mat the dog ran to the park the bird sang in a tree".split()
    rows = np.zeros((8, 48), np.int32)
    for r in range(8):
        row = [ids["[CLS]"]] + [ids[w] for w in np.roll(words, r)] + [ids["[SEP]"]]
        rows[r, : len(row)] = row
    probe_batch = masker(rows, step=0)
    dataset = tf.data.Dataset.from_tensor_slices(rows).batch(4).repeat().enumerate().map(lambda step, r: masker(r, step=step))

    log_dir = str(tmp_path / "logs")
    samples = IllustrationSamples(log_dir, every=2, tokens=run.tokens, sequence_length=48, sentence=sentence, batch=probe_batch)
    model.fit(dataset, steps_per_epoch=4, epochs=1, callbacks=[samples], verbose=0, shuffle=False)

    events = read_events(log_dir)
    assert [(step, plugin) for step, plugin, _ in events[IMAGE_TAG]] == [(2, "images"), (4, "images")]
    assert [(step, plugin) for step, plugin, _ in events[TEXT_TAG]] == [(2, "text"), (4, "text")]
    image = tf.make_ndarray(events[IMAGE_TAG][0][2].tensor)  # [width, height, png bytes...]
    width, height = int(image[0]), int(image[1])
    decoded = tf.io.decode_png(image[2]).numpy()
    assert decoded.shape == (height, width, 3) and width == 960 and height > 300
    table = tf.make_ndarray(events[TEXT_TAG][0][2].tensor).item().decode()
    assert table.startswith("| position | true | model saw | kind | predictions | loss |")
    # The probe batch (seed 0, step 0) has 24 selections: 19 [MASK], 2 random, 3 kept; each kind its curve.
    accuracy = accuracy_by_corruption(model, probe_batch, ids["[MASK]"])
    assert [accuracy[kind]["count"] for kind in KINDS] == [19, 2, 3]
    for kind in KINDS:
        tag = f"{ACCURACY_TAG}/{kind}"
        assert [(step, plugin) for step, plugin, _ in events[tag]] == [(2, "scalars"), (4, "scalars")]
        assert float(tf.make_ndarray(events[tag][-1][2].tensor)) == pytest.approx(accuracy[kind]["accuracy"])
