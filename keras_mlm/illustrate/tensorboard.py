"""The illustration during pre-training: an image of one probe sentence and masked accuracy split by
what masking made of each target ([MASK], a random token, kept), written to TensorBoard.

    from keras_mlm.illustrate.tensorboard import IllustrationSamples
    probe_batch = masker(rows, step=0)  # any fixed (x, mask_ids, mask_weights) from the run's masker
    callbacks.append(IllustrationSamples(os.path.join(run_dir, "logs", "train"), every=500, tokens=tokens,
                                         sequence_length=seq_len, sentence="the cat sat on the mat",
                                         batch=probe_batch, masking=config.masking))

The three accuracies tell the corruptions apart: a [MASK] target must be guessed from context, a
kept one is visible (and usually easy), a random one is a wrong token the model must see through.
"""

import keras
import numpy as np
import tensorflow as tf

from keras_mlm.illustrate.illustration import KINDS, corruption_kinds
from keras_mlm.masking import MaskingConfig
from keras_mlm.tokenizers.vocab import MASK

IMAGE_TAG, TEXT_TAG, ACCURACY_TAG = "illustration", "illustration/predictions", "masked_accuracy_by_kind"


def accuracy_by_corruption(model, batch, mask_token_id):
    """A masked batch (x, mask_ids, mask_weights) -> {kind: {"accuracy": float or None, "count": int}}:
    the top-1 accuracy of `model` (a MaskedLM) over the used slots of each kind (None when it has none)."""
    x, mask_ids, weights = batch
    logits = model(x, training=False)  # (batch, n, vocab)
    predicted = tf.argmax(logits, axis=-1, output_type=tf.int32)  # (batch, n)
    hits = tf.equal(predicted, tf.cast(mask_ids, tf.int32)).numpy()
    kinds = corruption_kinds(x["token_ids"], x["mask_positions"], mask_ids, mask_token_id).numpy()
    used = np.asarray(weights) > 0
    result = {}
    for index, kind in enumerate(KINDS):
        chosen = used & (kinds == index)
        count = int(chosen.sum())
        result[kind] = {"accuracy": float(hits[chosen].mean()) if count else None, "count": count}
    return result


def illustration_image(illustrator, text, seed=0, top_k=5, layer=-1, width=None):
    """The picture of `text` (an `Illustrator` holds the model) as a (1, height, width, 3) uint8 tensor
    for `tf.summary.image`; also returns the `Illustration`."""
    from keras_mlm.illustrate.figure import DEFAULT_WIDTH
    from keras_mlm.illustrate.render import to_png

    example = illustrator(text, seed=seed, top_k=top_k, layer=layer)
    png = to_png(example, width or DEFAULT_WIDTH)
    return tf.io.decode_png(png, channels=3)[None], example


def predictions_markdown(example):
    """The probe's targets as a TensorBoard text (markdown) table."""
    lines = ["| position | true | model saw | kind | predictions | loss |", "|---|---|---|---|---|---|"]
    for t in example.targets:
        guesses = ", ".join(f"{token} ({p:.2f})" for token, p in t.predictions)
        loss = "" if t.loss is None else f"{t.loss:.3f}"
        lines.append(f"| {t.position} | {t.token or '?'} | {t.seen} | {t.kind} | {guesses} | {loss} |")
    return "\n".join(lines)


class IllustrationSamples(keras.callbacks.Callback):
    """Every `every` optimizer steps writes to TensorBoard under `log_dir`: the illustration of
    `sentence` (image "illustration", same masking seed each time so the pictures compare), its
    predictions as text, and, with a fixed masked `batch`, the masked accuracy per corruption kind
    (scalars "masked_accuracy_by_kind/mask", ".../random", ".../kept").

    Args:
        log_dir: TensorBoard folder (e.g. RUN_DIR/logs/train).
        every: steps between samples.
        tokens, sequence_length, masking, lowercase: the run's vocabulary, row length, `MaskingConfig`
            and casing (as `Illustrator`).
        sentence: the probe sentence (with [MASK]s, or without to let the run's masking pick).
        batch: (x, mask_ids, mask_weights) from the run's masker, or None for no accuracy scalars.
        seed, top_k, layer, width: as `Illustrator` / `render.to_png`.
        enabled: False writes nothing (e.g. on non-chief workers).
    """

    def __init__(self, log_dir, every, tokens, sequence_length, sentence, batch=None, masking=MaskingConfig(),  # noqa: B008 (frozen)
                 lowercase=None, seed=0, top_k=5, layer=-1, width=None, enabled=True):
        super().__init__()
        self.every, self.tokens, self.sequence_length = int(every), list(tokens), int(sequence_length)
        self.sentence, self.batch, self.masking, self.lowercase = sentence, batch, masking, lowercase
        self.seed, self.top_k, self.layer, self.width = seed, top_k, layer, width
        self.mask_token_id = self.tokens.index(MASK)
        self.writer = tf.summary.create_file_writer(log_dir) if enabled and every > 0 else None
        self._illustrator = None

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if self.writer is None or step % self.every:
            return
        self.write(step)

    def write(self, step):
        """Writes the image, the text and the scalars at `step` now."""
        from keras_mlm.illustrate.illustration import Illustrator

        if self._illustrator is None:  # the model exists only once training starts
            self._illustrator = Illustrator(self.model, self.tokens, self.sequence_length, self.masking, self.lowercase)
        image, example = illustration_image(self._illustrator, self.sentence, self.seed, self.top_k, self.layer, self.width)
        accuracy = accuracy_by_corruption(self.model, self.batch, self.mask_token_id) if self.batch is not None else {}
        with self.writer.as_default(step=step):
            tf.summary.image(IMAGE_TAG, image, description=f"the masking, attention and predictions of: {self.sentence}")
            tf.summary.text(TEXT_TAG, predictions_markdown(example))
            for kind, entry in accuracy.items():
                if entry["accuracy"] is not None:
                    tf.summary.scalar(f"{ACCURACY_TAG}/{kind}", entry["accuracy"])
        self.writer.flush()
