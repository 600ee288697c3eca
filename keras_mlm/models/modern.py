"""A modern encoder: what RoFormer (Su et al. 2021) and ModernBERT (Warner et al. 2024) changed in BERT.

- rotary position embeddings in every attention layer, no learned position table (so any sequence
  length up to `max_sequence_length` works, and nothing is learned per position);
- pre-norm layers and a final LayerNorm; no bias in any dense layer or LayerNorm;
- a gated feed-forward, GeGLU: W_out(gelu(x W_a) * (x W_g));
- optionally, local attention: a sliding window of `local_attention_window` tokens in all layers
  but every `global_attention_every`-th (ModernBERT: window 128, layers 0, 3, 6, ... global), with
  rotary wavelength `rotary_max_wavelength` in global and `local_rotary_max_wavelength` in local
  layers (ModernBERT: 160000 and 10000).

Not taken from ModernBERT: unpadding and Flash Attention (kernels, not math), and its bias-free MLM
head (this encoder goes under the same `MaskedLM` head as the others, so `FillMask`, evaluation and
export work unchanged).
"""

import dataclasses
from typing import ClassVar

import keras

from keras_mlm.errors import UserInputError
from keras_mlm.layers.attention import padding_mask_to_attention_bias
from keras_mlm.layers.modern import LocalAttentionBias, ModernEmbeddings, ModernTransformerBlock
from keras_mlm.layers.normalization import LayerNorm
from keras_mlm.models.bert import bert_initializer
from keras_mlm.models.encoder_base import Encoder, encoder_inputs
from keras_mlm.models.presets import PRESETS, EncoderConfig, require_positive_integers

