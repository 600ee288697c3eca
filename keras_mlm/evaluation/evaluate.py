"""Held-out masked-LM evaluation and pseudo-log-likelihood scoring.

`evaluate` masks the held-out rows with the fixed evaluation mask (a pure function of the row and the
seed), so two runs of it print the same numbers. Loss, accuracy and perplexity are exact ratios of sums
over the whole set (weighted by `mask_weights`), not means of per-batch means.

`score` is the pseudo-log-likelihood of Salazar et al. (2020): each token masked in turn, all the
masked copies of a sentence scored in batches, PLL = sum of log p(token | rest).
"""

import os
import tempfile

import numpy as np
import tensorflow as tf

from keras_mlm.data.dataset import evaluation_dataset
from keras_mlm.data.prepare import MANIFEST, DataConfig, prepare
from keras_mlm.errors import UserInputError

EVAL_SEED = 1234


def _masked_sums(model, batch_size=64):
    @tf.function(reduce_retracing=True)
    def step(x, y, w):
        logits = tf.cast(model(x, training=False), tf.float32)
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
        correct = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), y), tf.float32)
        return tf.reduce_sum(ce * w), tf.reduce_sum(correct * w), tf.reduce_sum(w)

    return step


def evaluate(model, tokens, data, batch_size=64, masking=None, seq_len=None, seed=EVAL_SEED):
    """Masked loss, accuracy and perplexity on `data` (a shards directory or text files/folders).

    Returns {"loss", "accuracy", "perplexity", "tokens"}: `tokens` is the number of masked tokens scored.
    """
    from keras_mlm.masking import MaskingConfig, MLMMasker

    paths = [data] if isinstance(data, (str, os.PathLike)) else list(data)
    with tempfile.TemporaryDirectory(prefix="keras-mlm-eval-") as scratch:
        if len(paths) == 1 and os.path.isfile(os.path.join(paths[0], MANIFEST)):
            shards = os.fspath(paths[0])
        else:
            shards = os.path.join(scratch, "shards")
            prepare(paths, tokens, shards, DataConfig(seq_len=seq_len or 128))
        from keras_mlm.data.prepare import read_manifest

        manifest = read_manifest(shards)
        masker = MLMMasker.from_vocabulary(tokens, manifest["seq_len"], masking or MaskingConfig(), seed=seed, deterministic=True)
        step = _masked_sums(model)
        loss_sum = correct_sum = weight_sum = 0.0
        for x, y, w in evaluation_dataset(shards, batch_size, masker, vocabulary=tokens):
            a, b, c = step(x, y, w)
            loss_sum, correct_sum, weight_sum = loss_sum + float(a), correct_sum + float(b), weight_sum + float(c)
    if weight_sum == 0:
        raise UserInputError("no token was masked: the evaluation data is empty")
    loss = loss_sum / weight_sum
    return {"loss": loss, "accuracy": correct_sum / weight_sum, "perplexity": float(np.exp(loss)), "tokens": int(round(weight_sum))}


def score(model, tokens, sentences, sequence_length=128, batch_size=64, lowercase=None):
    """Pseudo-log-likelihood of each sentence: [{"text", "pll", "tokens", "pseudo_perplexity"}]."""
    from keras_mlm.inference.fill_mask import FillMask

    helper = FillMask(model, tokens, sequence_length, lowercase)
    results = []
    for text in sentences:
        ids = [int(t) for t in helper.tokenizer([text])[0]]
        if not ids:
            raise UserInputError(f"empty sentence: {text!r}")
        if len(ids) + 2 > sequence_length:
            raise UserInputError(f"sentence is {len(ids) + 2} tokens long with [CLS]/[SEP]; the model takes at most {sequence_length}")
        row = np.full(sequence_length, helper.pad_id, np.int32)
        row[: len(ids) + 2] = [helper.cls_id, *ids, helper.sep_id]
        positions = np.arange(1, len(ids) + 1)
        log_probs = []
        for start in range(0, len(positions), batch_size):
            chunk = positions[start : start + batch_size]
            rows = np.repeat(row[None], len(chunk), axis=0)
            rows[np.arange(len(chunk)), chunk] = helper.mask_id  # copy i has token i masked
            x = {
                "token_ids": tf.constant(rows),
                "segment_ids": tf.zeros(rows.shape, tf.int32),
                "padding_mask": tf.constant(rows != helper.pad_id),
                "mask_positions": tf.constant(chunk[:, None], tf.int32),
            }
            logits = tf.cast(model(x, training=False), tf.float32)[:, 0]  # (n, vocab)
            log_p = tf.nn.log_softmax(logits, axis=-1).numpy()
            log_probs.extend(log_p[np.arange(len(chunk)), row[chunk]])
        pll = float(np.sum(log_probs))
        results.append({"text": text, "pll": pll, "tokens": len(ids), "pseudo_perplexity": float(np.exp(-pll / len(ids)))})
    return results
