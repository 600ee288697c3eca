"""PairPretrainer: masked LM + NSP / SOP on the pooled [CLS], its loss and metrics, fit on pair batches, saving."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_mlm.data.pairs import PairMasker, SentencePairs, pair_pretraining_dataset
from keras_mlm.data.prepare import DataConfig, prepare
from keras_mlm.errors import UserInputError
from keras_mlm.masking import MLMMasker
from keras_mlm.models import AlbertConfig, AlbertEncoder, EncoderConfig, MaskedLM, build_masked_lm
from keras_mlm.models.pair_pretrainer import PairPretrainer, build_pair_pretrainer
from keras_mlm.tokenizers import SPECIAL_TOKENS

PAD, CLS, SEP, MASK = 0, 2, 3, 4
V, SEQ_LEN, BATCH = 20, 16, 32
CONFIG = EncoderConfig(vocabulary_size=V, num_layers=2, hidden_dim=32, num_heads=2, intermediate_dim=64,
                       max_sequence_length=SEQ_LEN, dropout=0.0)


def _model(objective="nsp", dtype=None, **overrides):
    keras.utils.set_random_seed(0)
    return build_pair_pretrainer(build_masked_lm(EncoderConfig(**{**CONFIG.to_dict(), **overrides}), dtype=dtype), objective)


def _pair_masker(objective, seed=0):
    masker = MLMMasker(vocabulary_size=V, mask_token_id=MASK, special_token_ids=[PAD, 1, CLS, SEP, MASK],
                       sequence_length=SEQ_LEN, seed=seed)
    return PairMasker(SentencePairs(objective, SEQ_LEN, CLS, SEP, PAD, seed=seed), masker)


def _rows(n, seed, topics=5):
    """Packed rows of one document each, written with its topic's 3 words (ids 5 + 3 * topic + 0..2)."""
    rng = np.random.default_rng(seed)
    words = 5 + 3 * rng.integers(0, topics, (n, 1)) + rng.integers(0, 3, (n, SEQ_LEN - 1))
    return np.concatenate([np.full((n, 1), CLS), words], axis=1).astype("int32")


def _batches(objective, num_batches, seed, first_step=0):
    pair_masker = _pair_masker(objective)
    return (tf.data.Dataset.from_tensor_slices(_rows(num_batches * BATCH, seed)).batch(BATCH).enumerate()
            .map(lambda step, ids: pair_masker(ids, step + first_step)))


def _batch(objective="nsp", size=4):
    x, y, weights = _pair_masker(objective)(_rows(size, seed=9), step=0)
    return x, y, weights


def test_outputs_are_the_masked_lm_logits_and_two_pair_logits():
    model = _model()
    x, _, _ = _batch()
    outputs = model(x)
    assert sorted(outputs) == ["mlm_logits", "pair_logits"]
    assert outputs["mlm_logits"].dtype == outputs["pair_logits"].dtype == tf.float32
    assert outputs["pair_logits"].shape == (4, 2)
    assert outputs["mlm_logits"].shape == (4, x["mask_positions"].shape[1], V)
    np.testing.assert_array_equal(outputs["mlm_logits"], model.masked_lm(x))  # the masked LM's own head, unchanged
    assert model.encoder is model.masked_lm.encoder and isinstance(model.masked_lm, MaskedLM)
    # Weights counted once: the masked LM's, the pooler (hidden x hidden + bias), the classifier (hidden x 2 + 2).
    weights = model.trainable_weights
    assert len({id(w) for w in weights}) == len(weights)
    assert model.count_params() == model.masked_lm.count_params() + (32 * 32 + 32) + (32 * 2 + 2)


def test_the_pair_head_reads_the_cls_vector_only():
    model = _model()
    x, _, _ = _batch()
    changed = dict(x, token_ids=tf.concat([x["token_ids"][:, :1], x["token_ids"][:, 1:] * 0 + 7], axis=1))
    sequence = model.encoder({k: x[k] for k in ("token_ids", "segment_ids", "padding_mask")})
    expected = model.pair_classifier(model.pooler(sequence[:, 0]))
    np.testing.assert_allclose(model(x)["pair_logits"], expected, rtol=1e-6)
    assert not np.allclose(model(changed)["pair_logits"], model(x)["pair_logits"])  # the [CLS] vector attends to all


def test_loss_is_the_masked_lm_loss_plus_the_weighted_pair_cross_entropy():
    model = _model()
    y = {"mask_ids": tf.constant([[5, 6], [7, 0], [8, 9]]), "pair_labels": tf.constant([0, 1, 1])}
    weights = {"mask_weights": tf.constant([[1.0, 1.0], [1.0, 0.0], [1.0, 1.0]]), "pair_weights": tf.constant([1.0, 1.0, 0.0])}
    pair_logits = np.array([[2.0, 0.0], [0.0, 1.0], [9.0, -9.0]], "float32")  # row 3 weighs 0: its huge loss counts nowhere
    outputs = {"mlm_logits": tf.zeros((3, 2, V)), "pair_logits": tf.constant(pair_logits)}
    losses = model.compute_losses(y, weights, outputs)
    log_softmax = pair_logits - np.log(np.exp(pair_logits).sum(-1, keepdims=True))
    pair = -(log_softmax[0, 0] + log_softmax[1, 1]) / 2
    np.testing.assert_allclose(losses["mlm"], np.log(V), rtol=1e-6)  # uniform logits over 5 weighted slots
    np.testing.assert_allclose(losses["pair"], pair, rtol=1e-6)
    np.testing.assert_allclose(losses["loss"], np.log(V) + pair, rtol=1e-6)


