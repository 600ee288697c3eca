"""Extractive question answering: a start and an end logit for every position of the row."""

import keras
from keras import ops

from keras_mlm.models.bert import bert_initializer

MASKED_LOGIT = -1e9
"""The logit of a padding position: never a start or an end, exp() underflows to exactly 0."""


@keras.saving.register_keras_serializable(package="keras_mlm")
class SpanExtractor(keras.Model):
    """{token_ids, segment_ids, padding_mask} (batch, seq) -> {"start_logits", "end_logits"} float32 (batch, seq).

    BERT's SQuAD head: the encoder's output at every position, dropout, one dense layer with two
    units (start, end). Padding positions get `MASKED_LOGIT`. Labels are a start and an end position
    per row, fit as `{"start_logits": starts, "end_logits": ends}` with sparse cross-entropy on each.
    Position 0 ([CLS]) is the "no answer" span (SQuAD 2.0): its score is start_logits[:, 0] +
    end_logits[:, 0], compared with the best real span's (see `keras_mlm.finetuning.qa_answers`).
    `dropout` is the head's only (BERT's run_squad.py has none; the encoder has its own).
    """

    def __init__(self, encoder, dropout=0.0, **kwargs):
        dtype = kwargs.pop("dtype", None) or encoder.dtype_policy
        self.encoder = encoder
        self.head_dropout = keras.layers.Dropout(dropout, dtype=dtype, name="head_dropout")
        self.span_dense = keras.layers.Dense(
            2, kernel_initializer=bert_initializer(encoder.initializer_range), dtype=dtype, name="span_logits"
        )
        inputs = dict(encoder.input)
        x = encoder(inputs)  # (batch, seq, hidden)
        x = self.head_dropout(x)
        logits = ops.cast(self.span_dense(x), "float32")  # (batch, seq, 2), float32 for the loss
        is_token = ops.expand_dims(ops.not_equal(inputs["padding_mask"], 0), -1)  # (batch, seq, 1)
        logits = ops.where(is_token, logits, MASKED_LOGIT)
        outputs = {"start_logits": logits[..., 0], "end_logits": logits[..., 1]}  # each (batch, seq)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.dtype_policy = keras.dtype_policies.get(dtype)  # a functional model does not take a dtype
        self.dropout = dropout

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            "encoder": keras.layers.serialize(self.encoder),
            "dropout": self.dropout,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.layers.deserialize(config["encoder"])
        return cls(**config)
