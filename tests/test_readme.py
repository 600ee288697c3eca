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
