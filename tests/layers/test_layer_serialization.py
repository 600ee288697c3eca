"""Every layer: registered, get_config/from_config through JSON, identical outputs with the same weights."""

import json

import keras
import numpy as np
import pytest

from keras_mlm.layers import (
    EncoderEmbeddings,
    FeedForward,
    GatedFeedForward,
    LayerNorm,
    LocalAttentionBias,
    MaskedLMHead,
    ModernEmbeddings,
    ModernTransformerBlock,
    MultiHeadSelfAttention,
    PositionEmbedding,
    Projection,
    ReplacedTokenHead,
    RotarySelfAttention,
    TokenEmbedding,
    TransformerBlock,
)

X = np.random.default_rng(0).normal(size=(2, 5, 8)).astype("float32")
IDS = np.array([[1, 2, 3, 4, 0], [5, 6, 7, 0, 0]], "int32")


def _embedding():
    layer = TokenEmbedding(9, 8, "glorot_uniform")
    layer.build()
    return layer


CASES = [
    ("token_embedding", lambda: TokenEmbedding(9, 8, "glorot_uniform"), lambda layer: layer(IDS)),
    ("position_embedding", lambda: PositionEmbedding(7, 8), lambda layer: layer(X)),
    ("encoder_embeddings", lambda: EncoderEmbeddings(9, 8, max_sequence_length=7, dropout=0.1, seed=3),
     lambda layer: layer(IDS, np.zeros_like(IDS))),
    ("layer_norm", lambda: LayerNorm(1e-5), lambda layer: layer(X)),
    ("attention", lambda: MultiHeadSelfAttention(2, dropout=0.1, seed=1), lambda layer: layer(X)),
    ("feed_forward", lambda: FeedForward(16, activation="gelu_approximate"), lambda layer: layer(X)),
    ("transformer_block", lambda: TransformerBlock(2, 16, dropout=0.1, normalize_first=True, seed=2),
     lambda layer: layer(X)),
    ("mlm_head", lambda: MaskedLMHead(_embedding(), activation="relu"), lambda layer: layer(X, np.array([[0, 3], [1, 4]], "int32"))),
    # The MLM family's layers (ALBERT, ELECTRA, the modern encoder).
    ("layer_norm_without_bias", lambda: LayerNorm(1e-5, center=False), lambda layer: layer(X)),
    ("projection", lambda: Projection(4, use_bias=False), lambda layer: layer(X)),
    ("gated_feed_forward", lambda: GatedFeedForward(12, use_bias=True), lambda layer: layer(X)),
    ("rotary_attention", lambda: RotarySelfAttention(2, max_wavelength=500.0, use_bias=False), lambda layer: layer(X)),
    ("modern_embeddings", lambda: ModernEmbeddings(9, 8, num_segments=2, dropout=0.1, seed=4),
     lambda layer: layer(IDS, np.zeros_like(IDS))),
    ("local_attention_bias", lambda: LocalAttentionBias(2), lambda layer: layer(np.zeros((2, 1, 1, 5), "float32"))),
    ("modern_block", lambda: ModernTransformerBlock(2, 12, dropout=0.1, normalize_attention_input=False, seed=5),
     lambda layer: layer(X)),
    ("replaced_token_head", lambda: ReplacedTokenHead("gelu_approximate"), lambda layer: layer(X)),
]


@pytest.mark.parametrize("name,make,run", CASES, ids=[c[0] for c in CASES])
def test_json_config_round_trip_gives_identical_outputs(name, make, run):
    keras.utils.set_random_seed(0)
    layer = make()
    expected = run(layer)
    config = json.loads(json.dumps(keras.layers.serialize(layer)))
    assert config["registered_name"].startswith("keras_mlm>")
    clone = keras.layers.deserialize(config)
    assert type(clone) is type(layer)
    assert clone.get_config() == layer.get_config()
    run(clone)  # build
    if name == "mlm_head":
        clone.token_embedding.set_weights(layer.token_embedding.get_weights())
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(run(clone), expected)
