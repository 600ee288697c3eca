"""The tokenizer every part of keras-mlm uses: keras-hub's WordPieceTokenizer over our vocabulary."""

import keras_hub

from keras_mlm.tokenizers.vocab import SPECIAL_TOKENS, SUFFIX_INDICATOR, UNK, infer_lowercase


def make_tokenizer(tokens, lowercase=None, strip_accents=False, special_tokens_in_strings=False, sequence_length=None):
    """A WordPiece tokenizer for a vocabulary (list of tokens).

    `lowercase=None` infers it from the vocabulary (no upper-case letters -> lowercase).
    `special_tokens_in_strings=True` makes a literal "[MASK]" in the text the mask token (fill-mask);
    corpus text is tokenized with it off, so "[MASK]" written in a book stays ordinary characters.
    """
    if lowercase is None:
        lowercase = infer_lowercase(tokens)
    return keras_hub.tokenizers.WordPieceTokenizer(
        vocabulary=list(tokens),
        sequence_length=sequence_length,
        lowercase=lowercase,
        strip_accents=strip_accents,
        suffix_indicator=SUFFIX_INDICATOR,
        oov_token=UNK,
        special_tokens=list(SPECIAL_TOKENS),
        special_tokens_in_strings=special_tokens_in_strings,
    )
