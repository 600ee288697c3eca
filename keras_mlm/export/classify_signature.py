"""The signatures of a `SequenceClassifier`: texts in, label names and probabilities out.

    classify        texts (batch,)                  -> label, label_id, probabilities, labels
    classify_pairs  texts, text_pairs (batch,) each -> the same, for sentence-pair models
    encode          ids in, encoder output out (shared with the masked LM)

Tokenization and packing run in the graph with the very functions the classification recipe trains
with (`keras_mlm.finetuning.packing`): the WordPiece tokenizer (tensorflow-text ops every stock TF
Serving since 2.12 links) and core-op packing with longest-first truncation. A text longer than the
row is truncated, as in training, not refused.
"""

import numpy as np
import tensorflow as tf

from keras_mlm.export import guards
from keras_mlm.export.signatures import Signature

_OUTPUTS = {
    "label": ("string", "(batch,)", "the most probable class name"),
    "label_id": ("int32", "(batch,)", "its class id"),
    "probabilities": ("float32", "(batch, classes)", "softmax over the classes, in id order"),
    "labels": ("string", "(batch, classes)", "the class names in id order (the same in every row)"),
}


def _encoder_for(context, pairs):
    from keras_mlm.finetuning.packing import pack_segments
    from keras_mlm.tokenizers import make_tokenizer, vocab as vocab_lib

    tokenizer = make_tokenizer(list(context.tokens), context.lowercase)
    ids = {t: i for i, t in enumerate(context.tokens)}
    cls_id, sep_id, pad_id = ids[vocab_lib.CLS], ids[vocab_lib.SEP], ids[vocab_lib.PAD]

    def encode(texts, text_pairs=None):
        second = tokenizer(text_pairs) if pairs else None
        return pack_segments(tokenizer(texts), second, context.sequence_length, cls_id, sep_id, pad_id)

    return encode


def _classify(context, inputs):
    model = context.model
    logits = tf.cast(model(inputs, training=False), tf.float32)  # (batch, classes)
    probabilities = tf.nn.softmax(logits, axis=-1)
    label_id = tf.cast(tf.argmax(probabilities, axis=-1), tf.int32)  # (batch,)
    names = tf.constant(list(model.labels))  # (classes,)
    batch = tf.shape(logits)[0]
    return {
        "label": tf.gather(names, label_id),
        "label_id": label_id,
        "probabilities": probabilities,
        "labels": tf.tile(names[None, :], [batch, 1]),
    }


class ClassifyText(Signature):
    """One text per row."""

    name = "classify"
    inputs = {"texts": ("string", "(batch,)", "UTF-8 texts (truncated to the row length)")}
    outputs = _OUTPUTS

    def input_signature(self, context):
        return [tf.TensorSpec([None], tf.string, name="texts")]

    def build(self, context):
        encode = _encoder_for(context, pairs=False)

        def classify(texts):
            texts = guards.check_texts(texts, f"{self.name}: texts")
            return _classify(context, encode(texts))

        return classify

    def example_inputs(self, texts, token_ids):
        return {"texts": np.array(texts, dtype=object)}


class ClassifyPairs(Signature):
    """Two texts per row (premise and hypothesis, question and sentence, ...)."""

    name = "classify_pairs"
    inputs = {
        "texts": ("string", "(batch,)", "first sentences"),
        "text_pairs": ("string", "(batch,)", "second sentences (longest-first truncation of the pair)"),
    }
    outputs = _OUTPUTS

    def input_signature(self, context):
        return [tf.TensorSpec([None], tf.string, name="texts"), tf.TensorSpec([None], tf.string, name="text_pairs")]

    def build(self, context):
        encode = _encoder_for(context, pairs=True)

        def classify_pairs(texts, text_pairs):
            texts = guards.check_texts(texts, f"{self.name}: texts")
            text_pairs = guards.check_texts(text_pairs, f"{self.name}: text_pairs")
            same = tf.equal(tf.shape(texts)[0], tf.shape(text_pairs)[0])
            texts = guards.checked(texts, [guards.require(same, f"{self.name}: texts and text_pairs need the same batch size; got",
                                                          tf.shape(texts)[0], tf.shape(text_pairs)[0])])
            return _classify(context, encode(texts, text_pairs))

        return classify_pairs

    def example_inputs(self, texts, token_ids):
        return {"texts": np.array(texts, dtype=object), "text_pairs": np.array(texts[::-1], dtype=object)}