def test_fit_consumes_the_pair_pretraining_dataset_and_logs_mlm_and_nsp_metrics(tmp_path):
    words = [f"w{chr(97 + i)}" for i in range(V - len(SPECIAL_TOKENS))]
    rng = np.random.default_rng(0)
    documents = [" ".join(rng.choice(words, rng.integers(3, 40))) for _ in range(30)]
    (tmp_path / "corpus.txt").write_text("\n\n".join(documents) + "\n")
    vocabulary = list(SPECIAL_TOKENS) + words
    prepare([tmp_path / "corpus.txt"], vocabulary, tmp_path / "shards", DataConfig(seq_len=SEQ_LEN))
    masker = MLMMasker.from_vocabulary(vocabulary, SEQ_LEN, seed=0)
    dataset = pair_pretraining_dataset(str(tmp_path / "shards"), 8, masker, "nsp", vocabulary=vocabulary)
    model = _model("nsp")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
    history = model.fit(dataset, epochs=2, steps_per_epoch=3, verbose=0).history
    assert sorted(history) == ["loss", "masked_accuracy", "mlm_loss", "nsp_accuracy", "nsp_loss", "perplexity"]
    assert all(np.isfinite(v).all() for v in history.values())
    np.testing.assert_allclose(history["loss"][-1], history["mlm_loss"][-1] + history["nsp_loss"][-1], rtol=1e-5)
    assert model.optimizer.iterations.numpy() == 6


def test_sop_on_albert_under_mixed_bfloat16_has_float32_logits_and_trains():
    keras.utils.set_random_seed(0)
    config = AlbertConfig(**{**CONFIG.to_dict(), "embedding_dim": 16})
    encoder = AlbertEncoder.from_encoder_config(config, dtype="mixed_bfloat16", name="encoder")
    model = PairPretrainer(MaskedLM(encoder, name="masked_lm"), "sop")
    assert model.pooler.compute_dtype == model.pair_classifier.compute_dtype == "bfloat16"
    assert model.pooler.kernel.dtype == "float32"
    x, y, weights = _batch("sop")
    outputs = model(x, training=True)
    assert outputs["mlm_logits"].dtype == tf.float32 and outputs["pair_logits"].dtype == tf.float32
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False, run_eagerly=True)  # one step: no tracing
    history = model.fit(tf.data.Dataset.from_tensors((x, y, weights)), verbose=0).history
    assert sorted(history) == ["loss", "masked_accuracy", "mlm_loss", "perplexity", "sop_accuracy", "sop_loss"]
    assert np.isfinite(history["loss"][0]) and history["loss"][0] > history["sop_loss"][0] > 0


def test_keras_save_and_load_give_identical_outputs(tmp_path):
    model = _model("sop")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
    model.save(tmp_path / "pairs.keras")
    loaded = keras.saving.load_model(tmp_path / "pairs.keras")
    assert type(loaded) is PairPretrainer and loaded.objective == "sop"
    assert loaded.optimizer is not None  # compiled as saved
    assert loaded.pair_accuracy.name == "sop_accuracy"
    x, _, _ = _batch("sop")
    expected, got = model(x), loaded(x)
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key])
    # The masked LM saved alone is a plain MaskedLM (fill-mask, evaluation and fine-tuning read it).
    model.masked_lm.save(tmp_path / "masked_lm.keras")
    np.testing.assert_array_equal(keras.saving.load_model(tmp_path / "masked_lm.keras")(x), expected["mlm_logits"])


def test_json_config_round_trip():
    model = _model("nsp")
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(model)))
    clone = keras.saving.deserialize_keras_object(config)
    assert type(clone) is PairPretrainer and clone.get_config()["objective"] == "nsp"
    assert clone.masked_lm.get_config() == model.masked_lm.get_config()
    clone.set_weights(model.get_weights())
    x, _, _ = _batch()
    np.testing.assert_array_equal(clone(x)["pair_logits"], model(x)["pair_logits"])


def test_refusals():
    with pytest.raises(UserInputError, match="nsp, sop"):
        _model("mlm")
    with pytest.raises(ValueError, match="optimizer only"):
        _model().compile(optimizer="adam", loss="mse")
    x, y, weights = _batch()
    model = _model()
    model.compile(optimizer="adam", run_eagerly=True)
    with pytest.raises(ValueError, match="pair_labels"):
        model.fit(tf.data.Dataset.from_tensors((x, y["mask_ids"], weights["mask_weights"])), verbose=0)


@pytest.mark.slow
def test_learns_next_sentence_prediction():
    """Rows of one document each, 5 topics of 3 words: "is next" pairs share a topic, a negative from
    another row shares it 1 time in 5, so 90% is the best accuracy and 50% chance. 100 steps of 32
    pairs: held-out accuracy 0.89 (0.62 after 60 steps). Slow only because this machine is: 100 steps
    took 33 s with 7 jobs on its 2 cores, about 6 s unloaded."""
    model = _model(initializer_range=0.1)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=False)
    held_out_x, held_out_y, _ = next(iter(_batches("nsp", 8, seed=1, first_step=10**6).unbatch().batch(256)))
    accuracy = lambda: np.mean(np.argmax(model(held_out_x)["pair_logits"], -1) == held_out_y["pair_labels"])  # noqa: E731
    assert accuracy() < 0.65
    model.fit(_batches("nsp", 100, seed=0), verbose=0)
    assert accuracy() > 0.8
