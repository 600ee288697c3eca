"""The classification recipe and its library parts: readers, packing, the model, export.

A tiny random-init encoder must learn a word-sentiment rule (dev accuracy > 0.9); on real SST-2, a tiny
encoder pre-trained on task text must beat the majority class of the dev set by 8 points.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml

from keras_mlm.errors import UserInputError
from keras_mlm.finetuning.classification_data import label_ids, label_names, read_examples
from keras_mlm.finetuning.packing import longest_first_lengths, pack_segments, text_encoder
from keras_mlm.models import EncoderConfig, SequenceClassifier, build_masked_lm
from keras_mlm.tokenizers import SPECIAL_TOKENS, make_tokenizer, write_vocabulary

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "tests" / "export" / "signature_client.py"

POSITIVE, NEGATIVE = ["good", "great"], ["bad", "awful"]
FILLER = ["the", "movie", "film", "was", "plot", "acting", "really", "quite", "so", "and", "a", "story"]
WORDS = POSITIVE + NEGATIVE + FILLER


def _load_recipe():
    spec = importlib.util.spec_from_file_location("recipes_classification", ROOT / "recipes" / "classification.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


classification = _load_recipe()


def _tiny_run(run_dir, seq_len=16):
    """A random-init MaskedLM saved as a run folder: model.keras, vocab.txt, config.yaml."""
    run_dir.mkdir(parents=True, exist_ok=True)
    tokens = list(SPECIAL_TOKENS) + WORDS
    keras.utils.set_random_seed(0)
    config = EncoderConfig(vocabulary_size=len(tokens), num_layers=1, hidden_dim=32, num_heads=2,
                           intermediate_dim=64, max_sequence_length=seq_len, dropout=0.0)
    build_masked_lm(config).save(run_dir / "model.keras")
    write_vocabulary(tokens, str(run_dir / "vocab.txt"))
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"data": {"seq_len": seq_len, "lowercase": True}}))
    return tokens


def _sentiment_rows(n, seed):
    """n sentences of 3-7 filler words with one sentiment word inserted; label pos for good/great."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        positive = i % 2
        words = list(rng.choice(FILLER, size=rng.integers(3, 8)))
        words.insert(int(rng.integers(0, len(words) + 1)), rng.choice(POSITIVE if positive else NEGATIVE))
        rows.append((" ".join(words), "pos" if positive else "neg"))
    return rows


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in rows), encoding="utf-8")


# ---------------------------------------------------------------------------------------------------------
# Packing


def test_longest_first_equals_dropping_from_the_longer_one_at_a_time():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 30, 200), rng.integers(0, 30, 200)
    budget = 17
    kept_a, kept_b = (x.numpy() for x in longest_first_lengths(tf.constant(a, tf.int32), tf.constant(b, tf.int32), budget))
    for la, lb, ka, kb in zip(a, b, kept_a, kept_b):
        while la + lb > budget:  # BERT's _truncate_seq_pair
            if la > lb:
                la -= 1
            else:
                lb -= 1
        assert (ka, kb) == (la, lb)


def test_pack_segments_single_and_pair_rows():
    a = tf.ragged.constant([[10, 11, 12, 13, 14, 15, 16, 17, 18, 19], [5, 6], [7] * 20])
    b = tf.ragged.constant([[20] * 10, [8] * 20, [9, 9]])
    x = {k: v.numpy() for k, v in pack_segments(a, b, 12, 2, 3, 0).items()}
    np.testing.assert_array_equal(x["token_ids"], [
        [2, 10, 11, 12, 13, 14, 3, 20, 20, 20, 20, 3],
        [2, 5, 6, 3, 8, 8, 8, 8, 8, 8, 8, 3],
        [2, 7, 7, 7, 7, 7, 7, 7, 3, 9, 9, 3],
    ])
    np.testing.assert_array_equal(x["segment_ids"][0], [0] * 7 + [1] * 5)
    np.testing.assert_array_equal(x["segment_ids"][2], [0] * 9 + [1] * 3)
    single = {k: v.numpy() for k, v in pack_segments(a, None, 6, 2, 3, 0).items()}
    np.testing.assert_array_equal(single["token_ids"], [[2, 10, 11, 12, 13, 3], [2, 5, 6, 3, 0, 0], [2, 7, 7, 7, 7, 3]])
    np.testing.assert_array_equal(single["padding_mask"], [[1] * 6, [1, 1, 1, 1, 0, 0], [1] * 6])
    np.testing.assert_array_equal(single["segment_ids"], np.zeros((3, 6)))


