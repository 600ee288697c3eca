"""What masking and the model do to one sentence: the numbers behind the picture.

    illustrator = Illustrator(run.model, run.tokens, run.sequence_length, masking=MaskingConfig(), lowercase=run.lowercase)
    example = illustrator("the cat sat on a mat", seed=0, top_k=5, layer=-1)
    example.targets[0].kind         # "mask", "random" or "kept": what masking made of the token
    example.targets[0].attention    # the weights its position gives every input token (sum 1)
    example.targets[0].predictions  # top-k (token, probability), special tokens excluded
    example.targets[0].loss         # -log p(true token), the training loss of that slot

Without [MASK] in the text the run's own masker (its `masking` settings, deterministic for `seed`)
picks the targets and corrupts them; with [MASK]s written in the text those positions are the
targets (their true tokens are unknown unless `answers` names them).
"""

import dataclasses
import os

import numpy as np
import tensorflow as tf

from keras_mlm.errors import UserInputError
from keras_mlm.illustrate.attention import AttentionProbe, resolve_layer
from keras_mlm.masking import MaskingConfig, MLMMasker

KINDS = ("mask", "random", "kept")
"""What a selected token became: [MASK], a random token, or itself."""


def corruption_kinds(token_ids, mask_positions, mask_ids, mask_token_id):
    """What each slot became, from the masker's outputs: (batch, seq) masked ids, (batch, n) positions
    and (batch, n) original ids -> (batch, n) int32 index into KINDS (0 [MASK], 1 random, 2 kept).

    The masker does not report its choice, so it is read back: the masked row holds [MASK] -> "mask",
    the original id -> "kept", anything else -> "random". A random draw that happens to pick the
    original token counts as kept, which is what it is to the model.
    """
    seen = tf.gather(tf.convert_to_tensor(token_ids), tf.convert_to_tensor(mask_positions), batch_dims=1)  # (batch, n)
    mask_ids = tf.cast(mask_ids, seen.dtype)
    kept = tf.where(tf.equal(seen, mask_ids), KINDS.index("kept"), KINDS.index("random"))
    return tf.cast(tf.where(tf.equal(seen, mask_token_id), KINDS.index("mask"), kept), tf.int32)


@dataclasses.dataclass(frozen=True)
class Target:
    """One predicted position."""

    position: int  # index in the model's input ([CLS] at 0)
    token: str | None  # the true token; None for a [MASK] written in the text without an answer
    seen: str  # what the model saw there
    kind: str  # one of KINDS
    attention: tuple  # weights the position gives each input token ([CLS] ... [SEP]), mean over heads
    predictions: tuple  # ((token, probability), ...) best first, special tokens excluded (as fill-mask)
    true_probability: float | None  # p(true token) in the same distribution as `predictions`
    true_rank: int | None  # 1 = the best prediction
    loss: float | None  # -log p(true token) over the full vocabulary: the training loss of this slot

    @property
    def left(self):
        """Attention to the tokens before this position."""
        return float(sum(self.attention[: self.position]))

    @property
    def right(self):
        """Attention to the tokens after this position."""
        return float(sum(self.attention[self.position + 1 :]))

    @property
    def itself(self):
        return float(self.attention[self.position])


@dataclasses.dataclass(frozen=True)
class Illustration:
    text: str
    tokens: tuple  # the input tokens with [CLS] and [SEP], no padding
    seen: tuple  # the tokens the model saw (after masking)
    targets: tuple  # of Target, by position
    source: str  # "masker" (the run's masking picked the targets) or "text" ([MASK]s in the text)
    masking: MaskingConfig
    seed: int
    layer: int  # 0-based
    num_layers: int
    num_heads: int
    title: str = ""  # e.g. the run folder's name

    @property
    def loss(self):
        """Mean loss over the targets whose true token is known (None without any)."""
        losses = [t.loss for t in self.targets if t.loss is not None]
        return float(np.mean(losses)) if losses else None

    def summary(self):
        """A small JSON-able dict: tokens, masked positions, predictions, loss."""
        return {
            "text": self.text,
            "tokens": list(self.tokens),
            "masked_positions": [t.position for t in self.targets],
            "kinds": [t.kind for t in self.targets],
            "predictions": [
                {
                    "position": t.position,
                    "token": t.token,
                    "seen": t.seen,
                    "kind": t.kind,
                    "predictions": [{"token": tok, "probability": p} for tok, p in t.predictions],
                    "loss": t.loss,
                }
                for t in self.targets
            ],
            "loss": self.loss,
        }


