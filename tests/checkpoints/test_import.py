"""Importing keras-hub presets, Hugging Face safetensors folders and google-research/bert checkpoints:
format detection, masked-LM logits equal to the source implementation's within 1e-4, the run folder
later commands read, and the one-line errors for folders that do not map."""

import os
import shutil
import sys
from pathlib import Path

import keras_hub
import numpy as np
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))  # checkpoint_sources.py (pytest uses importlib mode)

import checkpoint_sources as sources  # noqa: E402
from keras_mlm.checkpoints import detect_format, import_checkpoint  # noqa: E402
from keras_mlm.errors import UserInputError  # noqa: E402
from keras_mlm.inference.fill_mask import FillMask  # noqa: E402
from keras_mlm.inference.run import load_run  # noqa: E402
from keras_mlm.training.run_config import build_run_config  # noqa: E402

TOLERANCE = 1e-4
ENCODER_KEYS = ("token_ids", "segment_ids", "padding_mask")


def _import(source, tmp_path, name="run", **kwargs):
    out = str(tmp_path / name)
    result = import_checkpoint(source, out, seq_len=kwargs.pop("seq_len", 12), **kwargs)
    return result, load_run(out)


def _logits(model, batch):
    return np.asarray(model(batch, training=False))


def _sequence(encoder, batch):
    return np.asarray(encoder({k: batch[k] for k in ENCODER_KEYS}, training=False))


def test_formats_are_detected_from_the_files(google_source, hf_source, keras_hub_source, tmp_path):
    assert detect_format(google_source[0]).FORMAT == "google-research"
    assert detect_format(hf_source[0]).FORMAT == "hf"
    assert detect_format(keras_hub_source[0]).FORMAT == "keras-hub"
    with pytest.raises(UserInputError, match="not a checkpoint folder"):
        detect_format(str(tmp_path))


# --- google-research/bert ---------------------------------------------------------------------------


def test_google_research_logits_equal_a_numpy_forward_pass(google_source, tmp_path):
    folder, g = google_source
    result, run = _import(folder, tmp_path)
    batch = sources.probe()
    expected = sources.reference_logits(g, batch, sources.gelu_tanh)  # modeling.py's gelu is the tanh one
    np.testing.assert_allclose(_logits(run.model, batch), expected, atol=TOLERANCE, rtol=0)
    assert result.head == "imported" and result.encoder.activation == "gelu_approximate"


def test_run_folder_has_the_sections_later_commands_read(google_source, tmp_path):
    folder, _ = google_source
    _import(folder, tmp_path, seq_len=12)
    run_dir = tmp_path / "run"
    assert sorted(os.listdir(run_dir)) == ["config.yaml", "model.keras", "vocab.txt"]
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert list(config)[:6] == ["architecture", "preset", "model", "data", "masking", "training"] and config["architecture"] == "bert"
    assert config["imported"] == {"format": "google-research", "source": os.path.abspath(folder), "head": "imported"}
    assert config["data"]["seq_len"] == 12 and config["data"]["lowercase"] is True
    # The file is a valid `pretrain --config` and resolves to exactly the imported encoder.
    run_config = build_run_config({k: v for k, v in config.items() if k != "imported"})
    assert run_config.to_dict(sources.VOCAB)["model"] == config["model"]
    assert (run_dir / "vocab.txt").read_text().split("\n")[:7] == sources.TOKENS[:7]


