"""The QA recipe end to end: a tiny random-init encoder learns a synthetic SQuAD 2.0 task far above the
empty-answer baseline; on real SQuAD text it fits its training questions; errors are one line and exit 2;
the exported `answer` signature gives the in-memory answers in a process without keras-hub or keras_mlm.

What is claimed on real data, honestly: a tiny random-init encoder does not answer held-out SQuAD
questions (measured: has-answer F1 of its best spans 5-7 on held-out paragraphs, nothing gained over
answering "" at any threshold); that needs a pre-trained encoder. The real-data test here checks that
the pipeline (offsets, windows, labels, decoding) is right on real text: the model fits its own
training questions, which wrong labels or offsets would make impossible.
"""

import collections
import importlib.util
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml

from keras_mlm.errors import UserInputError
from keras_mlm.models import EncoderConfig, build_masked_lm
from keras_mlm.tokenizers import SPECIAL_TOKENS, write_vocabulary

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "tests" / "export" / "signature_client.py"


def _load_recipe():
    spec = importlib.util.spec_from_file_location("recipes_qa", ROOT / "recipes" / "qa.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


qa = _load_recipe()

# A synthetic SQuAD 2.0 task: "What is the capital?" over a few sentences of filler, a distractor fact
# ("the river is X") and a distractor mention ("we saw X"); answerable (60%) when "the capital is X"
# is there. The model must learn the local pattern, not a value list (every value is also a distractor).
VALUES = ["paris", "rome", "oslo", "lima", "nile", "rhine", "volga", "arthur", "olaf", "harold"]
FILLER = [["the", "cat", "sat", "on", "the", "mat"], ["a", "dog", "ran", "home"], ["it", "rains", "in", "spring"],
          ["birds", "sing", "at", "dawn"], ["the", "sun", "is", "warm"]]
TOKENS = list(SPECIAL_TOKENS) + ["what", "?", ".", "capital", "river", "we", "saw", *VALUES, *sorted({w for f in FILLER for w in f})]


def _synthetic_squad(path, questions, seed):
    rng = np.random.default_rng(seed)
    articles = []
    for a in range(questions // 10):
        paragraphs = []
        for p in range(10):
            sentences = [" ".join(FILLER[i]) + " ." for i in rng.integers(0, len(FILLER), size=rng.integers(2, 7))]
            for fact in (f"the river is {rng.choice(VALUES).capitalize()} .", f"we saw {rng.choice(VALUES).capitalize()} ."):
                sentences.insert(int(rng.integers(0, len(sentences) + 1)), fact)
            answer = str(rng.choice(VALUES)).capitalize() if rng.random() < 0.6 else None
            if answer:
                sentences.insert(int(rng.integers(0, len(sentences) + 1)), f"the capital is {answer} .")
            context = " ".join(sentences)
            qa_ = {"id": f"{seed}-{a}-{p}", "question": "What is the capital?", "answers": [], "is_impossible": answer is None}
            if answer:
                qa_["answers"] = [{"text": answer, "answer_start": context.index("the capital is ") + len("the capital is ")}]
            paragraphs.append({"context": context, "qas": [qa_]})
        articles.append({"title": f"article {a}", "paragraphs": paragraphs})
    path.write_text(json.dumps({"version": "v2.0", "data": articles}), encoding="utf-8")
    return path


def _tiny_run(run_dir, tokens, seq_len, hidden=32):
    """A random-init MaskedLM saved as a run folder: model.keras, vocab.txt, config.yaml."""
    run_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(0)
    config = EncoderConfig(vocabulary_size=len(tokens), num_layers=1, hidden_dim=hidden, num_heads=2,
                           intermediate_dim=2 * hidden, max_sequence_length=seq_len, dropout=0.0)
    build_masked_lm(config).save(run_dir / "model.keras")
    write_vocabulary(tokens, str(run_dir / "vocab.txt"))
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"data": {"seq_len": seq_len, "lowercase": True}}))
    return run_dir


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("qa")
    _tiny_run(root / "run", TOKENS, 32)
    for name, n, seed in (("train", 400, 1), ("dev", 100, 2), ("test", 100, 3)):
        _synthetic_squad(root / f"{name}.json", n, seed)
    code = qa.main(["--run", str(root / "run"), "--train", str(root / "train.json"), "--dev", str(root / "dev.json"),
                    "--test", str(root / "test.json"), "--out", str(root / "out"), "--seq-len", "32", "--epochs", "8",
                    "--batch-size", "16", "--learning-rate", "3e-3"])
    assert code == 0
    return root