class Illustrator:
    """Masks a sentence as the run's masking would and records the model's attention and predictions.

    Args:
        model: a `MaskedLM` (its `encoder` a `BertEncoder`).
        tokens: the vocabulary (list, id = index).
        sequence_length: rows the model was trained on (the masker's row length).
        masking: the run's `MaskingConfig`.
        lowercase: the tokenizer's casing (None infers it from the vocabulary).
    """

    def __init__(self, model, tokens, sequence_length, masking=MaskingConfig(), lowercase=None):  # noqa: B008 (frozen)
        from keras_mlm.inference.fill_mask import FillMask

        if getattr(model, "encoder", None) is None:
            raise UserInputError(f"{type(model).__name__}: the illustration needs a masked LM with an `encoder` (a MaskedLM)")
        self.model, self.tokens, self.masking = model, list(tokens), masking
        self.fill = FillMask(model, self.tokens, sequence_length, lowercase)
        self.sequence_length = self.fill.sequence_length
        self._probes = {}

    def probe(self, layer):
        """The (cached) `AttentionProbe` of `layer`."""
        encoder = self.model.encoder
        blocks = getattr(encoder, "transformer_blocks", None)
        index = resolve_layer(len(blocks), layer) if blocks else layer  # AttentionProbe names what is missing
        if index not in self._probes:
            self._probes[index] = AttentionProbe(encoder, index)
        return self._probes[index]

    def encode(self, text):
        """The text -> (1, sequence_length) ids: [CLS] pieces [SEP], padded; checks length and content."""
        if not isinstance(text, str) or not text.strip():
            raise UserInputError("empty text: give a sentence to illustrate")
        ids = [self.fill.cls_id] + [int(t) for t in self.fill.tokenizer([text])[0]] + [self.fill.sep_id]
        if len(ids) > self.sequence_length:
            raise UserInputError(
                f"the text is {len(ids)} tokens long with [CLS]/[SEP]; the model takes at most {self.sequence_length} "
                "(its rows' length): give a shorter sentence"
            )
        row = np.full((1, self.sequence_length), self.fill.pad_id, np.int32)
        row[0, : len(ids)] = ids
        return row, len(ids)

    def _targets_from_masker(self, row, seed):
        masker = MLMMasker.from_vocabulary(self.tokens, self.sequence_length, self.masking, seed=seed, deterministic=True)
        x, y, weights = masker(row)
        used = weights.numpy()[0] > 0
        positions = x["mask_positions"].numpy()[0][used]
        if not len(positions):
            raise UserInputError("the text has no token that masking may select (only special tokens)")
        kinds = corruption_kinds(x["token_ids"], x["mask_positions"], y, self.fill.mask_id).numpy()[0][used]
        truths = y.numpy()[0][used]
        return x["token_ids"].numpy(), [int(p) for p in positions], [int(t) for t in truths], [KINDS[k] for k in kinds]

    def _targets_from_text(self, row, answers):
        positions = [int(p) for p in np.flatnonzero(row[0] == self.fill.mask_id)]
        truths = [None] * len(positions)
        if answers:
            if len(answers) != len(positions):
                raise UserInputError(f"{len(answers)} answer(s) for {len(positions)} [MASK](s) in the text: give one per [MASK]")
            index = {t: i for i, t in enumerate(self.tokens)}
            truths = []
            for answer in answers:
                if answer not in index or self.fill.special[index[answer]]:
                    raise UserInputError(f"answer {answer!r} is not a (non-special) token of the vocabulary")
                truths.append(index[answer])
        return row.copy(), positions, truths, ["mask"] * len(positions)

    def __call__(self, text, seed=0, top_k=5, layer=-1, answers=None, title=""):
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
            raise UserInputError(f"--seed must be an integer, got {seed!r}")
        if not isinstance(top_k, (int, np.integer)) or top_k < 1:
            raise UserInputError(f"--top-k must be at least 1, got {top_k!r}")
        probe = self.probe(layer)
        row, length = self.encode(text)
        if self.fill.mask_id in row[0]:
            source = "text"
            seen_row, positions, truths, kinds = self._targets_from_text(row, answers)
        else:
            if answers:
                raise UserInputError("answers are for [MASK]s written in the text; this text has none")
            source = "masker"
            seen_row, positions, truths, kinds = self._targets_from_masker(row, int(seed))

        # The model on the masked row: attention of the chosen layer, probabilities at the targets.
        slots = np.asarray([positions], np.int32)  # (1, n)
        inputs = {
            "token_ids": tf.constant(seen_row),
            "segment_ids": tf.zeros_like(seen_row),
            "padding_mask": tf.constant(seen_row != self.fill.pad_id),
            "mask_positions": tf.constant(slots),
        }
        attention = probe(inputs)[0].mean(axis=0)  # (seq, seq), mean over heads
        words = self.fill.probabilities(seen_row, slots)[0]  # (n, vocab), specials excluded and renormalised
        logits = self.model(inputs, training=False)[0]  # (n, vocab)
        log_probabilities = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1).numpy()

        targets = []
        for slot, (position, truth, kind) in enumerate(zip(positions, truths, kinds)):
            order = np.argsort(-words[slot], kind="stable")
            predictions = tuple((self.tokens[j], float(words[slot, j])) for j in order[:top_k])
            known = truth is not None
            targets.append(
                Target(
                    position=position,
                    token=self.tokens[truth] if known else None,
                    seen=self.tokens[seen_row[0, position]],
                    kind=kind,
                    attention=tuple(float(w) for w in attention[position, :length]),
                    predictions=predictions,
                    true_probability=float(words[slot, truth]) if known else None,
                    true_rank=int(np.flatnonzero(order == truth)[0]) + 1 if known else None,
                    loss=float(-log_probabilities[slot, truth]) if known else None,
                )
            )
        return Illustration(
            text=text,
            tokens=tuple(self.tokens[i] for i in row[0, :length]),
            seen=tuple(self.tokens[i] for i in seen_row[0, :length]),
            targets=tuple(targets),
            source=source,
            masking=self.masking,
            seed=int(seed),
            layer=probe.layer,
            num_layers=probe.num_layers,
            num_heads=probe.num_heads,
            title=title,
        )


