"""BertEncoder: keras-hub's BertBackbone math without the pooler; padding never leaks."""

import keras
import keras_hub
import numpy as np

from keras_mlm.checkpoints.keras_hub_format import assign_backbone
from keras_mlm.checkpoints.layout import encoder_tensors
from keras_mlm.models import BertEncoder, EncoderConfig

CONFIG = EncoderConfig(
    vocabulary_size=20, num_layers=2, hidden_dim=16, num_heads=2, intermediate_dim=32, max_sequence_length=8,
    dropout=0.0, activation="gelu_approximate",
)


def _encoder(**overrides):
    keras.utils.set_random_seed(0)
    return BertEncoder(**{**CONFIG.to_dict(), **overrides})


def _batch(token_ids, segment_ids=None, padding_mask=None):
    token_ids = np.asarray(token_ids, "int32")
    return {
        "token_ids": token_ids,
        "segment_ids": np.zeros_like(token_ids) if segment_ids is None else np.asarray(segment_ids, "int32"),
        "padding_mask": (token_ids != 0).astype("int32") if padding_mask is None else np.asarray(padding_mask),
    }


def test_output_shape_and_no_pooler():
    encoder = _encoder()
    out = encoder(_batch([[2, 5, 6, 3, 0, 0], [2, 7, 3, 0, 0, 0]]))
    assert out.shape == (2, 6, 16)
    h, i, v = 16, 32, 20
    per_layer = (h * 3 * h + 3 * h) + (h * h + h) + (h * i + i) + (i * h + h) + 4 * h
    embeddings = v * h + 8 * h + 2 * h + 2 * h
    assert encoder.count_params() == embeddings + 2 * per_layer  # nothing else (no pooler)
    assert not [w.path for w in encoder.weights if "pool" in w.path]


def test_matches_keras_hub_bert_backbone_with_the_same_weights():
    ours = _encoder()
    hub = keras_hub.models.BertBackbone(
        vocabulary_size=20, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32, dropout=0.0,
        max_sequence_length=8,
    )
    assign_backbone(hub, encoder_tensors(ours))  # the mapping the checkpoint import/export uses

    batch = _batch([[2, 5, 6, 7, 3, 0], [2, 9, 3, 11, 12, 3]], segment_ids=[[0, 0, 0, 0, 0, 0], [0, 0, 0, 1, 1, 1]])
    np.testing.assert_allclose(ours(batch), hub(batch)["sequence_output"], rtol=1e-4, atol=1e-4)


def test_padded_equals_alone():
    """A sequence padded inside a longer batch gives the outputs it gives alone, and the padding's
    contents do not matter at all."""
    encoder = _encoder()
    alone = encoder(_batch([[2, 5, 6, 3]]))
    padded = encoder(_batch([[2, 5, 6, 3, 0, 0, 0, 0], [2, 7, 8, 9, 10, 11, 12, 3]]))
    np.testing.assert_allclose(padded[0, :4], alone[0], rtol=1e-5, atol=1e-5)

    garbage = _batch([[2, 5, 6, 3, 17, 18, 19, 13], [2, 7, 8, 9, 10, 11, 12, 3]],
                     padding_mask=[[1, 1, 1, 1, 0, 0, 0, 0], [1] * 8])
    np.testing.assert_array_equal(encoder(garbage)[0, :4], padded[0, :4])
    np.testing.assert_array_equal(encoder(garbage)[1], padded[1])


def test_boolean_padding_mask_is_accepted():
    encoder = _encoder()
    ints = _batch([[2, 5, 3, 0]])
    bools = dict(ints, padding_mask=ints["padding_mask"].astype(bool))
    np.testing.assert_array_equal(encoder(bools), encoder(ints))


def test_segments_change_the_output():
    encoder = _encoder()
    a = encoder(_batch([[2, 5, 6, 3]], segment_ids=[[0, 0, 0, 0]]))
    b = encoder(_batch([[2, 5, 6, 3]], segment_ids=[[0, 0, 1, 1]]))
    assert np.abs(a - b).max() > 1e-3