def test_tiny_encoder_learns_a_synthetic_squad2_task(synthetic):
    """Empty-answer baseline: the no-answer share (36% of dev, 31% of test); measured 86.0 / 82.0 EM (has-answer
    F1 78.1 / 74.3, no-answer EM 100 / 100)."""
    out = synthetic / "out"
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"dev", "test"}
    for split in ("dev", "test"):
        scores = metrics[split]
        empty_baseline = 100.0 * scores["no_answer"]["count"] / scores["count"]
        assert scores["count"] == 100 and scores["has_answer"]["count"] + scores["no_answer"]["count"] == 100
        assert scores["exact_match"] >= empty_baseline + 30, scores
        assert scores["has_answer"]["f1"] >= 60 and scores["no_answer"]["exact_match"] >= 80, scores
        assert {"best_f1", "best_f1_threshold", "best_exact_match", "best_exact_match_threshold"} <= set(scores)
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["task"]["kind"] == "extractive_qa" and config["task"]["squad_version"] == "2.0"
    assert (config["task"]["doc_stride"], config["task"]["max_answer_length"], config["task"]["null_threshold"]) == (128, 30, 0.0)
    assert config["data"]["seq_len"] == 32 and config["model"]["hidden_dim"] == 32
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "logs", "metrics.json", "model.keras", "vocab.txt"]
    assert any("events" in name for _, _, names in os.walk(out / "logs") for name in names)


