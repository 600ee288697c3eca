"""`pretrain --objective mlm+nsp` (bert) and `mlm+sop` (albert): the pair head trains next to the masked LM,
its metrics are logged beside the MLM ones, and every later command reads the masked LM under it.

The pairs themselves are tested in tests/data/test_pairs.py, the pre-trainer in
tests/models/test_pair_pretrainer.py; here, the whole tool.
"""

import json
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tiny_run.py beside this file (importlib mode)
import tiny_run  # noqa: E402


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return tiny_run.write_corpus(str(tmp_path_factory.mktemp("corpus")))


@pytest.mark.parametrize("architecture, objective, extra", [("bert", "mlm+nsp", {}), ("albert", "mlm+sop", {"embedding_dim": 16})])
def test_a_pair_objective_trains_logs_its_metrics_and_leaves_a_usable_run(architecture, objective, extra, corpus, tmp_path, capsys):
    from keras_mlm.cli.main import main
    from keras_mlm.inference.run import load_run
    from keras_mlm.models import MaskedLM, PairPretrainer
    from keras_mlm.training.pretrain import pretrain

    data, vocab = corpus
    config = tiny_run.tiny_config(architecture, extra, steps=6, checkpoint_every=3, objective=objective)
    run_dir = tmp_path / "run"
    summary = pretrain(config, [data], vocab, str(run_dir), verbose=0)
    task = objective.split("+")[1]
    assert summary["step"] == 6 and 0 <= summary[f"{task}_accuracy"] <= 1 and summary[f"{task}_loss"] > 0
    assert {"masked_accuracy", "perplexity", "mlm_loss"} <= set(summary)
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["training"]["objective"] == objective
    run = load_run(str(run_dir))
    assert isinstance(run.model, PairPretrainer) and isinstance(run.masked_lm, MaskedLM)
    assert main(["fill-mask", str(run_dir), "the [MASK] sat on a mat", "--json", "--top-k", "2"]) == 0
    assert len(json.loads(capsys.readouterr().out)["masks"][0]["predictions"]) == 2
    # Resumed from its backup at step 6 with more steps: it continues, the pair head included.
    longer = tiny_run.tiny_config(architecture, extra, steps=9, checkpoint_every=3, objective=objective)
    assert pretrain(longer, [data], vocab, str(run_dir), verbose=0)["resumed_from_step"] == 6


def test_an_mlm_run_continues_with_nsp_and_back(corpus, tmp_path):
    """--init-from carries the masked LM between a run without the pair head and one with it."""
    import numpy as np

    from keras_mlm.training.pretrain import pretrain

    data, vocab = corpus
    source = pretrain(tiny_run.tiny_config("bert", steps=2, checkpoint_every=2), [data], vocab, str(tmp_path / "mlm"), verbose=0)
    nsp = pretrain(tiny_run.tiny_config("bert", steps=1, checkpoint_every=1, learning_rate=1e-9, objective="mlm+nsp"), [data], vocab,
                   str(tmp_path / "nsp"), verbose=0, init_from=str(tmp_path / "mlm"))
    encoder_before, encoder_after = source["model"].encoder.get_weights(), nsp["model"].masked_lm.encoder.get_weights()
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(encoder_before, encoder_after, strict=True)) < 1e-4
    back = pretrain(tiny_run.tiny_config("bert", steps=1, checkpoint_every=1), [data], vocab, str(tmp_path / "back"), verbose=0, init_from=str(tmp_path / "nsp"))
    assert back["step"] == 1
