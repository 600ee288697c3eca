"""Tiny source checkpoints in every format, written once per session into a temporary folder."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # checkpoint_sources.py (pytest uses importlib mode)

import checkpoint_sources as sources  # noqa: E402


@pytest.fixture(scope="session")
def google_source(tmp_path_factory):
    """(folder, tensors): a google-research/bert folder with an MLM head."""
    folder = tmp_path_factory.mktemp("google") / "bert"
    return str(folder), sources.write_google(str(folder))


@pytest.fixture(scope="session")
def hf_source(tmp_path_factory):
    """(folder, google-named tensors): an HF BertForMaskedLM folder, exact GELU, old gamma/beta names."""
    folder = tmp_path_factory.mktemp("hf") / "bert"
    g = sources.google_tensors(seed=1)
    sources.write_hf(str(folder), sources.hf_from_google(g, ("gamma", "beta")), hidden_act="gelu")
    return str(folder), g


@pytest.fixture(scope="session")
def keras_hub_source(tmp_path_factory):
    """(folder, model): a keras-hub BertMaskedLM preset and the in-process model that wrote it."""
    folder = tmp_path_factory.mktemp("keras_hub") / "bert"
    model = sources.keras_hub_masked_lm(seed=2)
    model.save_to_preset(str(folder))
    return str(folder), model
