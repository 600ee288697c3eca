"""The NER recipe on real WNUT-17, the task run folder it writes, its errors, and the export of its output.

Fast: a tiny random-init encoder (1 layer, 32 wide) over a cased vocabulary of WNUT-17's own training
words, fine-tuned on 2,000 training sentences for 6 epochs, must beat the all-"O" tagger (entity F1 0)
on the dev set by 0.03 F1 (measured 0.091; test 0.032). Slow: a 2-layer encoder on all training sentences.
"""

import collections
import importlib.util
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml

from keras_mlm.errors import UserInputError
from keras_mlm.evaluation.ner_metrics import entity_scores
from keras_mlm.finetuning.conll import read_conll
from keras_mlm.finetuning.token_alignment import WordAligner, align_sentences, predict_word_tags, split_words
from keras_mlm.models import EncoderConfig, TokenClassifier, build_masked_lm
from keras_mlm.tokenizers import SPECIAL_TOKENS, make_tokenizer, write_vocabulary

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "tests" / "export" / "signature_client.py"
SEQ_LEN = 48
TRAIN_SENTENCES = 2000
TYPES = ("corporation", "creative-work", "group", "location", "person", "product")


def _load_recipe():
    spec = importlib.util.spec_from_file_location("recipes_ner", ROOT / "recipes" / "ner.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ner = _load_recipe()


def _wnut(corpora, split):
    return corpora / "tasks" / "wnut17" / f"{split}.conll"


def _word_run(run_dir, train, words=3000, num_layers=1, hidden_dim=32, seq_len=SEQ_LEN):
    """A random-init MaskedLM over a cased vocabulary: every character of `train` (also as "##" piece)
    and its `words` most frequent words, saved as a run folder."""
    run_dir.mkdir(parents=True, exist_ok=True)
    counts = collections.Counter(w for sentence in train.words for w in sentence)
    chars = sorted({c for w in counts for c in w})
    frequent = [w for w, _ in counts.most_common() if w not in chars and not w.startswith("[")][:words]
    tokens = list(SPECIAL_TOKENS) + chars + ["##" + c for c in chars] + frequent
    keras.utils.set_random_seed(0)
    config = EncoderConfig(vocabulary_size=len(tokens), num_layers=num_layers, hidden_dim=hidden_dim, num_heads=2,
                           intermediate_dim=2 * hidden_dim, max_sequence_length=seq_len, dropout=0.0)
    build_masked_lm(config).save(run_dir / "model.keras")
    write_vocabulary(tokens, str(run_dir / "vocab.txt"))
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"data": {"seq_len": seq_len, "lowercase": False}}))


@pytest.fixture(scope="module")
def fine_tuned(corpora, tmp_path_factory):
    root = tmp_path_factory.mktemp("ner")
    _word_run(root / "run", read_conll(_wnut(corpora, "train")).head(TRAIN_SENTENCES))
    code = ner.main(["--run", str(root / "run"), "--train", str(_wnut(corpora, "train")), "--dev", str(_wnut(corpora, "dev")),
                     "--test", str(_wnut(corpora, "test")), "--out", str(root / "out"), "--max-examples", str(TRAIN_SENTENCES),
                     "--epochs", "6", "--batch-size", "32", "--learning-rate", "3e-3", "--warmup-fraction", "0.05",
                     "--seq-len", str(SEQ_LEN), "--dropout", "0.0"])
    assert code == 0
    return root


def test_tiny_encoder_beats_the_all_outside_tagger_on_wnut17(fine_tuned):
    metrics = json.loads((fine_tuned / "out" / "metrics.json").read_text())
    assert set(metrics) == {"dev", "test"}
    for split, entities in (("dev", 836), ("test", 1079)):
        scores = metrics[split]
        assert {"precision", "recall", "f1", "per_type", "support", "cut_words"} <= set(scores)
        assert scores["support"] == entities  # gold entities; the all-"O" tagger finds none: F1 0
        assert set(scores["per_type"]) <= set(TYPES)
        for row in scores["per_type"].values():
            assert set(row) == {"precision", "recall", "f1", "support"}
    assert metrics["dev"]["f1"] >= 0.03, metrics["dev"]
    assert metrics["dev"]["per_type"]["person"]["f1"] > 0.05  # the commonest type is found
    assert metrics["test"]["f1"] > 0.0
    assert metrics["dev"]["cut_words"] > 0  # some tweets exceed 48 pieces: their last words are tagged "O"


@pytest.fixture(scope="module")
def tagger(fine_tuned):
    """The saved run (`LoadedRun`) and a `WordAligner` over its vocabulary, for the library's Python path."""
    from keras_mlm.inference.run import load_run

    run = load_run(str(fine_tuned / "out"))
    ids = {t: i for i, t in enumerate(run.tokens)}
    special_ids = {k: ids[t] for k, t in (("cls", "[CLS]"), ("sep", "[SEP]"), ("pad", "[PAD]"), ("unk", "[UNK]"))}
    return run, WordAligner(make_tokenizer(run.tokens, run.lowercase), run.sequence_length, special_ids)