def test_fill_mask_on_an_imported_run_matches_the_reference(google_source, tmp_path):
    """FillMask finds [CLS]/[SEP]/[MASK]/[PAD] by token: this vocabulary has them at 4, 5, 6 and 0."""
    folder, g = google_source
    _, run = _import(folder, tmp_path)
    fill = FillMask(run.model, run.tokens, run.sequence_length, run.lowercase)
    rows = fill.encode(["the cat [MASK] on the mat"])
    assert rows[0, :8].tolist() == [4, 7, 8, 6, 10, 7, 11, 5]
    probs = fill.probabilities(rows, np.array([[3]], np.int32))[0, 0]
    batch = {"token_ids": rows, "segment_ids": np.zeros_like(rows), "padding_mask": (rows != 0).astype("int32"),
             "mask_positions": np.array([[3]], np.int32)}
    logits = sources.reference_logits(g, batch, sources.gelu_tanh)[0, 0]
    logits[[0, 3, 4, 5, 6]] = -np.inf  # specials are never an answer
    expected = np.exp(logits - logits.max())
    np.testing.assert_allclose(probs, expected / expected.sum(), atol=1e-5)


def test_google_research_without_a_head_initialises_one(tmp_path):
    g = sources.write_google(str(tmp_path / "src"), sources.google_tensors(head=False))
    result, run = _import(str(tmp_path / "src"), tmp_path)
    assert result.head == "initialised" and "initialised" in result.summary()
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["imported"]["head"] == "initialised"
    batch = sources.probe()
    expected = sources.reference_sequence_output(g, batch, sources.gelu_tanh)
    np.testing.assert_allclose(_sequence(run.model.encoder, batch), expected, atol=TOLERANCE, rtol=0)
    head = run.model.mlm_head
    np.testing.assert_array_equal(head.output_bias.numpy(), 0.0)  # a fresh head, not leftovers
    assert 0.005 < head.transform_kernel.numpy().std() < 0.03  # truncated normal, stddev initializer_range


@pytest.mark.parametrize(
    ("drop", "message"),
    [
        ("bert/encoder/layer_1/intermediate/dense/kernel", "tensor bert/encoder/layer_1/intermediate/dense/kernel .*is missing"),
        ("cls/predictions/output_bias", "MLM head is incomplete: tensor cls/predictions/output_bias .*is missing"),
    ],
)
def test_google_research_missing_tensor_is_named_and_nothing_is_written(tmp_path, drop, message):
    tensors = sources.google_tensors()
    del tensors[drop]
    sources.write_google(str(tmp_path / "src"), tensors)
    with pytest.raises(UserInputError, match=message):
        import_checkpoint(str(tmp_path / "src"), str(tmp_path / "run"))
    assert sorted(os.listdir(tmp_path)) == ["src"]  # no run folder, no temporary left behind


