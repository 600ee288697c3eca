"""Continued pre-training from an imported checkpoint: step 0 computes the source model's loss."""

import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # checkpoint_sources.py (pytest uses importlib mode)

import checkpoint_sources as sources  # noqa: E402
from keras_mlm.checkpoints import import_checkpoint  # noqa: E402
from keras_mlm.data.dataset import pretraining_dataset  # noqa: E402
from keras_mlm.data.prepare import DataConfig  # noqa: E402
from keras_mlm.losses import MaskedLMLoss  # noqa: E402
from keras_mlm.masking import MaskingConfig, MLMMasker  # noqa: E402
from keras_mlm.training.config import TrainingConfig  # noqa: E402
from keras_mlm.training.pretrain import pretrain  # noqa: E402
from keras_mlm.training.run_config import RunConfig  # noqa: E402

SENTENCES = ["the cat sat on the mat", "a big red dog ran", "hello world the sky is blue", "the dogs sat on a big mat"]


def test_pretrain_init_from_an_imported_keras_hub_preset_starts_at_the_source_loss(keras_hub_source, tmp_path):
    folder, hub = keras_hub_source
    import_checkpoint(folder, str(tmp_path / "imported"), seq_len=16)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(SENTENCES * 4) + "\n")
    training = TrainingConfig(steps=1, batch_size=4, checkpoint_every=1, log_every=100, sample_every=100, precision="float32", seed=3)
    config = RunConfig(model={"dropout": 0.0}, data=DataConfig(seq_len=16), training=training)
    summary = pretrain(config, [str(corpus)], str(tmp_path / "imported" / "vocab.txt"), str(tmp_path / "continued"),
                       verbose=0, init_from=str(tmp_path / "imported"))

    # The first batch the run trained on, rebuilt as pretrain builds it (same shards, seeds and masker).
    tokens = sources.TOKENS
    masker = MLMMasker.from_vocabulary(tokens, 16, MaskingConfig(), seed=training.seed)
    dataset = pretraining_dataset(summary["shards"], training.batch_size, masker, seed=training.seed,
                                  shuffle_buffer=training.shuffle_buffer, vocabulary=tokens)
    x, mask_ids, mask_weights = next(iter(dataset))
    assert float(np.sum(mask_weights)) > 0
    hub_logits = hub({k: x[k] for k in ("token_ids", "segment_ids", "padding_mask", "mask_positions")})  # keras-hub's model
    expected = float(MaskedLMLoss()(mask_ids, hub_logits, mask_weights))
    np.testing.assert_allclose(summary["loss"], expected, rtol=1e-5)
    assert summary["step"] == 1 and os.path.isfile(tmp_path / "continued" / "model.keras")
    model = summary["model"]  # keras-hub's head math carried over: erf-GELU, LayerNorm epsilon 1e-5
    assert (model.head_activation, model.head_layer_norm_epsilon) == ("gelu", 1e-5)
