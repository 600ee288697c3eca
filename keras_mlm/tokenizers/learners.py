"""Vocabulary learners for each kind, all real libraries, all deterministic (same files -> same vocabulary).

- wordpiece: keras-hub's `compute_word_piece_vocabulary` (`vocab.train_vocabulary`).
- bpe: Hugging Face `tokenizers`, byte-level BPE as RoBERTa's (GPT-2 byte alphabet, no prefix space).
- sentencepiece: the `sentencepiece` library, unigram as ALBERT's, one thread, input not sampled.

Each returns a `Vocabulary` whose ids 0-4 are its kind's specials (see `vocabulary.SPECIALS`).
"""

import io
import json

from keras_mlm.errors import UserInputError
from keras_mlm.tokenizers import vocab as wordpiece_lib
from keras_mlm.tokenizers.vocabulary import SPECIALS, Vocabulary


def _documents(inputs, vocabulary_size, kind):
    from keras_mlm.data.readers import iterate_documents

    if vocabulary_size <= len(SPECIALS[kind]):
        raise UserInputError(f"--vocab-size must be larger than {len(SPECIALS[kind])} (the special tokens), got {vocabulary_size}")
    documents = [d for d in iterate_documents(inputs) if d.strip()]  # reading validates every file first
    if not documents:
        raise UserInputError(f"empty corpus: no text in {', '.join(map(str, inputs))}")
    return documents


def train_wordpiece(inputs, vocabulary_size, lowercase=True):
    return Vocabulary.from_tokens(wordpiece_lib.train_vocabulary(inputs, vocabulary_size, lowercase=lowercase), lowercase)


def train_bpe(inputs, vocabulary_size, lowercase=False):
    """Byte-level BPE (RoBERTa): every byte is in the alphabet, so no text is ever unknown. Cased."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if lowercase:
        raise UserInputError("byte-level BPE is cased (as RoBERTa's); pass --no-lowercase")
    documents = _documents(inputs, vocabulary_size, "bpe")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocabulary_size,
        special_tokens=list(SPECIALS["bpe"]),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(documents, trainer)
    vocabulary = tokenizer.get_vocab(with_added_tokens=True)
    merges = json.loads(tokenizer.to_str())["model"]["merges"]
    return Vocabulary.from_bpe(vocabulary, merges)


def train_sentencepiece(inputs, vocabulary_size, lowercase=True):
    """SentencePiece unigram (ALBERT): `<pad>`=0, `<unk>`=1, then control pieces [CLS] [SEP] [MASK].
    Lower-casing is the model's normaliser (`nmt_nfkc_cf`), so the model lower-cases wherever it runs."""
    import sentencepiece

    documents = _documents(inputs, vocabulary_size, "sentencepiece")
    model = io.BytesIO()
    try:
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=iter(documents),
            model_writer=model,
            vocab_size=vocabulary_size,
            model_type="unigram",
            pad_id=0,
            unk_id=1,
            bos_id=-1,
            eos_id=-1,
            pad_piece=SPECIALS["sentencepiece"][0],
            unk_piece=SPECIALS["sentencepiece"][1],
            control_symbols=list(SPECIALS["sentencepiece"][2:]),
            normalization_rule_name="nmt_nfkc_cf" if lowercase else "nmt_nfkc",
            num_threads=1,
            shuffle_input_sentence=False,
            input_sentence_size=0,
            max_sentence_length=1 << 20,
            hard_vocab_limit=False,
            character_coverage=1.0,  # every character of the corpus is a piece: nothing seen is unknown
            minloglevel=2,
        )
    except RuntimeError as e:
        raise UserInputError(f"sentencepiece could not train a vocabulary: {e}") from None
    return Vocabulary.from_sentencepiece(model.getvalue())


LEARNERS = {"wordpiece": train_wordpiece, "bpe": train_bpe, "sentencepiece": train_sentencepiece}
"""kind -> learner(inputs, vocabulary_size, lowercase) -> Vocabulary."""