def test_google_research_unknown_activation_is_named(tmp_path):
    sources.write_google(str(tmp_path / "src"), config=sources.bert_config(hidden_act="swishy"))
    with pytest.raises(UserInputError, match=r"bert_config.json: hidden_act 'swishy' is not supported"):
        import_checkpoint(str(tmp_path / "src"), str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


# --- Hugging Face -------------------------------------------------------------------------------------


def test_hf_exact_gelu_logits_equal_a_numpy_forward_pass(hf_source, tmp_path):
    folder, g = hf_source
    result, run = _import(folder, tmp_path)
    batch = sources.probe()
    expected = sources.reference_logits(g, batch, sources.gelu_erf)  # HF's "gelu" is the erf one
    np.testing.assert_allclose(_logits(run.model, batch), expected, atol=TOLERANCE, rtol=0)
    assert result.encoder.activation == "gelu" and result.head == "imported"
    # keras-hub's HF converter computes tanh-GELU whatever config.json says: measurably not this model.
    hub = keras_hub.models.BertBackbone.from_preset(folder)
    hub_out = np.asarray(hub({k: batch[k] for k in ENCODER_KEYS})["sequence_output"])
    assert np.abs(hub_out - _sequence(run.model.encoder, batch)).max() > TOLERANCE  # the test tells them apart


def test_hf_tanh_gelu_matches_keras_hubs_converter(tmp_path):
    g = sources.google_tensors(seed=3)
    sources.write_hf(str(tmp_path / "src"), sources.hf_from_google(g), hidden_act="gelu_new")
    _, run = _import(str(tmp_path / "src"), tmp_path)
    batch = sources.probe()
    hub = keras_hub.models.BertBackbone.from_preset(str(tmp_path / "src"))  # keras-hub's own HF converter
    hub_sequence = np.asarray(hub({k: batch[k] for k in ENCODER_KEYS})["sequence_output"])
    np.testing.assert_allclose(_sequence(run.model.encoder, batch), hub_sequence, atol=TOLERANCE, rtol=0)
    # keras-hub ports the encoder only: the head is checked through the checkpoint's own tensors.
    expected = sources.reference_head_logits(g, hub_sequence.astype(np.float64), batch["mask_positions"], sources.gelu_tanh)
    np.testing.assert_allclose(_logits(run.model, batch), expected, atol=TOLERANCE, rtol=0)


def test_hf_bert_model_without_prefix_or_head(tmp_path):
    g = sources.google_tensors(seed=4, head=False)
    tensors = {k.removeprefix("bert."): v for k, v in sources.hf_from_google(g).items()}  # BertModel's names
    sources.write_hf(str(tmp_path / "src"), tensors, hidden_act="gelu", do_lower_case=False)
    result, run = _import(str(tmp_path / "src"), tmp_path)
    assert result.head == "initialised" and run.lowercase is False
    batch = sources.probe()
    expected = sources.reference_sequence_output(g, batch, sources.gelu_erf)
    np.testing.assert_allclose(_sequence(run.model.encoder, batch), expected, atol=TOLERANCE, rtol=0)


def test_hf_sharded_safetensors(tmp_path):
    from safetensors.numpy import save_file

    g = sources.google_tensors(seed=5)
    tensors = sources.hf_from_google(g)
    folder = tmp_path / "src"
    sources.write_hf(str(folder), tensors)
    os.remove(folder / "model.safetensors")
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for file, keys in shards.items():
        save_file({k: tensors[k] for k in keys}, str(folder / file), metadata={"format": "pt"})
    sources.write_json(str(folder / "model.safetensors.index.json"),
                       {"metadata": {}, "weight_map": {k: f for f, keys in shards.items() for k in keys}})
    _, run = _import(str(folder), tmp_path)
    batch = sources.probe()
    np.testing.assert_allclose(_logits(run.model, batch), sources.reference_logits(g, batch, sources.gelu_erf), atol=TOLERANCE, rtol=0)


def test_hf_pickled_bin_only_is_refused(hf_source, tmp_path):
    folder = tmp_path / "src"
    shutil.copytree(hf_source[0], folder)
    os.remove(folder / "model.safetensors")
    (folder / "pytorch_model.bin").write_bytes(b"not opened")
    with pytest.raises(UserInputError, match=r"no model.safetensors, only pytorch_model.bin; keras-mlm reads safetensors only"):
        import_checkpoint(str(folder), str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_hf_vocabulary_size_must_equal_the_embedding(hf_source, tmp_path):
    folder = tmp_path / "src"
    shutil.copytree(hf_source[0], folder)
    sources.write_vocab(str(folder), sources.TOKENS[:-1])
    with pytest.raises(UserInputError, match=r"vocab.txt: 19 tokens, but the token embedding bert.embeddings.word_embeddings.weight .*has 20 rows"):
        import_checkpoint(str(folder), str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_hf_config_that_does_not_match_the_tensors(tmp_path):
    sources.write_hf(str(tmp_path / "src"), config_overrides={"vocab_size": 30})
    with pytest.raises(UserInputError, match=r"tensor bert.embeddings.word_embeddings.weight .*has shape \(20, 16\), the config implies \(30, 16\)"):
        import_checkpoint(str(tmp_path / "src"), str(tmp_path / "run"))


def test_hf_unknown_activation_and_untied_decoder(tmp_path):
    sources.write_hf(str(tmp_path / "act"), hidden_act="mish_v2")
    with pytest.raises(UserInputError, match=r"config.json: hidden_act 'mish_v2' is not supported"):
        import_checkpoint(str(tmp_path / "act"), str(tmp_path / "run"))
    tensors = sources.hf_from_google(sources.google_tensors())
    tensors["cls.predictions.decoder.weight"] = tensors["bert.embeddings.word_embeddings.weight"] + 1.0
    sources.write_hf(str(tmp_path / "untied"), tensors)
    with pytest.raises(UserInputError, match=r"cls.predictions.decoder.weight differs from bert.embeddings.word_embeddings.weight"):
        import_checkpoint(str(tmp_path / "untied"), str(tmp_path / "run"))


def test_hf_config_number_that_is_not_a_number_is_named(tmp_path):
    sources.write_hf(str(tmp_path / "src"), config_overrides={"layer_norm_eps": "tiny"})
    with pytest.raises(UserInputError, match=r"config.json: field 'layer_norm_eps' is 'tiny', not a number"):
        import_checkpoint(str(tmp_path / "src"), str(tmp_path / "run"))


@pytest.mark.parametrize(("model_type", "name"), [("roberta", "RoBERTa"), ("albert", "ALBERT")])
def test_hf_other_architectures_are_not_supported_yet(tmp_path, model_type, name):
    sources.write_hf(str(tmp_path / "src"), config_overrides={"model_type": model_type})
    with pytest.raises(UserInputError, match=rf"the {name} architecture \(model_type '{model_type}'\) is not supported yet"):
        import_checkpoint(str(tmp_path / "src"), str(tmp_path / "run"))


# --- keras-hub ----------------------------------------------------------------------------------------


def test_keras_hub_masked_lm_logits_equal_keras_hubs(keras_hub_source, tmp_path):
    folder, hub = keras_hub_source
    result, run = _import(folder, tmp_path)
    batch = sources.probe()
    ours = _logits(run.model, batch)
    np.testing.assert_allclose(ours, np.asarray(hub(batch)), atol=TOLERANCE, rtol=0)
    reloaded = keras_hub.models.BertMaskedLM.from_preset(folder, preprocessor=None)
    np.testing.assert_allclose(ours, np.asarray(reloaded(batch)), atol=TOLERANCE, rtol=0)
    # keras-hub's math, kept: tanh-GELU encoder, erf-GELU head with LayerNorm epsilon 1e-5.
    assert result.encoder.activation == "gelu_approximate" and result.head == "imported"
    assert (run.model.head_activation, run.model.head_layer_norm_epsilon) == ("gelu", 1e-5)


def test_keras_hub_backbone_preset_initialises_the_head(tmp_path):
    hub = sources.keras_hub_masked_lm(seed=6)
    hub.backbone.save_to_preset(str(tmp_path / "src"))
    hub.preprocessor.tokenizer.save_to_preset(str(tmp_path / "src"))
    result, run = _import(str(tmp_path / "src"), tmp_path)
    assert result.head == "initialised"
    batch = sources.probe()
    hub_sequence = np.asarray(hub.backbone({k: batch[k] for k in ENCODER_KEYS})["sequence_output"])
    np.testing.assert_allclose(_sequence(run.model.encoder, batch), hub_sequence, atol=TOLERANCE, rtol=0)


def test_keras_hub_roberta_is_not_supported_yet(tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    sources.write_json(str(folder / "config.json"), {
        "module": "keras_hub.src.models.roberta.roberta_backbone", "class_name": "RobertaBackbone",
        "config": {}, "registered_name": "keras_hub>RobertaBackbone",
    })  # fmt: skip
    with pytest.raises(UserInputError, match=r"the RoBERTa architecture \(RobertaBackbone\) is not supported yet"):
        import_checkpoint(str(folder), str(tmp_path / "run"))


def test_existing_run_folder_is_not_overwritten(google_source, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(UserInputError, match="already exists and is not empty"):
        import_checkpoint(google_source[0], str(out))
    assert os.listdir(out) == ["keep.txt"]
    import_checkpoint(google_source[0], str(out), overwrite=True)
    assert sorted(os.listdir(out)) == ["config.yaml", "model.keras", "vocab.txt"]
