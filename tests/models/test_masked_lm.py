"""MaskedLM: tied gather-first head, float32 logits, .keras and JSON round trips."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_mlm.models import EncoderConfig, MaskedLM, build_masked_lm

CONFIG = EncoderConfig(vocabulary_size=20, num_layers=2, hidden_dim=16, num_heads=2, intermediate_dim=32,
                       max_sequence_length=16, dropout=0.1)


def _model(dtype=None):
    keras.utils.set_random_seed(0)
    return build_masked_lm(CONFIG, dtype=dtype)


def _inputs(batch=2, seq=12, n_masks=3):
    rng = np.random.default_rng(0)
    return {
        "token_ids": rng.integers(5, 20, (batch, seq)).astype("int32"),
        "segment_ids": np.zeros((batch, seq), "int32"),
        "padding_mask": np.ones((batch, seq), "int32"),
        "mask_positions": np.sort(rng.integers(0, seq, (batch, n_masks)), -1).astype("int32"),
    }


def test_logits_only_at_mask_positions():
    model = _model()
    x = _inputs(batch=2, seq=12, n_masks=3)
    logits = model(x)
    assert logits.shape == (2, 3, 20) and logits.dtype == tf.float32
    # Every matmul of a training step, forward and backward: none has batch * seq rows x vocabulary.
    graph = tf.function(lambda x: tf.gradients(model(x, training=True), model.trainable_weights)).get_concrete_function(
        {k: tf.TensorSpec(v.shape, v.dtype) for k, v in x.items()}
    ).graph
    shapes = [tuple(op.outputs[0].shape) for op in graph.get_operations() if "MatMul" in op.type]
    assert (6, 20) in shapes  # the head's (batch * n_masks, vocabulary) projection is there
    assert not [s for s in shapes if s and s[-1] == 20 and np.prod(s[:-1]) == 24]  # nothing at all 24 positions


def test_head_is_tied_to_the_token_embedding():
    model = _model()
    assert model.mlm_head.token_embedding is model.encoder.token_embedding
    head_own = sum(int(np.prod(w.shape)) for w in model.mlm_head.weights if w is not model.encoder.token_embedding.embeddings)
    assert model.count_params() == model.encoder.count_params() + head_own
    assert head_own == 16 * 16 + 16 + 2 * 16 + 20  # transform dense, LayerNorm, output bias


def test_mixed_bfloat16_gives_float32_logits():
    model = _model(dtype="mixed_bfloat16")
    assert model.encoder.transformer_blocks[0].compute_dtype == "bfloat16"
    assert model(_inputs()).dtype == tf.float32
    assert model(_inputs(), training=True).dtype == tf.float32


@pytest.mark.parametrize("dtype", [None, "mixed_bfloat16"])
def test_keras_save_and_load_give_identical_outputs(tmp_path, dtype):
    model = _model(dtype=dtype)
    x = _inputs()
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is MaskedLM and loaded.dtype_policy.name == model.dtype_policy.name
    assert loaded.mlm_head.token_embedding is loaded.encoder.token_embedding
    np.testing.assert_array_equal(loaded(x), model(x))


def test_json_config_round_trip():
    model = _model()
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(model)))
    clone = keras.saving.deserialize_keras_object(config)
    assert type(clone) is MaskedLM
    assert clone.encoder.get_config() == model.encoder.get_config()
    clone.set_weights(model.get_weights())
    x = _inputs()
    np.testing.assert_array_equal(clone(x), model(x))


def _xla_compiled_functions(model, x, training):
    graph = tf.function(lambda x: model(x, training=training)).get_concrete_function(
        {k: tf.TensorSpec(v.shape, v.dtype) for k, v in x.items()}
    ).graph
    library = graph.as_graph_def().library.function
    return [f.signature.name for f in library if "_XlaMustCompile" in f.attr and f.attr["_XlaMustCompile"].b]


def test_inference_graph_has_no_xla_clusters():
    """Exported serving graphs must run without XLA JIT (TF Serving's default); training uses it."""
    model = _model()
    x = _inputs()
    assert _xla_compiled_functions(model, x, training=True)  # the fused kernels are there...
    assert _xla_compiled_functions(model, x, training=False) == []  # ...and only there
