"""export-weights: keras-hub presets and Hugging Face BertForMaskedLM folders that keras-hub loads with
the same outputs, and round trips (export then import) that give identical weights and logits."""

import json
import os
import sys
from pathlib import Path

import keras
import keras_hub
import numpy as np
import pytest
from safetensors import safe_open

sys.path.insert(0, str(Path(__file__).resolve().parent))  # checkpoint_sources.py (pytest uses importlib mode)

import checkpoint_sources as sources  # noqa: E402
from keras_mlm.checkpoints import export_weights, import_checkpoint  # noqa: E402
from keras_mlm.data.prepare import DataConfig  # noqa: E402
from keras_mlm.errors import UserInputError  # noqa: E402
from keras_mlm.inference.run import load_run  # noqa: E402
from keras_mlm.models import EncoderConfig, build_masked_lm  # noqa: E402
from keras_mlm.tokenizers.vocab import write_vocabulary  # noqa: E402
from keras_mlm.training.run_config import RunConfig, save_config  # noqa: E402

TOLERANCE = 1e-4
ENCODER_KEYS = ("token_ids", "segment_ids", "padding_mask")


def _native_run(folder, activation="gelu_approximate"):
    """A run folder as `keras-mlm pretrain` leaves it, with random (non-zero) weights everywhere."""
    config = EncoderConfig(
        vocabulary_size=sources.VOCAB, num_layers=2, hidden_dim=16, num_heads=2, intermediate_dim=32,
        max_sequence_length=16, activation=activation,
    )
    keras.utils.set_random_seed(7)
    model = build_masked_lm(config)
    model(sources.probe())
    rng = np.random.default_rng(7)
    model.set_weights([rng.standard_normal(w.shape).astype("float32") * 0.5 + 1.0 * ("gamma" in w.path) for w in model.weights])
    os.makedirs(folder)
    model.save(os.path.join(folder, "model.keras"))
    write_vocabulary(sources.TOKENS, os.path.join(folder, "vocab.txt"))
    run_config = RunConfig(preset="tiny", model={k: v for k, v in config.to_dict().items() if k != "vocabulary_size"},
                           data=DataConfig(seq_len=16))
    save_config(os.path.join(folder, "config.yaml"), run_config, sources.VOCAB)
    return model


def _weights(model):
    return {w.path: w.numpy() for w in model.weights}


def _assert_identical(a, b):
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for path in wa:
        np.testing.assert_array_equal(wa[path], wb[path], err_msg=path)
    batch = sources.probe()
    np.testing.assert_array_equal(np.asarray(a(batch)), np.asarray(b(batch)))


def test_keras_hub_export_loads_in_keras_hub_with_the_same_logits(keras_hub_source, tmp_path):
    import_checkpoint(keras_hub_source[0], str(tmp_path / "run"))
    result = export_weights(str(tmp_path / "run"), "keras-hub", str(tmp_path / "preset"))
    run = load_run(str(tmp_path / "run"))
    hub = keras_hub.models.BertMaskedLM.from_preset(str(tmp_path / "preset"))  # with its tokenizer
    batch = sources.probe()
    np.testing.assert_allclose(np.asarray(hub(batch)), np.asarray(run.model(batch)), atol=TOLERANCE, rtol=0)
    assert hub.preprocessor.tokenizer.get_vocabulary() == sources.TOKENS
    assert hub.preprocessor.tokenizer.lowercase is True
    assert "pooler: newly initialised" in result.summary() and "not exact" not in result.summary()
    assert "logits max |diff|" in result.check


def test_keras_hub_round_trip_is_identical(keras_hub_source, tmp_path):
    import_checkpoint(keras_hub_source[0], str(tmp_path / "a"))
    export_weights(str(tmp_path / "a"), "keras-hub", str(tmp_path / "preset"), check=False)
    import_checkpoint(str(tmp_path / "preset"), str(tmp_path / "b"))
    _assert_identical(load_run(str(tmp_path / "a")).model, load_run(str(tmp_path / "b")).model)


def test_hf_export_has_bert_for_masked_lm_names_and_config(tmp_path):
    model = _native_run(str(tmp_path / "run"))
    result = export_weights(str(tmp_path / "run"), "hf", str(tmp_path / "hf"))
    out = tmp_path / "hf"
    assert sorted(os.listdir(out)) == ["config.json", "model.safetensors", "special_tokens_map.json", "tokenizer_config.json", "vocab.txt"]
    with safe_open(str(out / "model.safetensors"), framework="np") as f:
        names = set(f.keys())
        assert f.metadata() == {"format": "pt"}
        np.testing.assert_array_equal(
            f.get_tensor("bert.encoder.layer.1.attention.self.key.weight"),
            np.split(model.encoder.transformer_blocks[1].attention.qkv_kernel.numpy(), 3, axis=1)[1].T,
        )
    per_layer = {f"bert.encoder.layer.{i}.{n}" for i in range(2) for n in (
        "attention.self.query.weight", "attention.self.query.bias", "attention.self.key.weight", "attention.self.key.bias",
        "attention.self.value.weight", "attention.self.value.bias", "attention.output.dense.weight", "attention.output.dense.bias",
        "attention.output.LayerNorm.weight", "attention.output.LayerNorm.bias", "intermediate.dense.weight",
        "intermediate.dense.bias", "output.dense.weight", "output.dense.bias", "output.LayerNorm.weight", "output.LayerNorm.bias")}
    assert names == per_layer | {
        "bert.embeddings.word_embeddings.weight", "bert.embeddings.position_embeddings.weight",
        "bert.embeddings.token_type_embeddings.weight", "bert.embeddings.LayerNorm.weight", "bert.embeddings.LayerNorm.bias",
        "bert.pooler.dense.weight", "bert.pooler.dense.bias",
        "cls.predictions.transform.dense.weight", "cls.predictions.transform.dense.bias",
        "cls.predictions.transform.LayerNorm.weight", "cls.predictions.transform.LayerNorm.bias", "cls.predictions.bias",
    }  # fmt: skip
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["BertForMaskedLM"] and config["model_type"] == "bert"
    assert config["hidden_act"] == "gelu_new"  # HF's name for the tanh approximation
    assert (config["vocab_size"], config["hidden_size"], config["num_hidden_layers"], config["num_attention_heads"],
            config["intermediate_size"], config["max_position_embeddings"], config["type_vocab_size"]) == (20, 16, 2, 2, 32, 16, 2)
    assert json.loads((out / "tokenizer_config.json").read_text())["do_lower_case"] is True
    assert json.loads((out / "special_tokens_map.json").read_text())["mask_token"] == "[MASK]"
    assert (out / "vocab.txt").read_text().splitlines() == sources.TOKENS
    assert "pooler: newly initialised" in result.summary()


