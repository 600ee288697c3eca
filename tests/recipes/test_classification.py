"""The classification recipe: a tiny random-init encoder learns a word-sentiment rule; .keras round trip; bad rows."""

import importlib.util
import json
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml

from keras_mlm.errors import UserInputError
from keras_mlm.models import EncoderConfig, build_masked_lm
from keras_mlm.tokenizers import SPECIAL_TOKENS, make_tokenizer, write_vocabulary

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "classification.py"

POSITIVE, NEGATIVE = ["good", "great"], ["bad", "awful"]
FILLER = ["the", "movie", "film", "was", "plot", "acting", "really", "quite", "so", "and", "a", "story"]
WORDS = POSITIVE + NEGATIVE + FILLER


def _load_recipe():
    spec = importlib.util.spec_from_file_location("recipes_classification", RECIPE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


classification = _load_recipe()


def _tiny_run(run_dir, seq_len=16):
    """A random-init MaskedLM saved as a run folder: model.keras, vocab.txt, config.yaml."""
    tokens = list(SPECIAL_TOKENS) + WORDS
    keras.utils.set_random_seed(0)
    config = EncoderConfig(vocabulary_size=len(tokens), num_layers=1, hidden_dim=32, num_heads=2,
                           intermediate_dim=64, max_sequence_length=seq_len, dropout=0.0)
    build_masked_lm(config).save(run_dir / "model.keras")
    write_vocabulary(tokens, str(run_dir / "vocab.txt"))
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"data": {"seq_len": seq_len, "lowercase": True}}))
    return tokens


def _sentiment_tsv(path, n, seed):
    """n sentences of 3-7 filler words with one sentiment word inserted; label 1 for good/great."""
    rng = np.random.default_rng(seed)
    lines = ["sentence\tlabel"]
    for i in range(n):
        label = i % 2
        words = list(rng.choice(FILLER, size=rng.integers(3, 8)))
        words.insert(int(rng.integers(0, len(words) + 1)), rng.choice(POSITIVE if label else NEGATIVE))
        lines.append(f"{' '.join(words)}\t{label}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def fine_tuned(tmp_path_factory):
    root = tmp_path_factory.mktemp("cls")
    (root / "run").mkdir()
    _tiny_run(root / "run")
    _sentiment_tsv(root / "train.tsv", 256, seed=1)
    _sentiment_tsv(root / "dev.tsv", 64, seed=2)
    classifier, metrics = classification.fine_tune(root / "run", root / "train.tsv", root / "dev.tsv", root / "out", epochs=6,
                                       batch_size=16, learning_rate=3e-3, seq_len=12, dropout=0.0, seed=0, verbose=0)
    return root, classifier, metrics


def test_encoder_inputs_are_cls_ids_sep_padded():
    tokens = list(SPECIAL_TOKENS) + WORDS
    tokenizer = make_tokenizer(tokens, lowercase=True)
    encode = classification.make_encoder_inputs(tokenizer, seq_len=6, cls_id=2, sep_id=3, pad_id=0)
    x = {k: v.numpy() for k, v in encode(np.array(["The movie was GOOD", "bad"])).items()}
    the, movie, was, good, bad = (tokens.index(w) for w in ("the", "movie", "was", "good", "bad"))
    # Four words + [CLS] + [SEP] fill all 6 positions; "bad" is padded with [PAD] = 0.
    np.testing.assert_array_equal(x["token_ids"], [[2, the, movie, was, good, 3], [2, bad, 3, 0, 0, 0]])
    np.testing.assert_array_equal(x["padding_mask"], [[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]])
    np.testing.assert_array_equal(x["segment_ids"], np.zeros((2, 6)))
    x = encode(np.array(["the movie was really good"]))  # five words: "good" is cut, [SEP] stays last
    np.testing.assert_array_equal(x["token_ids"].numpy(), [[2, the, movie, was, tokens.index("really"), 3]])


def test_tiny_encoder_learns_word_sentiment(fine_tuned):
    root, _, metrics = fine_tuned
    assert metrics["dev_accuracy"] > 0.9
    assert metrics["train_examples"] == 256 and metrics["epochs"] == 6
    assert json.loads((root / "out" / "metrics.json").read_text()) == metrics
    assert sorted(p.name for p in (root / "out").iterdir()) == ["classifier.keras", "metrics.json"]  # no temp left


def test_keras_round_trip_gives_identical_logits(fine_tuned):
    root, classifier, _ = fine_tuned
    tokenizer = make_tokenizer(list(SPECIAL_TOKENS) + WORDS, lowercase=True)
    x = classification.make_encoder_inputs(tokenizer, 12, 2, 3, 0)(np.array(["the film was great", "so awful"]))
    logits = classifier(x, training=False).numpy()
    assert logits.shape == (2, 2) and logits.dtype == np.float32
    assert np.argmax(logits, -1).tolist() == [1, 0]
    loaded = keras.saving.load_model(root / "out" / "classifier.keras")
    assert isinstance(loaded, classification.SequenceClassifier) and loaded.num_classes == 2
    np.testing.assert_array_equal(loaded(x, training=False).numpy(), logits)
    config = json.loads(json.dumps(loaded.get_config()))
    assert config["num_classes"] == 2 and config["dropout"] == 0.0 and config["encoder"]["config"]["hidden_dim"] == 32
    rebuilt = classification.SequenceClassifier.from_config(config)  # same architecture, fresh weights
    assert rebuilt.count_params() == loaded.count_params() == loaded.encoder.count_params() + 32 * 2 + 2


def test_bad_row_names_file_and_line(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("sentence\tlabel\ngood film\t1\nbad film\tpositive\n", encoding="utf-8")
    with pytest.raises(UserInputError, match=r"bad\.tsv:3: label must be a non-negative integer, got 'positive'"):
        classification.read_examples(path)
    path.write_text("sentence\tlabel\ngood film\t1\n\nbad film\n", encoding="utf-8")
    with pytest.raises(UserInputError, match=r"bad\.tsv:4: expected 2 tab-separated columns, got 1"):
        classification.read_examples(path)
    path.write_text("text\tlabel\ngood film\t1\n", encoding="utf-8")
    with pytest.raises(UserInputError, match=r"bad\.tsv:1: the header must name"):
        classification.read_examples(path)


def test_reads_real_sst2_dev(corpora):
    sentences, labels = classification.read_examples(corpora / "tasks" / "sst2" / "dev.tsv")
    assert len(sentences) == 872 and set(labels) == {0, 1}
    assert sentences[0] == "one long string of cliches ." and labels[0] == 0
