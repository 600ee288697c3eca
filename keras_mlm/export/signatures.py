"""The signatures a SavedModel offers, one small builder each, listed per model type.

    SIGNATURES[MaskedLM] = (FillMaskText(), FillMask(), Encode())

A builder names its inputs (fixed dtypes, documented shapes) and returns the function computing its
outputs from an `ExportContext`. The order of a model type's list is the preference for
`serving_default`: the first signature the target TF Serving can run. A task model (classifier,
NER, QA) adds its own builders next to the shared ones:

    register_signatures(TextClassifier, (ClassifyText(), Classify(), Encode()))

and the exporter, the serving check, the warm-up requests and models.config need no change.
"""

import abc
import dataclasses
import functools

import numpy as np
import tensorflow as tf

from keras_mlm.errors import UserInputError
from keras_mlm.export import guards
from keras_mlm.models.encoder_base import ENCODER_INPUTS


@dataclasses.dataclass(frozen=True)
class ExportContext:
    """What a signature builder may use: the model, its vocabulary and the run's input settings."""

    model: object
    """The Keras model being exported (its variables are tracked by the archive)."""
    tokens: tuple
    """The vocabulary's pieces, id order."""
    sequence_length: int
    """Row length the model was trained on; every ids input is (batch, sequence_length)."""
    lowercase: object = None
    """Tokenizer lowercasing (None: inferred from the vocabulary, as `FillMask` does)."""
    top_k: int = 5
    """Predictions returned per mask."""
    task: dict = None
    """A task run's config.yaml `task` section (the QA recipe's doc_stride, max_answer_length,
    null_threshold); None for a pre-training run."""
    vocabulary: object = None
    """The `Vocabulary` (any kind) of `tokens`; None: the WordPiece vocabulary of `tokens` and
    `lowercase` (see `text_vocabulary`)."""
    resources: list = dataclasses.field(default_factory=list, repr=False, compare=False)
    """Objects holding TF resources the signatures capture (tokenizer tables, a SentencePiece model),
    which the archive must track; builders add to it. Shared by the copies `dataclasses.replace` makes."""

    def text_vocabulary(self):
        """The `Vocabulary` the text signatures tokenize with: `vocabulary`, or a WordPiece one of `tokens`."""
        from keras_mlm.tokenizers.vocabulary import as_vocabulary

        return self.vocabulary if self.vocabulary is not None else as_vocabulary(list(self.tokens), self.lowercase)

    @functools.cached_property
    def text_packer(self):
        from keras_mlm.export.text_inputs import TextPacker

        packer = TextPacker(self.text_vocabulary(), self.sequence_length)
        self.resources.extend(packer.resources)
        return packer

    @functools.cached_property
    def fill_mask_graph(self):
        from keras_mlm.export.fill_mask_graph import FillMaskGraph

        return FillMaskGraph(self.model, self.text_vocabulary(), self.top_k)

    def check_ids(self, signature, **inputs):
        """Run-time checks of (batch, sequence_length) int32 inputs; returns them, gated on the checks.

        `token_ids` must be valid ids, `segment_ids` in [0, num_segments), `padding_mask` 0 or 1, and
        all of them the same (batch, sequence_length) shape.
        """
        inputs = {k: guards.check_rank(v, 2, f"{signature}: {k}", f"(batch, {self.sequence_length})") for k, v in inputs.items()}
        shape = tf.shape(inputs["token_ids"])
        expected = tf.stack([shape[0], self.sequence_length])
        limits = {
            "token_ids": (len(self.tokens), "an id of the vocabulary"),
            "segment_ids": (max(getattr(self.model_encoder, "num_segments", 2), 1), "a segment id"),  # none (RoBERTa): 0 only
            "padding_mask": (2, "0 (padding) or 1 (token)"),
        }
        checks = []
        for key, value in inputs.items():
            actual = tf.shape(value)
            checks.append(guards.require(
                tf.reduce_all(tf.equal(actual, expected)),
                f"{signature}: {key} must have shape (batch, {self.sequence_length}){'' if key == 'token_ids' else ' like token_ids'}; got",
                actual,
            ))
            limit, what = limits[key]
            in_range = tf.logical_and(value >= 0, value < limit)
            checks.append(guards.require(
                in_range, f"{signature}: every {key} value must be {what}, in [0, {limit}); got", tf.boolean_mask(value, ~in_range),
            ))
        return {k: guards.checked(v, checks) for k, v in inputs.items()}

    @property
    def model_encoder(self):
        return getattr(self.model, "encoder", self.model)


