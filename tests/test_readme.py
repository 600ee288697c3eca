"""The README's commands and script are what users run first: keep them working."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_starts_with_exactly_the_two_setup_commands():
    text = README.read_text()
    first_block = re.search(r"```bash\n(.*?)```", text, re.S).group(1).strip().splitlines()
    assert first_block == ['pip install -e . && keras-mlm demo', 'pip install -e ".[test]" && python -m pytest']
    ci = (README.parent / ".ci" / "run").read_text()
    assert first_block[1] in ci


def test_readme_keras_script_trains_and_fills_masks(tmp_path, monkeypatch, corpora):
    from keras_mlm.data.prepare import DataConfig, prepare
    from keras_mlm.tokenizers import train_vocabulary, write_vocabulary

    text = (corpora / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")[:40_000]
    (tmp_path / "text.txt").write_text(text)
    write_vocabulary(train_vocabulary([tmp_path / "text.txt"], 500), tmp_path / "vocab.txt")
    prepare([tmp_path / "text.txt"], tmp_path / "vocab.txt", tmp_path / "shards", DataConfig(seq_len=128))
    script = re.search(r"<!-- readme-script -->\n```python\n(.*?)```", README.read_text(), re.S).group(1)
    assert len(script.strip().splitlines()) <= 15
    script = script.replace("steps=1000", "steps=4").replace("steps_per_epoch=1000", "steps_per_epoch=4, verbose=0")
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(script, "README.md", "exec"), namespace)
    history = namespace["model"].history.history
    assert len(history["loss"]) == 1 and history["loss"][0] > 0
    assert namespace["model"].optimizer.iterations.numpy() == 4


def test_readme_finetune_script_trains_a_classifier(tmp_path, monkeypatch):
    import keras
    import yaml

    from keras_mlm.models import EncoderConfig, build_masked_lm
    from keras_mlm.tokenizers import SPECIAL_TOKENS, write_vocabulary

    run = tmp_path / "runs" / "mini"
    run.mkdir(parents=True)
    tokens = list(SPECIAL_TOKENS) + ["a", "great", "film", "dull", ",", "tired"]
    write_vocabulary(tokens, run / "vocab.txt")
    build_masked_lm(EncoderConfig(len(tokens), 1, 16, 2, 32, max_sequence_length=128)).save(run / "model.keras")
    (run / "config.yaml").write_text(yaml.safe_dump({"data": {"seq_len": 64, "lowercase": True}}))
    script = re.search(r"<!-- readme-finetune-script -->\n```python\n(.*?)```", README.read_text(), re.S).group(1)
    assert len(script.strip().splitlines()) <= 15
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(script.replace("epochs=3)", "epochs=3, verbose=0)"), "README.md", "exec"), namespace)
    model = namespace["model"]
    assert len(model.history.history["loss"]) == 3 and model.optimizer.iterations.numpy() == 3
    assert isinstance(model, keras.Model) and model.labels == ["negative", "positive"]
