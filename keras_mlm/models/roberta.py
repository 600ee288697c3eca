"""RoBERTa (Liu et al. 2019): BERT's encoder, trained differently.

RoBERTa changed the recipe, not the network, so its encoder is `BertEncoder` with a config that says
what differs from BERT's:

- no segment (token type) embedding: RoBERTa drops next-sentence prediction and feeds full sequences
  packed across documents (`<s> doc1 </s> doc2 </s> ...`, what `prepare` writes with a BPE vocabulary),
  so `num_segments = 0`;
- LayerNorm epsilon 1e-5 (fairseq's, keras-hub's RobertaBackbone);
- a byte-level BPE vocabulary (`keras-mlm vocab --kind bpe`): no unknown tokens, cased text;
- dynamic masking: keras-mlm masks every batch afresh for every architecture already;
- the optimizer settings of its paper (table 9): Adam betas (0.9, 0.98), epsilon 1e-6, warm-up 6% of
  the steps, weight decay 0.01. RoBERTa's other finding, larger batches with a higher peak learning
  rate (8K sequences at 6e-4 for base, against BERT's 256 at 1e-4), is scaled to keras-mlm's presets:
  twice the BERT default batch (64) with the learning rate scaled by the square root of that factor.
  These apply where the config and flags do not set them (`TRAINING_DEFAULTS`).

keras-hub's RobertaBackbone computes the same encoder (its position ids start after the padding id,
fairseq's quirk, and it keeps 514 positions for that; here positions start at 0, as BERT's).
"""

import dataclasses
import math
from typing import ClassVar

from keras_mlm.models.presets import PRESETS, EncoderConfig

BERT_DEFAULT_BATCH, BERT_DEFAULT_LEARNING_RATE = 32, 1e-3


@dataclasses.dataclass(frozen=True)
class RobertaConfig(EncoderConfig):
    """`EncoderConfig` with RoBERTa's defaults; the keys are `BertEncoder`'s constructor arguments."""

    num_segments: int = 0
    """RoBERTa has no segment embedding."""
    layer_norm_epsilon: float = 1e-5
    """fairseq's LayerNorm epsilon."""

    VOCABULARY_KINDS: ClassVar[tuple] = ("bpe",)
    """The vocabulary kinds a run of this architecture accepts."""

    TRAINING_DEFAULTS: ClassVar[dict] = {
        "beta_2": 0.98,
        "epsilon": 1e-6,
        "warmup_fraction": 0.06,
        "weight_decay": 0.01,
        "batch_size": 2 * BERT_DEFAULT_BATCH,
        "learning_rate": round(BERT_DEFAULT_LEARNING_RATE * math.sqrt(2), 6),
    }
    """TrainingConfig fields that default differently for this architecture (see the module docstring)."""

    @classmethod
    def presets(cls):
        return PRESETS  # RoBERTa-base and -large are BERT-base and -large sizes
