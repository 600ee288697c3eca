"""Held-out masked-LM evaluation and pseudo-log-likelihood scoring.

`evaluate` masks the held-out rows with the fixed evaluation mask (a pure function of the row and the
seed), so two runs of it print the same numbers. Loss, accuracy and perplexity are exact ratios of sums
over the whole set (weighted by `mask_weights`), not means of per-batch means.

`score` is the pseudo-log-likelihood of Salazar et al. (2020): each token masked in turn, all the
masked copies of a sentence scored in batches, PLL = sum of log p(token | rest).

Both take the vocabulary as a `Vocabulary` of any kind (WordPiece, byte-level BPE, SentencePiece) or a
WordPiece token list; text is tokenized by the vocabulary's own in-graph tokenizer, as `prepare` does.
"""

import os
import tempfile

import numpy as np
import tensorflow as tf

from keras_mlm import fileio
from keras_mlm.data.dataset import evaluation_dataset
from keras_mlm.data.prepare import MANIFEST, DataConfig, prepare
from keras_mlm.errors import UserInputError

EVAL_SEED = 1234


def _masked_sums(model):
    @tf.function(reduce_retracing=True)
    def step(x, y, w):
        logits = tf.cast(model(x, training=False), tf.float32)
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
        correct = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), y), tf.float32)
        return tf.reduce_sum(ce * w), tf.reduce_sum(correct * w), tf.reduce_sum(w)

    return step


