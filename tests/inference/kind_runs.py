"""Run folders of each vocabulary kind, written as `keras-mlm pretrain` writes them, without training.

    vocabulary = train_vocabulary("bpe", corpus_slice(corpora, tmp))   # 600 pieces of tinyshakespeare
    run_dir = write_run(tmp / "run", vocabulary)                         # model.keras, config.yaml, vocab-bpe/

The model is a seeded, untrained tiny masked LM (1 layer, hidden 32): what these tests check is that
every path (fill-mask, evaluate, score, the exported SavedModel) reads the vocabulary's kind right,
not what the model predicts. A BPE run has no segment embedding, as RoBERTa (num_segments 0).
"""

SEQUENCE_LENGTH = 32
CORPUS_CHARACTERS = 40_000
VOCABULARY_SIZE = 600
TINY_MODEL = {"num_layers": 1, "hidden_dim": 32, "num_heads": 2, "intermediate_dim": 64, "max_sequence_length": 64, "dropout": 0.0}


def corpus_slice(corpora, directory, characters=CORPUS_CHARACTERS):
    """The first `characters` of tinyshakespeare as directory/text.txt (its path)."""
    path = directory / "text.txt"
    text = (corpora / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")[:characters]
    path.write_text(text, encoding="utf-8")
    return path


def train_vocabulary(kind, text_path, size=VOCABULARY_SIZE):
    """`keras-mlm vocab --kind KIND`'s learner on one file (BPE cased, SentencePiece lower-cased). WordPiece
    (whose learner takes seconds, and whose runs other tests cover) is the specials and the commonest
    lower-cased words of the file instead: a valid, uncased WordPiece vocabulary of `size`."""
    import collections
    import re

    from keras_mlm.tokenizers.learners import LEARNERS
    from keras_mlm.tokenizers.vocab import SPECIAL_TOKENS
    from keras_mlm.tokenizers.vocabulary import Vocabulary

    if kind == "wordpiece":
        words = collections.Counter(re.findall(r"[a-z]+|[^\sa-z]", text_path.read_text(encoding="utf-8").lower()))
        return Vocabulary.from_tokens(list(SPECIAL_TOKENS) + sorted(w for w, _ in words.most_common(size - len(SPECIAL_TOKENS))), True)
    return LEARNERS[kind]([text_path], size, lowercase=kind != "bpe")


def write_run(run_dir, vocabulary, seed=0, sequence_length=SEQUENCE_LENGTH):
    """RUN_DIR as `pretrain` leaves it: model.keras, config.yaml (`save_config` of the run's config)
    and the vocabulary under its kind's name (`save_beside`). Returns run_dir."""
    import keras

    from keras_mlm.models import build_masked_lm
    from keras_mlm.training.run_config import build_run_config, save_config

    model = dict(TINY_MODEL, num_segments=0 if vocabulary.kind == "bpe" else 2)
    config = build_run_config({"preset": "tiny", "model": model, "data": {"seq_len": sequence_length}})
    keras.utils.set_random_seed(seed)
    masked_lm = build_masked_lm(config.encoder_config(len(vocabulary)))
    run_dir.mkdir(parents=True, exist_ok=True)
    masked_lm.save(run_dir / "model.keras")
    save_config(str(run_dir / "config.yaml"), config, len(vocabulary))
    vocabulary.save_beside(str(run_dir))
    return run_dir