def test_metrics_are_seqevals_on_the_saved_models_predictions(fine_tuned, tagger, corpora):
    from seqeval.metrics import f1_score, precision_score, recall_score

    run, aligner = tagger
    dev = read_conll(_wnut(corpora, "dev"))
    predicted = predict_word_tags(run.model, align_sentences(aligner, dev.words), run.model.labels)
    saved = json.loads((fine_tuned / "out" / "metrics.json").read_text())["dev"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert (precision_score(dev.tags, predicted), recall_score(dev.tags, predicted), f1_score(dev.tags, predicted)) == (
            saved["precision"], saved["recall"], saved["f1"])
    assert entity_scores(dev.tags, predicted)["per_type"] == saved["per_type"]


def test_task_run_folder(fine_tuned):
    out = fine_tuned / "out"
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "labels.json", "logs", "metrics.json", "model.keras", "vocab.txt"]
    labels = ["O"] + [f"{p}-{t}" for t in TYPES for p in "BI"]
    assert json.loads((out / "labels.json").read_text()) == labels
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["task"]["kind"] == "token_classification" and config["task"]["labels"] == labels
    assert config["task"]["train_sentences"] == TRAIN_SENTENCES
    assert config["data"] == {"seq_len": SEQ_LEN, "lowercase": False}
    model = keras.saving.load_model(out / "model.keras")
    assert isinstance(model, TokenClassifier) and model.labels == labels
    assert any("events" in name for _, _, names in os.walk(out / "logs") for name in names)


