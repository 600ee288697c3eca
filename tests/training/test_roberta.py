"""`pretrain --architecture roberta`: byte-level BPE, no segment embedding, RoBERTa's optimizer defaults.

One tiny run (module-scoped; 1 layer, 32 wide, tiny_run.py's corpus with a BPE vocabulary learned on
it) serves the tests that need a trained model.
"""

import math
import sys
from pathlib import Path

import pytest
import yaml

from keras_mlm.errors import UserInputError
from keras_mlm.training.run_config import build_run_config

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tiny_run.py beside this file (importlib mode)
import tiny_run  # noqa: E402
from tiny_run import SEQ_LEN, TINY_MODEL  # noqa: E402

STEPS = 300


def roberta_config(**training):
    values = dict(steps=STEPS, batch_size=32, learning_rate=1e-2, checkpoint_every=STEPS, log_every=100,
                  sample_every=STEPS, warmup_fraction=0.05, seed=0, precision="float32")
    values.update(training)
    return build_run_config({"architecture": "roberta", "preset": "tiny", "model": TINY_MODEL,
                             "data": {"seq_len": SEQ_LEN}, "training": values})


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from keras_mlm.tokenizers.learners import train_bpe

    root = tmp_path_factory.mktemp("corpus")
    text, wordpiece = tiny_run.write_corpus(str(root))
    bpe = train_bpe([text], 1000).save(str(root / "bpe"))  # 308 pieces: the 256 bytes, merges up to each word
    return text, bpe, wordpiece


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    from keras_mlm.training.pretrain import pretrain

    text, bpe, _ = corpus
    run_dir = tmp_path_factory.mktemp("roberta")
    return run_dir, pretrain(roberta_config(), [text], bpe, str(run_dir), verbose=0)


def test_roberta_defaults_are_its_papers_where_nothing_else_is_said():
    config = build_run_config({"architecture": "roberta"})
    training, encoder = config.training, config.encoder_config(100)
    assert (training.beta_1, training.beta_2, training.epsilon, training.warmup_fraction, training.weight_decay) == (0.9, 0.98, 1e-6, 0.06, 0.01)
    assert training.batch_size == 64 and training.learning_rate == pytest.approx(1e-3 * math.sqrt(2), rel=1e-3)
    assert (encoder.num_segments, encoder.layer_norm_epsilon) == (0, 1e-5)
    # A file or a flag still wins over the architecture's default, and bert keeps its own.
    assert build_run_config({"architecture": "roberta", "training": {"beta_2": 0.95}}).training.beta_2 == 0.95
    assert build_run_config({"architecture": "roberta"}, {"training": {"batch_size": 16}}).training.batch_size == 16
    bert = build_run_config({"architecture": "bert"})
    assert bert.training.beta_2 == 0.999 and bert.encoder_config(100).num_segments == 2
    base = build_run_config({"architecture": "roberta", "preset": "base"}).encoder_config(50265)
    assert (base.num_layers, base.hidden_dim, base.num_heads, base.intermediate_dim) == (12, 768, 12, 3072)


def test_roberta_trains_on_bpe_learns_and_has_no_segment_embedding(trained, corpus):
    from keras_mlm.evaluation.evaluate import evaluate
    from keras_mlm.tokenizers.vocabulary import Vocabulary

    run_dir, summary = trained
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["architecture"] == "roberta" and saved["model"]["num_segments"] == 0 and saved["training"]["beta_2"] == 0.98
    assert (run_dir / "vocab-bpe" / "vocab.json").is_file() and not (run_dir / "vocab.txt").exists()
    model = summary["model"]
    assert not [w.path for w in model.weights if "segment" in w.path]
    # Rows are packed RoBERTa's way: <s> doc </s> doc </s> ...
    from keras_mlm.data.dataset import read_rows

    vocabulary = Vocabulary.load(corpus[1])
    row = [vocabulary.tokens[i] for i in next(iter(read_rows(summary["shards"]))).numpy()]
    assert row[0] == "<s>" and "</s>" in row and "[CLS]" not in row
    # The corpus is 21 BPE pieces ("the" opening a document and "Ġthe" inside one are two); their unigram
    # entropy is 2.87 nats and the most frequent piece is 15.3% of them: a model that learned no context
    # scores no better. Measured after 300 steps (float32): loss 2.62, accuracy 0.21 (bert over the same
    # BPE pieces: 2.86, 0.18; roberta after 600 steps: 2.54, 0.28).
    result = evaluate(model, vocabulary, [corpus[0]], seq_len=SEQ_LEN)
    assert result["loss"] < 2.75 and result["accuracy"] > 0.17, result


def test_roberta_refuses_a_wordpiece_vocabulary_with_exit_2(corpus, tmp_path, capsys):
    from keras_mlm.cli.main import main

    text, _, wordpiece = corpus
    code = main(["pretrain", "--data", text, "--vocab", wordpiece, "--out", str(tmp_path / "run"), "--architecture", "roberta"])
    err = capsys.readouterr().err
    assert code == 2 and "a wordpiece vocabulary; architecture roberta reads bpe (keras-mlm vocab --kind bpe)" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "values, message",
    [
        ({"architecture": "roberta", "training": {"objective": "mlm+nsp"}}, "objective 'mlm+nsp' is not one of architecture roberta's (mlm); mlm+nsp is bert's"),
        ({"architecture": "bert", "training": {"objective": "mlm+sop"}}, "objective 'mlm+sop' is not one of architecture bert's (mlm, mlm+nsp); mlm+sop is albert's"),
        ({"training": {"objective": "nsp"}}, "training.objective must be one of mlm, mlm+nsp, mlm+sop, got 'nsp'"),
        ({"architecture": "roberta", "model": {"num_segments": -1}}, "num_segments must be an integer >= 0"),
    ],
)
def test_bad_objectives_are_one_line_naming_the_allowed_values(values, message):
    with pytest.raises(UserInputError) as error:
        build_run_config(values, source="run.yaml").encoder_config(100)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_continued_roberta_run_keeps_its_bpe_vocabulary(trained, corpus, tmp_path):
    from keras_mlm.training.pretrain import pretrain

    run_dir, _ = trained
    text, bpe, wordpiece = corpus
    training = {"steps": 2, "checkpoint_every": 2, "batch_size": 8, "precision": "float32"}
    continued = pretrain(build_run_config({"data": {"seq_len": SEQ_LEN}, "training": training}), [text], bpe,
                         str(tmp_path / "continued"), verbose=0, init_from=str(run_dir))
    saved = yaml.safe_load((tmp_path / "continued" / "config.yaml").read_text())
    assert saved["architecture"] == "roberta" and continued["step"] == 2
    with pytest.raises(UserInputError, match=r"vocab-bpe .* differs from --vocab"):
        pretrain(build_run_config({"training": training}), [text], wordpiece, str(tmp_path / "bad"), verbose=0, init_from=str(run_dir))