class Signature(abc.ABC):
    """Base of the builders: `name`, documented `inputs`/`outputs` ({name: (dtype, shape, meaning)})."""

    name = ""
    inputs = {}
    outputs = {}

    @abc.abstractmethod
    def input_signature(self, context):
        """[tf.TensorSpec] in argument order; the spec names are the request's input keys."""

    @abc.abstractmethod
    def build(self, context):
        """A function of the inputs (positional, in `input_signature` order) returning a dict of outputs."""

    @abc.abstractmethod
    def example_inputs(self, texts, token_ids):
        """The inputs of a real request for `texts`, packed as `token_ids` (batch, seq) int32: the
        warm-up requests."""

    def describe(self, context):
        """One line per input and output, with the shapes of this export filled in."""
        fill = {"seq": str(context.sequence_length), "k": str(context.fill_mask_graph.top_k)}
        lines = [f"{self.name}:"]
        for kind, table in (("in ", self.inputs), ("out", self.outputs)):
            for key, (dtype, shape, meaning) in table.items():
                lines.append(f"  {kind} {key:<20} {dtype:<7} {shape.format(**fill):<28} {meaning}")
        return "\n".join(lines)


_FILL_MASK_OUTPUTS = {
    "mask_positions": ("int32", "(batch, n_masks)", "position of each [MASK] in the row ([CLS] is 0); -1 = unused slot"),
    "top_k_ids": ("int32", "(batch, n_masks, {k})", "best ids per mask, most likely first; -1 in unused slots"),
    "top_k_probabilities": ("float32", "(batch, n_masks, {k})", "their probabilities (specials excluded); 0 in unused slots"),
}


class FillMaskText(Signature):
    """Raw texts in; tokenization (the vocabulary's own, any kind), packing and mask detection in the graph."""

    name = "fill_mask_text"
    inputs = {"texts": ("string", "(batch,)", "UTF-8 texts, each with at least one [MASK] (BPE: <mask>)")}
    outputs = {
        **_FILL_MASK_OUTPUTS,
        "top_k_tokens": ("string", "(batch, n_masks, {k})", "the tokens of top_k_ids as text; \"\" in unused slots"),
        "token_ids": ("int32", "(batch, {seq})", "the packed row: [CLS] ids [SEP] [PAD]..."),
        "filled": ("string", "(batch,)", "the text with every [MASK] replaced by its best token"),
    }

    def input_signature(self, context):
        return [tf.TensorSpec([None], tf.string, name="texts")]

    def build(self, context):
        packer, fill = context.text_packer, context.fill_mask_graph

        def fill_mask_text(texts):
            token_ids = packer(texts, signature=self.name)  # (batch, seq)
            padding_mask = tf.cast(tf.not_equal(token_ids, packer.pad_id), tf.int32)  # as FillMask: ids != [PAD]
            outputs = fill(token_ids, padding_mask, signature=self.name)
            outputs["top_k_tokens"] = fill.token_strings(outputs["top_k_ids"])
            outputs["token_ids"] = token_ids
            outputs["filled"] = fill.filled_texts(token_ids, outputs["mask_positions"], outputs["top_k_ids"])
            return outputs

        return fill_mask_text

    def example_inputs(self, texts, token_ids):
        return {"texts": np.array(texts, dtype=object)}