def test_cli_errors_are_one_line_exit_2(tmp_path, synthetic):
    bad = tmp_path / "bad.json"
    document = json.loads((synthetic / "dev.json").read_text())
    qa_ = next(q for p in document["data"][0]["paragraphs"] for q in p["qas"] if q["answers"])
    qa_["answers"][0]["answer_start"] += 1
    bad.write_text(json.dumps(document), encoding="utf-8")
    done = subprocess.run([sys.executable, str(ROOT / "recipes" / "qa.py"), "--run", str(synthetic / "run"), "--train", str(bad),
                           "--seq-len", "32", "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert re.fullmatch(rf"error: {re.escape(str(bad))}: data\[0\]\.paragraphs\[\d+\]\.qas\[0\] \(id {qa_['id']}\)\.answers\[0\]: "
                        rf"answer '{qa_['answers'][0]['text']}' is not at answer_start \d+ of the context \(found '.*'\)", last), last
    assert not (tmp_path / "o").exists()
    common_args = ["--run", str(synthetic / "run"), "--train", str(synthetic / "dev.json"), "--out", str(tmp_path / "o")]
    with pytest.raises(UserInputError, match="give --dev FILE or --split-dev FRACTION, not both"):
        qa.main(common_args + ["--dev", str(synthetic / "dev.json"), "--split-dev", "0.5"])
    with pytest.raises(UserInputError, match="--null-threshold dev needs a dev split"):
        qa.main(common_args + ["--null-threshold", "dev"])
    with pytest.raises(UserInputError, match="--doc-stride must be a positive integer"):
        qa.main(common_args + ["--doc-stride", "0"])


@pytest.mark.slow  # export + a fresh process (~90 s on 2 shared cores); classification's fresh-process test runs by default
def test_exported_span_extractor_answers_without_keras(synthetic, tmp_path):
    from keras_mlm.export import export_run
    from keras_mlm.export.answer_signature import answer_settings
    from keras_mlm.export.signatures import ExportContext
    from keras_mlm.finetuning.qa_answers import Answerer
    from keras_mlm.inference.run import load_run

    result = export_run(str(synthetic / "out"), "qa", to=str(tmp_path / "saved_models"), serving_version="2.12")
    assert result.serving_default == "answer" and result.signatures == ("answer", "encode")
    assert "answer: CaseFoldUTF8, FastWordpieceTokenizeWithOffsets, RegexSplitWithOffsets -> all provided" in result.check.report()
    task = load_run(str(synthetic / "out")).config["task"]
    assert f"settings: doc_stride {task['doc_stride']}, max_answer_length {task['max_answer_length']}" in "\n".join(result.descriptions)
    assert "(the run's config.yaml task section)" in "\n".join(result.descriptions)  # the recipe's settings, not defaults

    run = load_run(str(synthetic / "out"))
    dev = json.loads((synthetic / "dev.json").read_text())
    rows = [(q["question"], p["context"]) for a in dev["data"][:2] for p in a["paragraphs"] for q in p["qas"]]
    rows.append(("What is the capital?", "Ça — «the capital is Oslo» . " + "the sun is warm . " * 12))  # multi-byte, 4 windows
    questions, contexts = [q for q, _ in rows], [c for _, c in rows]
    settings = answer_settings(ExportContext(run.model, tuple(run.tokens), run.sequence_length, True, task=run.config["task"]))
    answerer = Answerer(run.model, run.tokens, True, run.sequence_length, **settings)
    expected = {k: v.numpy() for k, v in tf.function(answerer)(tf.constant(questions), tf.constant(contexts)).items()}

    requests = [
        {"signature": "answer", "inputs": {"questions": questions, "contexts": contexts}},
        {"signature": "serving_default", "inputs": {"questions": questions[:1], "contexts": contexts[:1]}},
        {"signature": "answer", "inputs": {"questions": ["What?", "Who?"], "contexts": ["the cat sat .", "   "]}},
        {"signature": "answer", "inputs": {"questions": ["What?", "Who?"], "contexts": ["the cat sat ."]}},
    ]
    (tmp_path / "requests.json").write_text(json.dumps(requests))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, str(CLIENT), result.path, str(tmp_path / "requests.json"), str(tmp_path / "out.json")],
                          capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    served = json.loads((tmp_path / "out.json").read_text())
    assert served["keras_mlm_modules"] == [] and served["warmup_replayed"] == 4  # 2 signatures x 2 batch sizes

    got = served["results"][0]
    assert got["answer"] == [a.decode() for a in expected["answer"]]
    assert got["start_char"] == expected["start_char"].tolist() and got["end_char"] == expected["end_char"].tolist()
    np.testing.assert_allclose(got["score"], expected["score"], atol=1e-4)
    for context, answer, start, end in zip(contexts, got["answer"], got["start_char"], got["end_char"]):
        assert (context[start:end] == answer) if answer else (start, end) == (-1, -1)
    golds = [q["answers"][0]["text"] if q["answers"] else "" for a in dev["data"][:2] for p in a["paragraphs"] for q in p["qas"]]
    assert sum(a == g for a, g in zip(got["answer"], golds)) >= 0.7 * len(golds)  # the served model answers
    assert got["answer"][-1] == "Oslo" and contexts[-1][got["start_char"][-1] : got["end_char"][-1]] == "Oslo"
    assert served["results"][1]["answer"] == got["answer"][:1]
    assert "answer: contexts: empty text; rows:" in served["results"][2]["error"]
    assert "answer: questions and contexts need the same batch size" in served["results"][3]["error"]


def test_answer_settings_come_from_the_task_section():
    from keras_mlm.export.answer_signature import answer_settings
    from keras_mlm.export.signatures import ExportContext

    context = ExportContext(None, ("[PAD]",), 32, True)
    assert answer_settings(context) == {"doc_stride": 128, "max_answer_length": 30, "null_threshold": 0.0, "max_query_length": None}
    task = {"kind": "extractive_qa", "doc_stride": 8, "max_answer_length": 5, "null_threshold": -math.inf, "max_query_length": 10}
    assert answer_settings(ExportContext(None, ("[PAD]",), 32, True, task=task)) == {
        "doc_stride": 8, "max_answer_length": 5, "null_threshold": -math.inf, "max_query_length": 10}


