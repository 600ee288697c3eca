"""`keras-mlm demo`: the first thing a user runs."""

import pytest

from keras_mlm.cli.main import main


def test_demo_command_runs_the_whole_path_and_prints_both_examples(tmp_path, capsys):
    # A short run: the plumbing (corpus -> vocab -> shards -> training -> fill-mask), not the quality.
    assert main(["demo", "--out", str(tmp_path), "--steps", "10", "--verbose", "0", "--json"]) == 0
    import json

    results = json.loads(capsys.readouterr().out)
    assert [r["text"] for r in results] == ["paris is the [MASK] of france", "the [MASK] brown [MASK] jumps"]
    assert [len(r["masks"]) for r in results] == [1, 2]
    for mask in (m for r in results for m in r["masks"]):
        probabilities = [p["probability"] for p in mask["predictions"]]
        assert len(probabilities) == 5 and probabilities == sorted(probabilities, reverse=True)
    assert (tmp_path / "model.keras").exists() and (tmp_path / "corpus" / "demo_corpus.txt").exists()
    picture = (tmp_path / "illustration.html").read_text(encoding="utf-8")  # the picture of the first sentence
    assert "paris" in picture and "capital" in picture and "<svg" in picture


@pytest.mark.slow
def test_default_demo_ranks_capital_first_with_probability_over_0_9(tmp_path):
    from keras_mlm.demo import run_demo

    paris, fox = run_demo(str(tmp_path), verbose=0)
    best = paris["masks"][0]["predictions"][0]
    assert best["token"] == "capital" and best["probability"] >= 0.9, paris
    assert fox["masks"][0]["predictions"][0]["token"] == "quick"
    assert fox["masks"][1]["predictions"][0]["token"] == "fox"