class FillMask(Signature):
    """Token ids in, top-k ids out: core TensorFlow ops only, any TF Serving can run it."""

    name = "fill_mask"
    inputs = {
        "token_ids": ("int32", "(batch, {seq})", "[CLS] ids [SEP] [PAD]..., at least one [MASK] id per row"),
        "padding_mask": ("int32", "(batch, {seq})", "1 for a token, 0 for padding"),
    }
    outputs = dict(_FILL_MASK_OUTPUTS)

    def input_signature(self, context):
        shape = [None, context.sequence_length]
        return [tf.TensorSpec(shape, tf.int32, name="token_ids"), tf.TensorSpec(shape, tf.int32, name="padding_mask")]

    def build(self, context):
        fill = context.fill_mask_graph

        def fill_mask(token_ids, padding_mask):
            x = context.check_ids(self.name, token_ids=token_ids, padding_mask=padding_mask)
            return fill(x["token_ids"], x["padding_mask"], signature=self.name)

        return fill_mask

    def example_inputs(self, texts, token_ids):
        return {"token_ids": token_ids, "padding_mask": (token_ids != 0).astype(np.int32)}


class Encode(Signature):
    """The encoder's output, for users who build on it: every position, and the [CLS] vector."""

    name = "encode"
    inputs = {
        "token_ids": ("int32", "(batch, {seq})", "[CLS] ids [SEP] [PAD]..."),
        "segment_ids": ("int32", "(batch, {seq})", "0 for the first segment, 1 for the second"),
        "padding_mask": ("int32", "(batch, {seq})", "1 for a token, 0 for padding"),
    }
    outputs = {
        "sequence_output": ("float32", "(batch, {seq}, hidden)", "the last transformer block's output"),
        "cls_vector": ("float32", "(batch, hidden)", "sequence_output at position 0 ([CLS]); no pooler"),
    }

    def input_signature(self, context):
        shape = [None, context.sequence_length]
        return [tf.TensorSpec(shape, tf.int32, name=k) for k in ENCODER_INPUTS]

    def build(self, context):
        encoder = context.model_encoder

        def encode(token_ids, segment_ids, padding_mask):
            x = context.check_ids(self.name, token_ids=token_ids, segment_ids=segment_ids, padding_mask=padding_mask)
            sequence = tf.cast(encoder(x, training=False), tf.float32)  # (batch, seq, hidden)
            return {"sequence_output": sequence, "cls_vector": sequence[:, 0, :]}

        return encode

    def example_inputs(self, texts, token_ids):
        padding_mask = (token_ids != 0).astype(np.int32)
        return {"token_ids": token_ids, "segment_ids": np.zeros_like(token_ids), "padding_mask": padding_mask}


SIGNATURES = {}
"""Model class -> its signature builders, in serving_default preference order."""


def register_signatures(model_class, builders):
    """Declares the signatures exported for `model_class` (and its subclasses)."""
    names = [b.name for b in builders]
    if len(set(names)) != len(names) or "serving_default" in names:
        raise ValueError(f"signature names must be unique and not 'serving_default', got {names}")
    SIGNATURES[model_class] = tuple(builders)


def signatures_for(model):
    """The builders registered for `model`'s class or its nearest registered base class."""
    for cls in type(model).__mro__:
        if cls in SIGNATURES:
            return SIGNATURES[cls]
    known = ", ".join(c.__name__ for c in SIGNATURES) or "none"
    raise UserInputError(f"no export signatures for a {type(model).__name__} model (known model types: {known})")


def _register_builtin():
    from keras_mlm.models import MaskedLM

    register_signatures(MaskedLM, (FillMaskText(), FillMask(), Encode()))

    from keras_mlm.export.electra_signatures import GeneratorFillMask, GeneratorFillMaskText
    from keras_mlm.models import ElectraPretrainer

    register_signatures(ElectraPretrainer, (GeneratorFillMaskText(), GeneratorFillMask(), Encode()))  # encode: the discriminator

    from keras_mlm.export.classify_signature import ClassifyPairs, ClassifyText
    from keras_mlm.models import SequenceClassifier

    register_signatures(SequenceClassifier, (ClassifyText(), ClassifyPairs(), Encode()))

    from keras_mlm.export.tag_signature import Tag
    from keras_mlm.models import TokenClassifier

    register_signatures(TokenClassifier, (Tag(), Encode()))

    from keras_mlm.export.answer_signature import Answer
    from keras_mlm.models import SpanExtractor

    register_signatures(SpanExtractor, (Answer(), Encode()))

    from keras_mlm.models import XLNetPretrainer

    register_signatures(XLNetPretrainer, (FillMaskText(), FillMask(), Encode()))  # a masked LM's inputs and logits


_register_builtin()
