"""Sentence (and sentence-pair) classification: the encoder's [CLS] vector -> class logits."""

import keras
from keras import ops

from keras_mlm.models.bert import bert_initializer


@keras.saving.register_keras_serializable(package="keras_mlm")
class SequenceClassifier(keras.Model):
    """{token_ids, segment_ids, padding_mask} (batch, seq) -> logits float32 (batch, num_classes).

    The [CLS] row of the encoder's output, dropout, then one dense layer: BERT's fine-tuning head
    without the pooler (our encoder builds none). `labels` names the classes in id order (saved with
    the model, so an exported classifier answers with names); `num_classes` defaults to its length.
    """

    def __init__(self, encoder, num_classes=None, dropout=0.1, labels=None, **kwargs):
        if num_classes is None and labels is None:
            raise ValueError("give num_classes or labels")
        labels = [str(label) for label in labels] if labels is not None else [str(i) for i in range(num_classes)]
        num_classes = len(labels) if num_classes is None else int(num_classes)
        if num_classes != len(labels):
            raise ValueError(f"num_classes={num_classes} but {len(labels)} labels")
        dtype = kwargs.pop("dtype", None) or encoder.dtype_policy
        self.encoder = encoder
        self.head_dropout = keras.layers.Dropout(dropout, dtype=dtype, name="head_dropout")
        self.logits_dense = keras.layers.Dense(
            num_classes, kernel_initializer=bert_initializer(encoder.initializer_range), dtype=dtype, name="logits"
        )
        inputs = dict(encoder.input)
        sequence_output = encoder(inputs)  # (batch, seq, hidden)
        x = sequence_output[:, 0, :]  # (batch, hidden): the [CLS] position
        x = self.head_dropout(x)
        logits = ops.cast(self.logits_dense(x), "float32")  # (batch, num_classes), float32 for the loss
        super().__init__(inputs=inputs, outputs=logits, **kwargs)
        self.dtype_policy = keras.dtype_policies.get(dtype)  # a functional model does not take a dtype
        self.num_classes = num_classes
        self.dropout = dropout
        self.labels = labels

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            "encoder": keras.layers.serialize(self.encoder),
            "num_classes": self.num_classes,
            "dropout": self.dropout,
            "labels": list(self.labels),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.layers.deserialize(config["encoder"])
        return cls(**config)