def test_hf_export_loads_in_keras_hubs_converter_with_the_same_sequence_output(tmp_path):
    model = _native_run(str(tmp_path / "run"))
    result = export_weights(str(tmp_path / "run"), "hf", str(tmp_path / "hf"))
    backbone = keras_hub.models.BertBackbone.from_preset(str(tmp_path / "hf"))
    batch = {k: sources.probe()[k] for k in ENCODER_KEYS}
    np.testing.assert_allclose(np.asarray(backbone(batch)["sequence_output"]), np.asarray(model.encoder(batch)), atol=TOLERANCE, rtol=0)
    assert "sequence output max |diff|" in result.check
    # keras-hub's converter loads the tokenizer from vocab.txt and tokenizer_config.json too.
    tokenizer = keras_hub.models.BertTokenizer.from_preset(str(tmp_path / "hf"))
    assert tokenizer.get_vocabulary() == sources.TOKENS


@pytest.mark.parametrize("activation", ["gelu", "gelu_approximate"])
def test_hf_round_trip_is_identical(tmp_path, activation):
    _native_run(str(tmp_path / "a"), activation=activation)
    export_weights(str(tmp_path / "a"), "hf", str(tmp_path / "hf"), check=False)
    result = import_checkpoint(str(tmp_path / "hf"), str(tmp_path / "b"))
    assert result.head == "imported" and result.encoder.activation == activation
    _assert_identical(load_run(str(tmp_path / "a")).model, load_run(str(tmp_path / "b")).model)


def test_hf_import_export_round_trip_is_identical(hf_source, tmp_path):
    import_checkpoint(hf_source[0], str(tmp_path / "a"))
    export_weights(str(tmp_path / "a"), "hf", str(tmp_path / "hf"), check=False)
    import_checkpoint(str(tmp_path / "hf"), str(tmp_path / "b"))
    _assert_identical(load_run(str(tmp_path / "a")).model, load_run(str(tmp_path / "b")).model)


def test_export_says_when_keras_hub_cannot_compute_the_same_math(tmp_path):
    """keras-hub's BertBackbone is tanh-GELU only: an erf-GELU run is exported, with the difference measured."""
    _native_run(str(tmp_path / "run"), activation="gelu")
    result = export_weights(str(tmp_path / "run"), "keras-hub", str(tmp_path / "preset"))
    assert "not exact: encoder activation gelu" in result.summary()
    diff = float(result.check.split("max |diff| ")[1].split()[0])
    assert diff > TOLERANCE


def test_export_is_atomic_and_refuses_a_non_empty_folder(tmp_path):
    _native_run(str(tmp_path / "run"))
    out = tmp_path / "hf"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(UserInputError, match="already exists and is not empty"):
        export_weights(str(tmp_path / "run"), "hf", str(out))
    assert os.listdir(out) == ["keep.txt"]
    with pytest.raises(UserInputError, match="--format 'onnx'"):
        export_weights(str(tmp_path / "run"), "onnx", str(tmp_path / "x"))
    assert sorted(os.listdir(tmp_path)) == ["hf", "run"]  # no temporary left behind


def test_export_and_import_read_and_write_folders_on_ram(tmp_path):
    """A run and the folders written from it on a filesystem of tf.io.gfile's (ram://, standing for gs://)."""
    from keras_mlm import fileio

    _native_run(str(tmp_path / "a"))
    run, hf, b = fileio.copy_tree(str(tmp_path / "a"), "ram://test_export/run"), "ram://test_export/hf", "ram://test_export/b"
    result = export_weights(run, "hf", hf)
    assert float(result.check.split("max |diff| ")[1].split()[0]) < TOLERANCE  # keras-hub loaded it from ram://
    with pytest.raises(UserInputError, match="already exists and is not empty"):
        export_weights(run, "hf", hf)
    import_checkpoint(fileio.copy_tree(hf, str(tmp_path / "hf")), b)  # the readers of sources read local files
    _assert_identical(load_run(str(tmp_path / "a")).model, load_run(b).model)
