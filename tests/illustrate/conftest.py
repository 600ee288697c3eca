"""One tiny run trained once for all illustration tests: 1 layer, 32 wide, six literal sentences.

Rows are SEQ_LEN (48) tokens long so a sentence long enough to wrap across lines still fits the model.
"""

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "training"))  # tiny_run.py (importlib mode)
sys.path.insert(0, str(HERE))  # illustrate_texts.py
import tiny_run  # noqa: E402
from illustrate_texts import SEQ_LEN  # noqa: E402

STEPS = 150


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """(run folder, LoadedRun) of the tiny model after STEPS steps (loss well below uniform's 3.2)."""
    from keras_mlm.inference.run import load_run
    from keras_mlm.training.pretrain import pretrain
    from keras_mlm.training.run_config import build_run_config

    corpus = tmp_path_factory.mktemp("corpus")
    tiny_run.write_corpus(str(corpus))
    config = build_run_config(
        {
            "preset": "tiny",
            "model": tiny_run.TINY_MODEL,
            "data": {"seq_len": SEQ_LEN},
            "masking": {"selection_rate": 0.15},  # the figures below count BERT's 15% (the default architecture selects 30%)
            "training": dict(steps=STEPS, batch_size=16, learning_rate=1e-2, checkpoint_every=STEPS, log_every=STEPS,
                             sample_every=10**6, warmup_fraction=0.05, seed=0, precision="float32"),
        }
    )
    run_dir = tmp_path_factory.mktemp("run")
    pretrain(config, [str(corpus / "corpus.txt")], str(corpus / "vocab.txt"), str(run_dir), verbose=0)
    return run_dir, load_run(str(run_dir))


@pytest.fixture(scope="session")
def illustrator(trained_run):
    from keras_mlm.illustrate.illustration import Illustrator, masking_config_of

    _, run = trained_run
    return Illustrator(run.model, run.tokens, run.sequence_length, masking_config_of(run.config), run.lowercase)