def test_bad_input_is_one_line_and_exit_code_2(tmp_path, fine_tuned):
    bad = tmp_path / "train.conll"
    bad.write_text("Paris\tB-location\nis\tO\n\nnice\tB-\n", encoding="utf-8")
    done = subprocess.run([sys.executable, str(ROOT / "recipes" / "ner.py"), "--run", str(fine_tuned / "run"), "--train", str(bad),
                           "--seq-len", "16", "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == f"error: {bad}:4: tag 'B-' is not O or B-/I-/E-/S- followed by an entity type"
    assert not (tmp_path / "o").exists()
    good = tmp_path / "ok.conll"
    good.write_text("Paris\tB-location\n", encoding="utf-8")
    with pytest.raises(UserInputError, match="either --run RUN_DIR .* or --preset NAME --vocab FILE"):
        ner.main(["--train", str(good), "--out", str(tmp_path / "o")])


# ---------------------------------------------------------------------------------------------------------
# Export: `tag` in a process without keras, keras-hub or keras_mlm, equal to the model in memory


TEXTS = [
    "Going to see Justin Bieber in New York tonight with @jack !",
    "watching the new Star Wars movie on Netflix",
    "Café au lait at STARBUCKS, 東京",  # accents, upper case, CJK characters split one by one
    "",  # no words
    " ".join(["lol"] * 60),  # longer than the row: the words past it are "O" with probability 0
]


@pytest.fixture(scope="module")
def exported(fine_tuned, tmp_path_factory):
    from keras_mlm.export import export_run

    return export_run(str(fine_tuned / "out"), "wnut17", to=str(tmp_path_factory.mktemp("saved_models")), serving_version="2.12")


def test_tag_signature_is_servable_by_tf_serving_2_12(exported):
    from keras_mlm.export.serving_ops import TF_TEXT_OPS_2_12

    assert exported.serving_default == "tag" and exported.signatures == ("tag", "encode")
    needed = set(exported.check.needed["tag"])
    assert needed == {"FastWordpieceTokenizeWithOffsets", "RegexSplitWithOffsets"}  # a cased vocabulary: no CaseFoldUTF8
    assert needed <= TF_TEXT_OPS_2_12 and exported.check.needed["encode"] == ()


def _in_memory(tagger, texts):
    """Words, their tags and the alignment from the library's Python path on the saved .keras model."""
    import tensorflow as tf

    run, aligner = tagger
    words = [[w.decode() for w in row] for row in split_words(tf.constant(texts)).to_list()]
    aligned = align_sentences(aligner, words)
    return words, predict_word_tags(run.model, aligned, run.model.labels), aligned


@pytest.mark.slow  # a fresh process (~20 s); the exported tag signature is checked in-process by the tests around it
def test_served_tags_equal_the_in_memory_model(tagger, exported, tmp_path):
    requests = [
        {"signature": "tag", "inputs": {"texts": TEXTS}},
        {"signature": "serving_default", "inputs": {"texts": TEXTS[:1]}},
    ]
    (tmp_path / "requests.json").write_text(json.dumps(requests))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, str(CLIENT), exported.path, str(tmp_path / "requests.json"), str(tmp_path / "out.json")],
                          capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    served = json.loads((tmp_path / "out.json").read_text())
    assert served["keras_mlm_modules"] == [] and served["warmup_replayed"] == 4  # (tag, encode) x batch sizes (1, 4)

    words, tags, aligned = _in_memory(tagger, TEXTS)
    got = served["results"][0]
    assert got["num_words"] == [len(w) for w in words] == [13, 8, 8, 0, 60]
    assert got["num_tagged"] == [int(np.sum(p >= 0)) for p in aligned.word_positions]
    assert got["num_tagged"][4] == SEQ_LEN - 2 and got["num_tagged"][:4] == got["num_words"][:4]
    width = max(map(len, words))
    assert got["words"] == [w + [""] * (width - len(w)) for w in words]
    assert got["tags"] == [t + [""] * (width - len(t)) for t in tags]
    assert words[2] == ["Café", "au", "lait", "at", "STARBUCKS", ",", "東", "京"]
    assert set(tags[4][SEQ_LEN - 2 :]) == {"O"}
    probabilities = np.array(got["tag_probabilities"])
    assert (probabilities[4, SEQ_LEN - 2 :] == 0).all() and (probabilities[3] == 0).all()
    assert ((probabilities[0, :13] > 1 / 13) & (probabilities[0, :13] <= 1)).all()  # the argmax of 13 tags
    assert served["results"][1]["tags"] == [tags[0]]


def test_bad_requests_fail_with_a_clear_message_as_tf_serving_runs_them(exported):
    """Fed through a TF1 Session's callable, as tensorflow_model_server feeds a request (no shape checks)."""
    import tensorflow as tf
    from tensorflow.core.protobuf import config_pb2

    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        signature = tf.compat.v1.saved_model.loader.load(session, ["serve"], exported.path).signature_def["tag"]
        options = config_pb2.CallableOptions(feed=[signature.inputs["texts"].name], fetch=[signature.outputs["tags"].name])
        tag = session._make_callable_from_options(options)

        def error(texts):
            with pytest.raises(tf.errors.InvalidArgumentError) as raised:
                tag(np.array(texts, dtype=object))
            return raised.value.message.strip().splitlines()[0]

        assert error([["Paris", "is"]]) == "assertion failed: [tag: texts must have rank 1, shape (batch,); got rank] [2]"
        assert error("Paris") == "assertion failed: [tag: texts must have rank 1, shape (batch,); got rank] [0]"
        assert error(["ok", b"caf\xe9"]) == "assertion failed: [tag: text is not valid UTF-8; rows:] [1]"
        assert tag(np.array([], dtype=object))[0].shape == (0, 0)
        assert tag(np.array(["Paris", ""], dtype=object))[0].shape == (2, 1)  # the process still serves


def test_tag_probabilities_are_the_softmax_at_first_pieces(tagger, exported):
    import tensorflow as tf

    loaded = tf.saved_model.load(exported.path)
    got = {k: v.numpy() for k, v in loaded.signatures["tag"](texts=tf.constant(TEXTS[:2])).items()}
    _, _, aligned = _in_memory(tagger, TEXTS[:2])
    logits = tagger[0].model.predict_on_batch(aligned.inputs)
    for row, positions in enumerate(aligned.word_positions):
        expected = tf.nn.softmax(logits[row, positions]).numpy().max(axis=-1)
        np.testing.assert_allclose(got["tag_probabilities"][row, : len(positions)], expected, atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------------------
# Slow: all of WNUT-17's training set, a 2-layer 64-wide encoder


@pytest.mark.slow
def test_random_init_encoder_on_all_of_wnut17(corpora, tmp_path):
    """3,394 sentences, 8 epochs, 64 pieces: measured dev F1 0.101, test F1 0.043 (100 s on the 2 shared cores).

    Casing matters on WNUT-17: the lower-casing `pretrained_tiny_run` encoder (400 pre-training steps)
    reached only dev F1 0.009 with 5 epochs at 2e-3, so the bar here is set with a cased vocabulary.
    """
    _word_run(tmp_path / "run", read_conll(_wnut(corpora, "train")), words=4000, num_layers=2, hidden_dim=64, seq_len=64)
    code = ner.main(["--run", str(tmp_path / "run"), "--train", str(_wnut(corpora, "train")), "--dev", str(_wnut(corpora, "dev")),
                     "--test", str(_wnut(corpora, "test")), "--out", str(tmp_path / "out"), "--epochs", "8", "--batch-size", "32",
                     "--learning-rate", "2e-3", "--warmup-fraction", "0.05", "--seq-len", "64", "--dropout", "0.0"])
    assert code == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["dev"]["f1"] >= 0.07 and metrics["test"]["f1"] >= 0.025, metrics