def _real_slice(corpora, path, paragraphs):
    data = json.loads((corpora / "tasks" / "squad_v2_sample" / "dev_subset.json").read_text(encoding="utf-8"))
    article = data["data"][0]
    part = {"version": data["version"], "data": [{"title": article["title"], "paragraphs": article["paragraphs"][:paragraphs]}]}
    path.write_text(json.dumps(part), encoding="utf-8")
    text = " ".join(p["context"] + " " + " ".join(q["question"] for q in p["qas"]) for p in part["data"][0]["paragraphs"])
    words = collections.Counter(re.findall(r"[a-z]+", text.lower()))
    pieces = sorted(set("abcdefghijklmnopqrstuvwxyz0123456789.,;:()'\"-")) + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    return list(SPECIAL_TOKENS) + pieces + [w for w, _ in words.most_common(500) if len(w) > 1]


@pytest.mark.slow  # about 40 s; the synthetic task runs by default
def test_recipe_fits_real_squad_questions(corpora, tmp_path):
    """The first 12 paragraphs of the sample's Normans article (70 questions, 42 unanswerable), trained
    and scored on the same questions with the dev-chosen no-answer threshold: a fitting test of the
    pipeline on real text (not generalisation). Empty-answer baseline: 60.0 F1; measured 78.6 F1 (has-answer 82.1)."""
    tokens = _real_slice(corpora, tmp_path / "slice.json", 12)
    _tiny_run(tmp_path / "run", tokens, 128, hidden=64)
    code = qa.main(["--run", str(tmp_path / "run"), "--train", str(tmp_path / "slice.json"), "--dev", str(tmp_path / "slice.json"),
                    "--out", str(tmp_path / "out"), "--seq-len", "128", "--epochs", "15", "--batch-size", "16",
                    "--learning-rate", "3e-3", "--null-threshold", "dev"])
    assert code == 0
    dev = json.loads((tmp_path / "out" / "metrics.json").read_text())["dev"]
    empty_baseline = 100.0 * dev["no_answer"]["count"] / dev["count"]
    assert dev["count"] == 70 and empty_baseline == pytest.approx(60.0)
    assert dev["f1"] >= empty_baseline + 10 and dev["has_answer"]["f1"] >= 30, dev


@pytest.mark.slow
def test_preset_encoder_on_the_real_sample_split_by_article(corpora, tmp_path):
    """The whole sample through `--preset tiny --vocab` and `--split-dev 0.5`: Normans (208 questions) to
    train, Computational complexity theory (418) held out as dev, and the Normans article again as --test
    to measure the fit. Asserted: the held-out split is the other article, and the training questions are
    fit (best F1 on them at least 5 above answering ""; measured 62.7 against 53.8, 253 s on 2 shared
    cores). Held out, nothing is gained (measured: dev F1 52.9 = the empty-answer baseline, also at the
    best threshold): recorded, not claimed."""
    from keras_mlm.tokenizers import train_vocabulary

    sample = corpora / "tasks" / "squad_v2_sample" / "dev_subset.json"
    data = json.loads(sample.read_text(encoding="utf-8"))
    text = tmp_path / "text.txt"
    text.write_text("\n\n".join(p["context"] + "\n" + "\n".join(q["question"] for q in p["qas"])
                                for a in data["data"] for p in a["paragraphs"]), encoding="utf-8")
    write_vocabulary(train_vocabulary([str(text)], 2000), str(tmp_path / "vocab.txt"))
    (tmp_path / "normans.json").write_text(json.dumps({"version": data["version"], "data": data["data"][:1]}), encoding="utf-8")
    code = qa.main(["--preset", "tiny", "--vocab", str(tmp_path / "vocab.txt"), "--train", str(sample), "--split-dev", "0.5",
                    "--test", str(tmp_path / "normans.json"), "--out", str(tmp_path / "out"), "--seq-len", "192",
                    "--doc-stride", "96", "--epochs", "20", "--batch-size", "32", "--learning-rate", "1e-3"])
    assert code == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["dev"]["count"] == 418 and metrics["test"]["count"] == 208
    fit = metrics["test"]
    empty_baseline = 100.0 * fit["no_answer"]["count"] / fit["count"]
    assert fit["best_f1"] >= empty_baseline + 5, fit
