"""Token classification (NER, part-of-speech tagging): the encoder's output at every position -> tag logits."""

import keras
from keras import ops

from keras_mlm.models.bert import bert_initializer


@keras.saving.register_keras_serializable(package="keras_mlm")
class TokenClassifier(keras.Model):
    """{token_ids, segment_ids, padding_mask} (batch, seq) -> logits float32 (batch, seq, num_labels).

    Every position of the encoder's output, dropout, then one dense layer: BERT's tagging head. The
    logits of a word are read at its first word piece (`keras_mlm.finetuning.token_alignment`), the
    other positions are ignored by the loss. `labels` names the tags in id order ("O", "B-person",
    ...); they are saved with the model, so an exported tagger answers with tag names.
    """

    def __init__(self, encoder, labels, dropout=0.1, **kwargs):
        labels = [str(label) for label in labels]
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise ValueError(f"labels must be at least two distinct tag names, got {labels}")
        dtype = kwargs.pop("dtype", None) or encoder.dtype_policy
        self.encoder = encoder
        self.head_dropout = keras.layers.Dropout(dropout, dtype=dtype, name="head_dropout")
        self.logits_dense = keras.layers.Dense(
            len(labels), kernel_initializer=bert_initializer(encoder.initializer_range), dtype=dtype, name="logits"
        )
        inputs = dict(encoder.input)
        x = encoder(inputs)  # (batch, seq, hidden)
        x = self.head_dropout(x)
        logits = ops.cast(self.logits_dense(x), "float32")  # (batch, seq, num_labels), float32 for the loss
        super().__init__(inputs=inputs, outputs=logits, **kwargs)
        self.dtype_policy = keras.dtype_policies.get(dtype)  # a functional model does not take a dtype
        self.labels = labels
        self.dropout = dropout

    @property
    def num_labels(self):
        return len(self.labels)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            "encoder": keras.layers.serialize(self.encoder),
            "labels": list(self.labels),
            "dropout": self.dropout,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.layers.deserialize(config["encoder"])
        return cls(**config)
