"""The masked language model: an encoder plus the tied, gather-first masked-LM head."""

import keras

from keras_mlm.layers.mlm_head import MaskedLMHead
from keras_mlm.models.bert import BertEncoder, bert_initializer


@keras.saving.register_keras_serializable(package="keras_mlm")
class MaskedLM(keras.Model):
    """{token_ids, segment_ids, padding_mask, mask_positions} -> logits float32 (batch, n_masks, vocab).

    Train it with `MaskedLMLoss` on (x, mask_ids, mask_weights). The head reads only the
    `mask_positions` rows of the encoder output and projects them onto the encoder's token embedding.
    The head's activation and LayerNorm epsilon are the encoder's unless `head_activation` /
    `head_layer_norm_epsilon` say otherwise (keras-hub's BertMaskedLM: tanh-GELU encoder, erf-GELU
    head with epsilon 1e-5; an imported checkpoint keeps its source's math).
    """

    def __init__(self, encoder, head_activation=None, head_layer_norm_epsilon=None, **kwargs):
        dtype = kwargs.pop("dtype", None) or encoder.dtype_policy
        self.encoder = encoder
        self.head_activation = head_activation
        self.head_layer_norm_epsilon = head_layer_norm_epsilon
        self.mlm_head = MaskedLMHead(
            encoder.token_embedding,
            activation=head_activation or encoder.activation,
            layer_norm_epsilon=head_layer_norm_epsilon or encoder.layer_norm_epsilon,
            kernel_initializer=bert_initializer(encoder.initializer_range),
            dtype=dtype,
            name="mlm_head",
        )
        inputs = {**encoder.input, "mask_positions": keras.Input(shape=(None,), dtype="int32", name="mask_positions")}
        sequence_output = encoder({k: inputs[k] for k in encoder.input})  # (batch, seq, hidden)
        logits = self.mlm_head(sequence_output, mask_positions=inputs["mask_positions"])  # (batch, n, vocab)
        super().__init__(inputs=inputs, outputs=logits, **kwargs)
        self.dtype_policy = keras.dtype_policies.get(dtype)  # a functional model does not take a dtype

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            "encoder": keras.layers.serialize(self.encoder),
            "head_activation": self.head_activation,
            "head_layer_norm_epsilon": self.head_layer_norm_epsilon,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.layers.deserialize(config["encoder"])
        return cls(**config)


def build_masked_lm(config, dtype=None, head_activation=None, head_layer_norm_epsilon=None):
    """A fresh `MaskedLM` over a `BertEncoder` of `config` (an `EncoderConfig`); dtype e.g. "mixed_bfloat16".
    The head's activation and epsilon default to the encoder's (see `MaskedLM`)."""
    encoder = BertEncoder.from_encoder_config(config, dtype=dtype, name="encoder")
    return MaskedLM(
        encoder, head_activation=head_activation, head_layer_norm_epsilon=head_layer_norm_epsilon,
        dtype=dtype, name="masked_lm",
    )