class Evaluator:
    """Masked loss, accuracy and perplexity of a model on one held-out shards directory.

        evaluator = Evaluator(tokens, "held_out_shards/", max_tokens=100_000)
        evaluator(model)  # -> {"loss", "accuracy", "perplexity", "tokens"}

    Set up once (the fixed evaluation mask, the rows read) and called any number of times: `keras-mlm
    evaluate` and the validation of `pretrain --eval-data` are this one computation, so they print the
    same numbers for the same model and data. `max_tokens` reads only the first max_tokens // seq_len
    rows (at least one); `tokens` in the result counts the masked tokens scored.
    """

    def __init__(self, tokens, shards, batch_size=64, masking=None, seed=EVAL_SEED, max_tokens=None):
        """`tokens`: a `Vocabulary` (any kind) or a WordPiece token list; the shards' manifest must name it."""
        from keras_mlm.data.prepare import read_manifest
        from keras_mlm.masking import MaskingConfig, MLMMasker

        if batch_size < 1:
            raise UserInputError(f"batch size must be at least 1, got {batch_size}")
        self.shards = os.fspath(shards)
        manifest = read_manifest(self.shards)
        self.sequence_length = manifest["seq_len"]
        self.max_rows = None if max_tokens is None else max(1, int(max_tokens) // self.sequence_length)
        masker = MLMMasker.from_vocabulary(tokens, self.sequence_length, masking or MaskingConfig(), seed=seed, deterministic=True)
        self.dataset = evaluation_dataset(self.shards, batch_size, masker, vocabulary=tokens, max_rows=self.max_rows)
        self._model = self._step = None

    def __call__(self, model):
        from keras_mlm.inference.run import masked_lm_of

        model = masked_lm_of(model)  # an ELECTRA pre-trainer is evaluated by its generator
        encoder = getattr(model, "encoder", model)
        positions = getattr(encoder, "max_sequence_length", None)
        if positions is not None and self.sequence_length > positions:
            raise UserInputError(f"{self.shards}: rows of {self.sequence_length} ids exceed the model's {positions} positions")
        if model is not self._model:
            self._model, self._step = model, _masked_sums(model)
        loss_sum = correct_sum = weight_sum = 0.0
        try:
            for x, y, w in self.dataset:
                a, b, c = self._step(x, y, w)
                loss_sum, correct_sum, weight_sum = loss_sum + float(a), correct_sum + float(b), weight_sum + float(c)
        except tf.errors.DataLossError:
            from keras_mlm.data.verify import find_corrupt_shard

            raise find_corrupt_shard(self.shards) or UserInputError(f"{self.shards}: a shard could not be read") from None
        if weight_sum == 0:
            raise UserInputError("no token was masked: the evaluation data is empty")
        loss = loss_sum / weight_sum
        return {"loss": loss, "accuracy": correct_sum / weight_sum, "perplexity": float(np.exp(loss)), "tokens": int(round(weight_sum))}

    def release(self):
        """Drops the compiled step of the last model evaluated (and with it the model)."""
        self._model = self._step = None


def is_shards_directory(data):
    """`data` (a path or a list of paths) names one prepared shards directory."""
    paths = [data] if isinstance(data, (str, os.PathLike)) else list(data)
    return len(paths) == 1 and fileio.isfile(os.path.join(paths[0], MANIFEST))


def evaluate(model, tokens, data, batch_size=64, masking=None, seq_len=None, seed=EVAL_SEED, max_tokens=None, lowercase=None):
    """Masked loss, accuracy and perplexity on `data` (a shards directory or text files/folders).

    `tokens`: a `Vocabulary` of any kind or a WordPiece token list (`lowercase` sets a list's casing;
    None infers it). Text is prepared into rows of `seq_len` ids (default 128) first, with the
    vocabulary's tokenizer. Returns {"loss", "accuracy", "perplexity", "tokens"}: `tokens` is the
    number of masked tokens scored. See `Evaluator`.
    """
    from keras_mlm.tokenizers.vocabulary import as_vocabulary

    vocabulary = as_vocabulary(tokens, lowercase)  # its casing goes with it: prepare is given no other
    paths = [data] if isinstance(data, (str, os.PathLike)) else list(data)
    with tempfile.TemporaryDirectory(prefix="keras-mlm-eval-") as scratch:
        if is_shards_directory(paths):
            shards = os.fspath(paths[0])
        else:
            shards = os.path.join(scratch, "shards")
            prepare(paths, vocabulary, shards, DataConfig(seq_len=seq_len or 128))
        return Evaluator(vocabulary, shards, batch_size, masking, seed, max_tokens)(model)


def score(model, tokens, sentences, sequence_length=128, batch_size=64, lowercase=None):
    """Pseudo-log-likelihood of each sentence: [{"text", "pll", "tokens", "pseudo_perplexity"}].

    `tokens`: a `Vocabulary` of any kind or a WordPiece token list (`lowercase` sets a list's casing).
    Sentences are tokenized as corpus text is (`prepare`'s tokenizer: a mask token written in them is
    ordinary text), packed [CLS] ids [SEP] (`<s> ... </s>` for BPE) and every piece is scored.
    """
    from keras_mlm.inference.run import masked_lm_of
    from keras_mlm.tokenizers.vocabulary import as_vocabulary

    model = masked_lm_of(model)  # an ELECTRA pre-trainer is scored by its generator
    vocabulary = as_vocabulary(tokens, lowercase)
    tokenizer = vocabulary.tokenizer()  # keras-hub's layer, called eagerly: lists of ids
    cls_id, sep_id, pad_id, mask_id = vocabulary.cls_id, vocabulary.sep_id, vocabulary.pad_id, vocabulary.mask_id
    results = []
    for text in sentences:
        ids = [int(t) for t in tokenizer([text])[0]]
        if not ids:
            raise UserInputError(f"empty sentence: {text!r}")
        if len(ids) + 2 > sequence_length:
            raise UserInputError(
                f"sentence is {len(ids) + 2} tokens long with {vocabulary.tokens[cls_id]}/{vocabulary.tokens[sep_id]}; "
                f"the model takes at most {sequence_length}"
            )
        row = np.full(sequence_length, pad_id, np.int32)
        row[: len(ids) + 2] = [cls_id, *ids, sep_id]
        positions = np.arange(1, len(ids) + 1)
        log_probs = []
        for start in range(0, len(positions), batch_size):
            chunk = positions[start : start + batch_size]
            rows = np.repeat(row[None], len(chunk), axis=0)
            rows[np.arange(len(chunk)), chunk] = mask_id  # copy i has token i masked
            x = {
                "token_ids": tf.constant(rows),
                "segment_ids": tf.zeros(rows.shape, tf.int32),
                "padding_mask": tf.constant(rows != pad_id),
                "mask_positions": tf.constant(chunk[:, None], tf.int32),
            }
            logits = tf.cast(model(x, training=False), tf.float32)[:, 0]  # (n, vocab)
            log_p = tf.nn.log_softmax(logits, axis=-1).numpy()
            log_probs.extend(log_p[np.arange(len(chunk)), row[chunk]])
        pll = float(np.sum(log_probs))
        results.append({"text": text, "pll": pll, "tokens": len(ids), "pseudo_perplexity": float(np.exp(-pll / len(ids)))})
    return results
