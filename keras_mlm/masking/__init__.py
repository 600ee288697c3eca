"""Dynamic BERT / RoBERTa / SpanBERT masking inside the tf.data graph.

`MLMMasker` is the one public layer; `MaskingConfig` holds its hyper-parameters. The pieces it is built
from: `hashing` (stateless counter-based randomness), `selectors` (token, whole-word, span) and
`chooser` (the 80/10/10 [MASK] / random / keep decision).
"""

from keras_mlm.masking.config import STRATEGIES, MaskingConfig
from keras_mlm.masking.masker import MLMMasker

__all__ = ["STRATEGIES", "MLMMasker", "MaskingConfig"]