def test_text_encoder_tokenizes_in_the_graph():
    tokens = list(SPECIAL_TOKENS) + WORDS
    encode = text_encoder(make_tokenizer(tokens, lowercase=True), 6, {"cls": 2, "sep": 3, "pad": 0})
    x = {k: v.numpy() for k, v in encode(tf.constant(["The movie was GOOD", "bad"])).items()}
    the, movie, was, good, bad = (tokens.index(w) for w in ("the", "movie", "was", "good", "bad"))
    np.testing.assert_array_equal(x["token_ids"], [[2, the, movie, was, good, 3], [2, bad, 3, 0, 0, 0]])
    pairs = text_encoder(make_tokenizer(tokens, lowercase=True), 7, {"cls": 2, "sep": 3, "pad": 0}, pairs=True)
    x = pairs(tf.constant(["good movie"]), tf.constant(["bad"]))
    np.testing.assert_array_equal(x["token_ids"].numpy(), [[2, good, movie, 3, bad, 3, 0]])
    np.testing.assert_array_equal(x["segment_ids"].numpy(), [[0, 0, 0, 0, 1, 1, 0]])


# ---------------------------------------------------------------------------------------------------------
# Readers


def test_reads_tsv_csv_and_jsonl_with_string_labels_and_pairs(tmp_path):
    (tmp_path / "a.tsv").write_text('sentence\tlabel\nit\'s "good"\t1\nbad\t0\n', encoding="utf-8")
    (tmp_path / "a.csv").write_text('premise,hypothesis,gold\n"a, b",c,entailment\nd,e,neutral\nf,g,contradiction\n', encoding="utf-8")
    _write_jsonl(tmp_path / "a.jsonl", [("x y", "pos"), ("z", "neg")])
    tsv = read_examples(tmp_path / "a.tsv")
    assert tsv.texts == ['it\'s "good"', "bad"] and tsv.labels == ["1", "0"] and tsv.pairs is None and tsv.lines == [2, 3]
    csv_ = read_examples(tmp_path / "a.csv", "premise", "hypothesis", "gold")
    assert csv_.texts == ["a, b", "d", "f"] and csv_.pairs == ["c", "e", "g"]
    names = label_names(csv_.labels)
    assert names == ["contradiction", "entailment", "neutral"] and label_ids(csv_, names) == [1, 2, 0]
    jsonl = read_examples(tmp_path / "a.jsonl")  # no `sentence` key: falls back to `text`
    assert jsonl.texts == ["x y", "z"] and jsonl.labels == ["pos", "neg"]
    assert label_names(["10", "2", "-1"]) == ["-1", "2", "10"]  # integers sort numerically


def test_bad_rows_name_file_and_line(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("sentence\tlabel\ngood film\t1\n\nbad film\n", encoding="utf-8")
    with pytest.raises(UserInputError, match=r"bad\.tsv:4: expected 2 tab-separated columns, got 1"):
        read_examples(path)
    path.write_text("text\tlabel\ngood film\t\n", encoding="utf-8")
    with pytest.raises(UserInputError, match=r"bad\.tsv:2: empty 'label'"):
        read_examples(path)
    path.write_text("review\tlabel\ngood film\t1\n", encoding="utf-8")
    with pytest.raises(UserInputError, match=r"bad\.tsv:1: no column 'sentence'.*--text-column"):
        read_examples(path)
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"text": "a", "label": 1}\n{"text": "b", label: 0}\n', encoding="utf-8")
    with pytest.raises(UserInputError, match=r"bad\.jsonl:2: not valid JSON"):
        read_examples(bad_json)
    dev = tmp_path / "dev.tsv"
    dev.write_text("sentence\tlabel\na\t1\nb\t7\n", encoding="utf-8")
    with pytest.raises(UserInputError, match=r"dev\.tsv:3: label '7' never occurs in training"):
        label_ids(read_examples(dev), ["0", "1"])
    with pytest.raises(UserInputError, match=r"unsupported file type \.txt"):
        read_examples(tmp_path / "x.txt")