MODERN_PRESETS = {
    # The BERT sizes with ModernBERT's feed-forward width, 1.5 x hidden per branch of the GeGLU.
    **{name: {**size, "intermediate_dim": 3 * size["hidden_dim"] // 2} for name, size in PRESETS.items()},
    # ModernBERT's own sizes (Warner et al. 2024).
    "modernbert-base": {"num_layers": 22, "hidden_dim": 768, "num_heads": 12, "intermediate_dim": 1152},
    "modernbert-large": {"num_layers": 28, "hidden_dim": 1024, "num_heads": 16, "intermediate_dim": 2624},
}


@dataclasses.dataclass(frozen=True)
class ModernConfig(EncoderConfig):
    """Sizes and options of a `ModernEncoder` (the keys are its constructor arguments); defaults are
    ModernBERT's. `intermediate_dim` is the width of each of the two GeGLU branches."""

    max_sequence_length: int = 8192
    """The longest sequence accepted (rotary positions have no table: nothing grows with it)."""
    num_segments: int = 1
    """Segment ids accepted; a segment embedding is built only for 2 or more (ModernBERT has none)."""
    dropout: float = 0.0
    """Dropout on embeddings, attention probabilities and both residual branches (ModernBERT: 0)."""
    layer_norm_epsilon: float = 1e-5
    """Epsilon of every LayerNorm."""
    local_attention_window: int | None = 128
    """Tokens a local layer's query sees: keys within window // 2 on each side; None: all layers global."""
    global_attention_every: int = 3
    """Layer i is global when i % global_attention_every == 0 (the others local)."""
    rotary_max_wavelength: float = 160000.0
    """Rotary base of the global layers (RoFormer: 10000; ModernBERT: 160000)."""
    local_rotary_max_wavelength: float = 10000.0
    """Rotary base of the local layers."""

    def __post_init__(self):
        super().__post_init__()
        require_positive_integers(self, "global_attention_every")
        if self.local_attention_window is not None:
            require_positive_integers(self, "local_attention_window")
        if (self.hidden_dim // self.num_heads) % 2:
            raise UserInputError(
                f"encoder config: rotary embeddings need an even head size, got hidden_dim / num_heads = "
                f"{self.hidden_dim // self.num_heads}"
            )
        for name in ("rotary_max_wavelength", "local_rotary_max_wavelength"):
            if not getattr(self, name) > 0:
                raise UserInputError(f"encoder config: {name} must be > 0, got {getattr(self, name)!r}")

    MASKING_DEFAULTS: ClassVar[dict] = {"selection_rate": 0.3}
    """Where the config and flags are silent: 30% of tokens selected (80/10/10 as BERT). Measured by
    benchmarks/bench_quality.py (3 layers x 256, held-out books, 15% evaluation masks): 0.21 nats lower
    held-out loss at step 500 than 15%, 0.31 at a 5-minute budget; Wettig et al. 2023 found 40% best for
    larger models. See README, "The default recipe"."""

    @classmethod
    def presets(cls):
        return MODERN_PRESETS


@keras.saving.register_keras_serializable(package="keras_mlm")
class ModernEncoder(Encoder):
    """{token_ids, segment_ids, padding_mask} (batch, seq_len) -> sequence_output (batch, seq_len, hidden).

    Token embeddings + LayerNorm, `num_layers` `ModernTransformerBlock`s (local or global, see the
    module doc), a final LayerNorm. Constructor arguments are the fields of `ModernConfig`;
    `token_embedding` is the table the masked-LM head ties to.
    """

    CONFIG = ModernConfig

    def __init__(
        self,
        vocabulary_size,
        num_layers,
        hidden_dim,
        num_heads,
        intermediate_dim,
        max_sequence_length=8192,
        num_segments=1,
        dropout=0.0,
        layer_norm_epsilon=1e-5,
        activation="gelu",
        initializer_range=0.02,
        local_attention_window=128,
        global_attention_every=3,
        rotary_max_wavelength=160000.0,
        local_rotary_max_wavelength=10000.0,
        dtype=None,
        **kwargs,
    ):
        initializer = bert_initializer(initializer_range)
        local = [self.is_local(i, local_attention_window, global_attention_every) for i in range(num_layers)]
        # Layers.
        self.embeddings = ModernEmbeddings(
            vocabulary_size, hidden_dim, num_segments=num_segments, max_sequence_length=max_sequence_length,
            dropout=dropout, layer_norm_epsilon=layer_norm_epsilon, embeddings_initializer=initializer,
            dtype=dtype, name="embeddings",
        )
        self.local_attention = None
        if any(local):
            self.local_attention = LocalAttentionBias(local_attention_window, dtype=dtype, name="local_attention_bias")
        self.transformer_blocks = [
            ModernTransformerBlock(
                num_heads, intermediate_dim, dropout=dropout, activation=activation,
                layer_norm_epsilon=layer_norm_epsilon,
                rotary_max_wavelength=local_rotary_max_wavelength if local[i] else rotary_max_wavelength,
                normalize_attention_input=i > 0,  # the embeddings end in a LayerNorm
                kernel_initializer=initializer, dtype=dtype, name=f"transformer_block_{i}",
            )
            for i in range(num_layers)
        ]
        self.final_norm = LayerNorm(layer_norm_epsilon, center=False, dtype=dtype, name="final_norm")

        # Functional graph.
        inputs = encoder_inputs()
        x = self.embeddings(inputs["token_ids"], inputs["segment_ids"])  # (batch, seq, hidden)
        global_bias = padding_mask_to_attention_bias(inputs["padding_mask"], x.dtype)  # (batch, 1, 1, seq)
        local_bias = None
        if self.local_attention is not None:
            local_bias = self.local_attention(global_bias)  # (batch, 1, seq, seq)
        for block, is_local in zip(self.transformer_blocks, local):
            x = block(x, attention_bias=local_bias if is_local else global_bias)  # (batch, seq, hidden)
        x = self.final_norm(x)
        super().__init__(inputs=inputs, outputs=x, **kwargs)
        self._record_config(dtype, locals())  # every config field, as an attribute

    @staticmethod
    def is_local(layer, local_attention_window, global_attention_every):
        """Whether layer `layer` (0-based) uses the sliding window: all but every n-th when a window is set."""
        return local_attention_window is not None and layer % global_attention_every != 0
