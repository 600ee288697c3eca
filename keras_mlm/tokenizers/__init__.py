from keras_mlm.tokenizers.tokenizer import make_tokenizer
from keras_mlm.tokenizers.vocab import (
    CLS,
    MASK,
    PAD,
    SEP,
    SPECIAL_TOKENS,
    UNK,
    load_vocabulary,
    special_token_ids,
    train_vocabulary,
    vocabulary_sha256,
    write_vocabulary,
)
