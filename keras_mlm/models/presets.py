"""Encoder sizes and the frozen config that carries them.

The standard BERT sizes (Turc et al. 2019 for the small ones, Devlin et al. 2018 for base/large):
heads = hidden / 64, intermediate = 4 * hidden. `vocabulary_size` comes from the tokenizer, so it is
not part of a preset.
"""

import dataclasses
import numbers

from keras_mlm.errors import UserInputError


def _size(num_layers, hidden_dim):
    return {
        "num_layers": num_layers,
        "hidden_dim": hidden_dim,
        "num_heads": hidden_dim // 64,
        "intermediate_dim": 4 * hidden_dim,
    }


PRESETS = {
    "tiny": _size(2, 128),
    "mini": _size(4, 256),
    "small": _size(4, 512),
    "medium": _size(8, 512),
    "base": _size(12, 768),
    "large": _size(24, 1024),
}


def require_positive_integers(config, *names):
    """Raises UserInputError unless each named field of `config` is an int >= 1 (bool is not)."""
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise UserInputError(f"encoder config: {name} must be a positive integer, got {value!r}")


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
    """Sizes and options of a BERT encoder; the keys are `BertEncoder`'s constructor arguments."""

    vocabulary_size: int
    """Rows of the token embedding (and columns of the tied MLM output projection)."""
    num_layers: int
    """Number of transformer blocks."""
    hidden_dim: int
    """Width of the residual stream."""
    num_heads: int
    """Attention heads; must divide hidden_dim."""
    intermediate_dim: int
    """Width of the feed-forward hidden layer."""
    max_sequence_length: int = 512
    """Rows of the learned position embedding: the longest sequence the encoder accepts."""
    num_segments: int = 2
    """Rows of the segment (token type) embedding; 0 builds none (RoBERTa)."""
    dropout: float = 0.1
    """Dropout on embeddings, attention probabilities, attention output and feed-forward output."""
    layer_norm_epsilon: float = 1e-12
    """Epsilon of every LayerNorm (BERT's 1e-12)."""
    activation: str = "gelu"
    """Feed-forward and MLM-head activation: "gelu" (exact erf), "gelu_approximate" (tanh, as in
    the original BERT code and keras-hub), or any keras.activations name."""
    initializer_range: float = 0.02
    """Standard deviation of the truncated-normal initializer of every kernel and embedding."""

    def __post_init__(self):
        require_positive_integers(self, "vocabulary_size", "num_layers", "hidden_dim", "num_heads",
                                  "intermediate_dim", "max_sequence_length")
        if isinstance(self.num_segments, bool) or not isinstance(self.num_segments, numbers.Integral) or self.num_segments < 0:
            raise UserInputError(f"encoder config: num_segments must be an integer >= 0 (0: no segment embedding), got {self.num_segments!r}")
        if self.hidden_dim % self.num_heads:
            raise UserInputError(
                f"encoder config: hidden_dim={self.hidden_dim} is not divisible by num_heads={self.num_heads}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise UserInputError(f"encoder config: dropout must be in [0, 1), got {self.dropout!r}")
        if not self.layer_norm_epsilon > 0:
            raise UserInputError(f"encoder config: layer_norm_epsilon must be > 0, got {self.layer_norm_epsilon!r}")
        if not self.initializer_range > 0:
            raise UserInputError(f"encoder config: initializer_range must be > 0, got {self.initializer_range!r}")
        try:
            from keras_mlm.layers.activations import get_activation

            get_activation(self.activation)
        except (ValueError, TypeError):
            raise UserInputError(
                f"encoder config: unknown activation {self.activation!r} "
                "(allowed: gelu, gelu_approximate, or a keras.activations name such as relu, silu)"
            ) from None

    @classmethod
    def presets(cls):
        """Preset name -> fields (all but vocabulary_size); configs of other architectures override it."""
        return PRESETS

    @classmethod
    def from_preset(cls, name, vocabulary_size, **overrides):
        """The preset `name` with `vocabulary_size`, any field replaced by `overrides` (nothing derived)."""
        presets = cls.presets()
        if name not in presets:
            raise UserInputError(f"unknown encoder preset {name!r} (allowed: {', '.join(presets)})")
        fields = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(overrides) - set(fields))
        if unknown:
            raise UserInputError(
                f"unknown encoder config field(s) {', '.join(unknown)} (allowed: {', '.join(fields)})"
            )
        return cls(**{**presets[name], "vocabulary_size": vocabulary_size, **overrides})

    def to_dict(self):
        return dataclasses.asdict(self)