def test_reads_real_sst2_and_movie_reviews(corpora):
    dev = read_examples(corpora / "tasks" / "sst2" / "dev.tsv")
    assert len(dev.texts) == 872 and set(dev.labels) == {"0", "1"}
    assert dev.texts[0] == "one long string of cliches ." and dev.labels[0] == "0"
    reviews = read_examples(corpora / "tasks" / "movie_review_polarity" / "reviews.jsonl")
    assert len(reviews.texts) == 2000 and label_names(reviews.labels) == ["neg", "pos"]


# ---------------------------------------------------------------------------------------------------------
# The model


def test_sequence_classifier_round_trip_and_float32_logits_under_mixed_precision(tmp_path):
    tokens = _tiny_run(tmp_path / "run")
    encoder = keras.saving.load_model(tmp_path / "run" / "model.keras").encoder
    model = SequenceClassifier(encoder, labels=["neg", "pos", "mixed"], dropout=0.0)
    x = text_encoder(make_tokenizer(tokens, True), 12, {"cls": 2, "sep": 3, "pad": 0})(tf.constant(["good film", "so bad"]))
    logits = model(x).numpy()
    assert logits.shape == (2, 3) and logits.dtype == np.float32
    model.save(tmp_path / "c.keras")
    loaded = keras.saving.load_model(tmp_path / "c.keras")
    assert isinstance(loaded, SequenceClassifier) and loaded.labels == ["neg", "pos", "mixed"] and loaded.num_classes == 3
    np.testing.assert_array_equal(loaded(x).numpy(), logits)
    config = json.loads(json.dumps(loaded.get_config()))
    assert SequenceClassifier.from_config(config).count_params() == encoder.count_params() + 32 * 3 + 3

    bf16_encoder = type(encoder).from_config({**encoder.get_config(), "dtype": "mixed_bfloat16"})
    bf16 = SequenceClassifier(bf16_encoder, labels=["a", "b"], dtype="mixed_bfloat16")
    out = bf16(x)
    assert out.dtype == "float32" and bf16.logits_dense.compute_dtype == "bfloat16"


# ---------------------------------------------------------------------------------------------------------
# The recipe end to end, and the export of its output


@pytest.fixture(scope="module")
def fine_tuned(tmp_path_factory):
    root = tmp_path_factory.mktemp("cls")
    _tiny_run(root / "run")
    _write_jsonl(root / "train.jsonl", _sentiment_rows(256, seed=1))
    _write_jsonl(root / "dev.jsonl", _sentiment_rows(64, seed=2))
    _write_jsonl(root / "test.jsonl", _sentiment_rows(64, seed=3))
    code = classification.main(["--run", str(root / "run"), "--train", str(root / "train.jsonl"), "--dev", str(root / "dev.jsonl"),
                                "--test", str(root / "test.jsonl"), "--out", str(root / "out"), "--epochs", "6", "--batch-size", "16",
                                "--learning-rate", "3e-3", "--seq-len", "12", "--dropout", "0.0"])
    assert code == 0
    return root


def test_tiny_encoder_learns_word_sentiment(fine_tuned):
    out = fine_tuned / "out"
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"dev", "test"}
    for split in ("dev", "test"):
        assert set(metrics[split]) == {"accuracy", "macro_f1", "matthews", "examples"}
        assert metrics[split]["accuracy"] > 0.9 and metrics[split]["matthews"] > 0.8 and metrics[split]["examples"] == 64
    assert json.loads((out / "labels.json").read_text()) == ["neg", "pos"]
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["task"]["kind"] == "classification" and config["task"]["labels"] == ["neg", "pos"]
    assert config["data"]["seq_len"] == 12 and config["model"]["hidden_dim"] == 32
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "labels.json", "logs", "metrics.json", "model.keras", "vocab.txt"]
    assert any("events" in name for _, _, names in os.walk(out / "logs") for name in names)


