"""What every encoder shares: its configuration attributes, `get_config`, and the tied embedding.

Each encoder (bert, albert, modern, electra) is a functional `keras.Model` whose constructor arguments
are the fields of its config dataclass; `CONFIG` names that dataclass, so `get_config` saves exactly
those fields (STYLE: a layer's constructor arguments are its `get_config()` keys) and no encoder repeats
the list by hand.
"""

import dataclasses

import keras


ENCODER_INPUTS = ("token_ids", "segment_ids", "padding_mask")  # what every encoder takes


def encoder_inputs():
    """The functional inputs every encoder takes: {token_ids, segment_ids, padding_mask}, int32 (batch, seq)."""
    return {name: keras.Input(shape=(None,), dtype="int32", name=name) for name in ENCODER_INPUTS}


class Encoder(keras.Model):
    """Base of the encoders: {token_ids, segment_ids, padding_mask} -> sequence output."""

    CONFIG = None
    """The config dataclass whose fields are the constructor arguments (EncoderConfig and its subclasses)."""

    @classmethod
    def config_fields(cls):
        return [f.name for f in dataclasses.fields(cls.CONFIG)]

    def _record_config(self, dtype, values):
        """After the functional `__init__`: the dtype policy its layers were built with (a functional
        model does not take a dtype) and every config field as an attribute."""
        self.dtype_policy = keras.dtype_policies.get(dtype if dtype is not None else keras.config.dtype_policy())
        for name in self.config_fields():
            setattr(self, name, values[name])

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            **{name: getattr(self, name) for name in self.config_fields()},
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    @classmethod
    def from_encoder_config(cls, config, dtype=None, **kwargs):
        """Builds the encoder a config dataclass (`CONFIG`) describes."""
        return cls(**config.to_dict(), dtype=dtype, **kwargs)

    @property
    def token_embedding(self):
        """The `TokenEmbedding` whose table the masked-LM head's output projection is tied to."""
        return self.embeddings.token_embedding
