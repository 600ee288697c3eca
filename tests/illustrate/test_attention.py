"""The attention drawn is the model's: recomputed probabilities are distributions over the real
tokens and, through the value and output projections, reproduce each layer's real attention output."""

import numpy as np
import pytest
import tensorflow as tf

from keras_mlm.errors import UserInputError
from keras_mlm.illustrate.attention import AttentionProbe, attention_output
from keras_mlm.layers.attention import padding_mask_to_attention_bias


def encoder_inputs(rows, pad_id=0):
    rows = np.asarray(rows, np.int32)
    return {
        "token_ids": tf.constant(rows),
        "segment_ids": tf.zeros_like(rows),
        "padding_mask": tf.constant(rows != pad_id),
    }


def two_rows(length, vocabulary_size, seed=0):
    """Two [CLS] ... [SEP] rows of random word ids, 9 and 5 real tokens, padded to `length`."""
    rng = np.random.default_rng(seed)
    rows = np.zeros((2, length), np.int32)
    for row, real in zip(rows, (9, 5)):
        row[:real] = [2, *rng.integers(5, vocabulary_size, real - 2), 3]
    return rows


def test_probabilities_sum_to_one_over_real_tokens_and_zero_on_padding(trained_run):
    _, run = trained_run
    rows = two_rows(48, len(run.tokens))
    probabilities = AttentionProbe(run.model.encoder)(encoder_inputs(rows))  # (2, heads, 48, 48)
    assert probabilities.shape == (2, 2, 48, 48)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-6)
    for b, real in enumerate((9, 5)):
        assert np.all(probabilities[b, :, :, real:] == 0.0)  # padded keys get exactly nothing
        # Not uniform: the trained heads prefer some tokens.
        assert probabilities[b, :, :real, :real].std() > 1e-3


def test_recomputed_probabilities_reproduce_the_layer_output(trained_run):
    _, run = trained_run
    probe = AttentionProbe(run.model.encoder, layer=-1)
    inputs = encoder_inputs(two_rows(48, len(run.tokens), seed=1))
    x, bias = probe.block_inputs(inputs)
    probabilities = probe(inputs)
    real = probe.attention(x, attention_bias=bias, training=False).numpy()
    recomputed = attention_output(probe.attention, x, tf.constant(probabilities)).numpy()
    assert np.abs(real - recomputed).max() < 1e-5


@pytest.mark.parametrize("layer", [0, 1, -1, -2])
def test_every_layer_of_a_deeper_encoder(layer):
    """A 2-layer encoder: the probe reads the chosen block's true input (the output of the blocks
    before it) and reproduces that block's attention output."""
    from keras_mlm.models import BertEncoder

    encoder = BertEncoder(30, num_layers=2, hidden_dim=16, num_heads=4, intermediate_dim=32, max_sequence_length=24, dropout=0.0)
    rows = two_rows(24, 30, seed=2)
    inputs = encoder_inputs(rows)
    probe = AttentionProbe(encoder, layer)
    x, bias = probe.block_inputs(inputs)
    # The block's input computed by hand: embeddings, then the blocks before it.
    expected = encoder.embeddings(inputs["token_ids"], inputs["segment_ids"])
    padding_bias = padding_mask_to_attention_bias(inputs["padding_mask"], expected.dtype)
    for block in encoder.transformer_blocks[: layer % 2]:
        expected = block(expected, attention_bias=padding_bias)
    np.testing.assert_allclose(x.numpy(), expected.numpy(), atol=1e-6)
    probabilities = probe(inputs)
    np.testing.assert_allclose(probabilities[0, :, :9].sum(-1), 1.0, atol=1e-6)
    real = probe.attention(x, attention_bias=bias, training=False).numpy()
    assert np.abs(real - attention_output(probe.attention, x, tf.constant(probabilities)).numpy()).max() < 1e-5


def test_a_layer_the_encoder_lacks_is_a_user_error(trained_run):
    _, run = trained_run
    with pytest.raises(UserInputError, match="--layer 1: the encoder has 1 layer"):
        AttentionProbe(run.model.encoder, layer=1)


def test_illustrated_attention_rows_are_the_probe_rows(illustrator):
    """What the picture draws for a target is row `position` of the probe's head mean, over real tokens."""
    example = illustrator("the cat sat on a mat", seed=0)
    target = example.targets[0]
    assert len(target.attention) == len(example.tokens)
    assert abs(sum(target.attention) - 1.0) < 1e-5
    assert abs(target.left + target.itself + target.right - 1.0) < 1e-5
    ids = {t: i for i, t in enumerate(illustrator.tokens)}
    row = np.zeros((1, illustrator.sequence_length), np.int32)
    row[0, : len(example.seen)] = [ids[t] for t in example.seen]
    probabilities = illustrator.probe(-1)(encoder_inputs(row))[0].mean(axis=0)
    np.testing.assert_allclose(target.attention, probabilities[target.position, : len(example.seen)], atol=1e-6)


def recorded_attention_inputs(encoder, inputs):
    """The inputs each block really passes to its attention layer, recorded by wrapping `call`."""
    records = []
    for block in encoder.transformer_blocks:
        original = block.attention.call

        def record(x, attention_bias=None, training=None, original=original):
            records.append(x)
            return original(x, attention_bias=attention_bias, training=training)

        block.attention.call = record
    try:
        encoder(inputs, training=False)
    finally:
        for block in encoder.transformer_blocks:
            del block.attention.call
    return records


def test_pre_norm_rotary_local_attention_of_a_modern_encoder():
    """ModernBERT blocks normalise first (except layer 0), rotate q/k and attend locally in some layers:
    the probe reads what each block feeds its attention, and local layers give 0 outside the window."""
    modern = pytest.importorskip("keras_mlm.models.modern")
    encoder = modern.ModernEncoder(30, num_layers=3, hidden_dim=16, num_heads=2, intermediate_dim=32, max_sequence_length=64,
                                   local_attention_window=4)
    inputs = encoder_inputs(two_rows(24, 30, seed=3))
    records = recorded_attention_inputs(encoder, inputs)
    local_layers = 0
    for layer in range(3):
        probe = AttentionProbe(encoder, layer)
        x, bias = probe.block_inputs(inputs)
        np.testing.assert_allclose(x.numpy(), records[layer].numpy(), atol=1e-6)
        probabilities = probe(inputs)
        np.testing.assert_allclose(probabilities[0, :, :9].sum(-1), 1.0, atol=1e-6)
        real = probe.attention(x, attention_bias=bias, training=False).numpy()
        assert np.abs(real - attention_output(probe.attention, x, tf.constant(probabilities)).numpy()).max() < 1e-5
        local_layers += bool(np.all(probabilities[0, :, 0, 3:9] == 0.0))  # window 4: 2 tokens each side
    assert 1 <= local_layers < 3