def test_cli_errors_are_one_line_exit_2(tmp_path, fine_tuned):
    bad = tmp_path / "train.tsv"
    bad.write_text("sentence\tlabel\ngood\t1\nbad\n", encoding="utf-8")
    done = subprocess.run([sys.executable, str(ROOT / "recipes" / "classification.py"), "--run", str(fine_tuned / "run"), "--train", str(bad),
                           "--seq-len", "12", "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1] == f"error: {bad}:3: expected 2 tab-separated columns, got 1"
    assert not (tmp_path / "o").exists()
    with pytest.raises(UserInputError, match="either --run RUN_DIR .* or --preset NAME --vocab FILE"):
        classification.main(["--train", str(bad), "--out", str(tmp_path / "o")])


def test_exported_classifier_serves_labels_without_keras(fine_tuned, tmp_path):
    from keras_mlm.export import export_run
    from keras_mlm.inference.run import load_run

    result = export_run(str(fine_tuned / "out"), "sentiment", to=str(tmp_path / "saved_models"))
    assert result.serving_default == "classify" and set(result.signatures) == {"classify", "classify_pairs", "encode"}
    assert "classify: CaseFoldUTF8" in result.check.report()

    texts = ["the film was great", "so awful and the plot", "a GOOD story"]
    run = load_run(str(fine_tuned / "out"))
    encode = text_encoder(make_tokenizer(run.tokens, True), 12, {"cls": 2, "sep": 3, "pad": 0})
    expected = tf.nn.softmax(run.model(encode(tf.constant(texts)), training=False)).numpy()

    requests = [{"signature": "classify", "inputs": {"texts": texts}}, {"signature": "serving_default", "inputs": {"texts": texts[:1]}},
                {"signature": "classify", "inputs": {"texts": ["good", " "]}}]
    (tmp_path / "requests.json").write_text(json.dumps(requests))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, str(CLIENT), result.path, str(tmp_path / "requests.json"), str(tmp_path / "out.json")],
                          capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    served = json.loads((tmp_path / "out.json").read_text())
    assert served["keras_mlm_modules"] == [] and served["warmup_replayed"] == 6
    first = served["results"][0]
    np.testing.assert_allclose(first["probabilities"], expected, atol=1e-5)
    assert first["label"] == ["pos", "neg", "pos"] and first["labels"][0] == ["neg", "pos"]
    assert served["results"][1]["label"] == ["pos"]
    assert "classify: texts: empty text; rows:" in served["results"][2]["error"]


@pytest.mark.slow  # about 2 minutes: pre-trains the tiny encoder first
def test_pretrained_tiny_encoder_beats_majority_class_on_real_sst2(pretrained_tiny_run, corpora, tmp_path):
    """2,000 SST-2 training sentences, 3 epochs, 64 pieces: dev accuracy at least 8 points above the
    majority class (50.9%); measured 0.711 on the 2-core machine (AVX-512)."""
    sst2 = corpora / "tasks" / "sst2"
    code = classification.main(["--run", str(pretrained_tiny_run), "--train", str(sst2 / "train.tsv"), "--dev", str(sst2 / "dev.tsv"),
                                "--out", str(tmp_path / "sst2"), "--max-examples", "2000", "--epochs", "3", "--batch-size", "32",
                                "--learning-rate", "1e-3", "--seq-len", "64"])
    assert code == 0
    dev = json.loads((tmp_path / "sst2" / "metrics.json").read_text())["dev"]
    labels = read_examples(sst2 / "dev.tsv").labels
    majority = max(labels.count(label) for label in set(labels)) / len(labels)
    assert dev["accuracy"] >= majority + 0.08, (dev, majority)
