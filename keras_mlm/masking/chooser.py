"""What a selected token becomes: [MASK], a random non-special token, or itself (BERT's 80/10/10).

The decision is made per token, as Google BERT's create_pretraining_data does (also under whole-word
and span masking). Rates are compared as integers against 32-bit noise, so 0.0 and 1.0 are exact.
"""

import numpy as np
import tensorflow as tf

from keras_mlm.masking import hashing


class MaskValuesChooser:
    """Replaces selected tokens: [MASK] with probability mask_token_rate, a token drawn uniformly from
    `replacement_ids` with probability random_token_rate, unchanged otherwise."""

    def __init__(self, mask_token_id, replacement_ids, mask_token_rate, random_token_rate):
        self.mask_token_id = int(mask_token_id)
        self.replacement_ids = np.asarray(replacement_ids, np.int32)
        # decision < mask_threshold -> [MASK]; < random_threshold -> random token; else unchanged.
        self.mask_threshold = round(mask_token_rate * hashing.TWO_POW_32)
        self.random_threshold = round(min(1.0, mask_token_rate + random_token_rate) * hashing.TWO_POW_32)

    def __call__(self, token_ids, used, decision_noise, replacement_noise):
        """token_ids (batch, n) int32 original ids; used (batch, n) bool; *_noise (batch, n) uint32
        -> (batch, n) int32 new ids (unused entries unchanged)."""
        decision = tf.cast(decision_noise, tf.int64)
        use_mask = used & (decision < self.mask_threshold)
        use_random = used & ~use_mask & (decision < self.random_threshold)
        # Uniform index into replacement_ids: floor(noise * count / 2**32), exact in int64.
        index = tf.bitwise.right_shift(tf.cast(replacement_noise, tf.int64) * len(self.replacement_ids), 32)
        random_ids = tf.gather(tf.constant(self.replacement_ids), index)  # (batch, n)
        mask_id = tf.constant(self.mask_token_id, tf.int32)
        return tf.where(use_mask, mask_id, tf.where(use_random, random_ids, token_ids))
