"""Precision and compilation: mixed bfloat16/float16 train on CPU with float32 logits and loss; XLA == graph."""

import sys
from pathlib import Path

import keras
import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # tiny_run.py, the tiny-run helper beside these tests (pytest uses importlib mode)

from tiny_run import SEQ_LEN, WORDS, max_difference, run, write_corpus

# 40 steps of 16 rows: enough for the loss to fall from chance, ln(25) = 3.22 (measured 2.75 with
# either mixed policy and with float32), below 2.9, under ln(20) = 3.0, the loss of a model that has
# only learnt that specials are never the answer.
LEARNING = {"steps": 40, "batch_size": 16, "checkpoint_every": 20, "learning_rate": 2e-2, "warmup_fraction": 0.1}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    write_corpus(root)
    return root


@pytest.fixture(autouse=True)
def float32_afterwards():
    yield
    keras.mixed_precision.set_global_policy("float32")  # pretrain sets the global policy


def _batch(model):
    ids = np.random.default_rng(0).integers(5, 5 + len(WORDS), (2, SEQ_LEN)).astype("int32")
    x = {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": np.ones_like(ids, bool), "mask_positions": np.array([[1, 2], [3, 4]], "int32")}
    return x, ids[:, 1:3]


@pytest.mark.parametrize("precision, compute_dtype", [("mixed_bfloat16", "bfloat16"), ("mixed_float16", "float16")])
def test_mixed_precision_trains_with_float32_logits_and_loss(corpus, tmp_path, precision, compute_dtype):
    from keras_mlm.losses import MaskedLMLoss

    _, summary = run(str(corpus), str(tmp_path), str(tmp_path / "w.npz"), precision=precision, **LEARNING)
    model = summary["model"]
    assert summary["step"] == 40
    assert np.isfinite(summary["loss"]) and summary["loss"] < 2.9
    assert model.dtype_policy.name == precision and model.encoder.compute_dtype == compute_dtype
    assert {v.dtype for v in model.trainable_variables} == {"float32"}  # master weights stay float32
    x, y = _batch(model)
    logits = model(x)
    assert logits.dtype == "float32"
    assert MaskedLMLoss()(y, logits).dtype == "float32"
    # float16 needs loss scaling (Keras wraps the optimizer at compile); bfloat16 has float32's range.
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer) == (precision == "mixed_float16")


def test_xla_compiled_training_matches_graph_mode(corpus, tmp_path):
    steps = {"steps": 6, "checkpoint_every": 3, "learning_rate": 1e-2}
    graph, _ = run(str(corpus), str(tmp_path / "graph"), str(tmp_path / "g.npz"), jit_compile=False, **steps)
    xla, summary = run(str(corpus), str(tmp_path / "xla"), str(tmp_path / "x.npz"), jit_compile=True, **steps)
    assert summary["model"].jit_compile is True
    # Fused kernels round differently: measured 5e-5 after 40 steps at 2e-2; 6 steps stay well below 1e-4.
    assert max_difference(graph, xla) < 1e-4


@pytest.fixture
def device(tmp_path, monkeypatch):
    """Fakes the device's capability: `device(cpu_flags="...", gpus=[(8, 0)])`."""
    from keras_mlm.training import strategy

    def fake(cpu_flags="fpu sse avx2", gpus=()):
        cpuinfo = tmp_path / "cpuinfo"
        cpuinfo.write_text(f"processor\t: 0\nmodel name\t: fake\nflags\t\t: {cpu_flags}\n\nprocessor\t: 1\nflags\t\t: {cpu_flags}\n")
        monkeypatch.setattr(strategy, "CPUINFO", str(cpuinfo))
        monkeypatch.setattr(strategy, "gpu_compute_capabilities", lambda: list(gpus))

    return fake


@pytest.mark.parametrize(
    "cpu_flags, gpus, expected, reason",
    [
        ("fpu avx512f avx512_bf16", (), "mixed_bfloat16", "avx512_bf16"),  # AMD Zen 4, Intel Cooper Lake
        ("fpu avx512f amx_bf16 amx_tile", (), "mixed_bfloat16", "amx_bf16"),  # Intel Sapphire Rapids
        ("fpu avx2 avx512f avx512_fp16", (), "float32", "no native bfloat16"),  # emulated: slower than float32
        ("fpu avx512_bf16", [(8, 0), (9, 0)], "mixed_bfloat16", "compute capability 8.0"),  # A100, H100
        ("fpu avx512_bf16", [(8, 6), (7, 5)], "float32", "7.5 is below 8.0"),  # a T4 among them: the GPUs decide
    ],
)
def test_auto_precision_follows_the_devices_native_bfloat16(device, cpu_flags, gpus, expected, reason):
    from keras_mlm.training.strategy import resolve_precision

    device(cpu_flags, gpus)
    precision, why = resolve_precision("auto")
    assert precision == expected and reason in why
    assert resolve_precision("float32")[0] == "float32"  # an explicit choice is kept


def test_auto_is_the_default_and_the_run_saves_its_choice(corpus, tmp_path, device, capsys):
    import yaml

    from keras_mlm.training.pretrain import pretrain
    from keras_mlm.training.run_config import build_run_config
    from tiny_run import TINY_MODEL

    expected = "mixed_bfloat16"
    device("fpu avx512_bf16")  # the other branch's choice is tested above, without a run
    config = build_run_config({"model": TINY_MODEL, "data": {"seq_len": SEQ_LEN}, "training": {"steps": 2, "batch_size": 8, "checkpoint_every": 2}})
    assert config.training.precision == "auto"
    summary = pretrain(config, [str(corpus / "corpus.txt")], str(corpus / "vocab.txt"), str(tmp_path), verbose="lines")
    assert summary["precision"] == expected and summary["model"].dtype_policy.name == expected
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert saved["training"]["precision"] == expected and saved["precision_requested"] == "auto"
    assert f"precision: {expected} (auto: " in capsys.readouterr().out