def masking_config_of(run_config):
    """The `masking` section of a run's config.yaml as a `MaskingConfig` (defaults when absent)."""
    section = run_config.get("masking") or {}
    fields = {f.name for f in dataclasses.fields(MaskingConfig)}
    unknown = sorted(set(section) - fields)
    if unknown:
        raise UserInputError(f"config.yaml masking: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(fields))}")
    return MaskingConfig(**section)


def illustrate_run(run, text, out_path, seed=0, top_k=5, layer=-1, answers=None, width=None, model_path=None):
    """Writes the picture of `text` for a run (a folder or a `LoadedRun`) to `out_path` (.svg, .png
    or .html) and returns (path, summary dict: tokens, masked positions, predictions, loss)."""
    from keras_mlm.illustrate.figure import DEFAULT_WIDTH
    from keras_mlm.illustrate.render import output_format, write_figure
    from keras_mlm.inference.run import load_run

    output_format(out_path)  # an unknown suffix or a missing folder fails before the model loads
    if not hasattr(run, "model"):
        run = load_run(run, model_path=model_path)
    illustrator = Illustrator(run.model, run.tokens, run.sequence_length, masking_config_of(run.config), run.lowercase)
    title = os.path.basename(os.path.normpath(run.directory)) if getattr(run, "directory", None) else ""
    example = illustrator(text, seed=seed, top_k=top_k, layer=layer, answers=answers, title=title)
    path = write_figure(example, out_path, width=DEFAULT_WIDTH if width is None else width)
    return path, {**example.summary(), "path": path}


__all__ = ["KINDS", "Illustration", "Illustrator", "Target", "corruption_kinds", "illustrate_run", "masking_config_of"]
