"""XLNet's factorisation order over a masked row, and the two attention masks it implies.

XLNet (Yang et al. 2019) predicts tokens autoregressively in a random order of the positions and, with
partial prediction, only the last 1/K of that order. Here the targets are the positions `MLMMasker`
selected (run with selection rate 1/K and no replacement); the order is a rank per position:

    rank 0        every other position (the context): first in the order, all of it visible to all of it
    ranks 1 .. T  the T targets, in a uniformly random order (training) or all 1 (evaluation, fill-mask)

This is the order of XLNet's released pre-training code (`_local_perm` in data_utils.py gives every
non-target the same smallest index), not a random order inside the context too: the likelihood of
the targets is the same either way, and a context that sees all of itself is what fine-tuning sees.
From the ranks (query i, key j):

    content stream  i sees j  iff  rank[j] <= rank[i]   (its own content included)
    query stream    i sees j  iff  rank[j] <  rank[i]   (never its own content, nor a later target's)

so a target is predicted from the context and the targets before it in the order. With all targets
at rank 1 each is predicted from the context alone: fill-mask's "[MASK]s as targets, every other
token visible", and evaluation's, independent of the batch and of the other targets.

Randomness follows the masker's rule (see `hashing`): the order of row r at step s is a hash of
(seed, s, r, slot), so a resumed run orders its targets as the uninterrupted run did, and r is the
row's index in the global batch, so replicas order their rows as one device would.
"""

import numpy as np
import tensorflow as tf

from keras_mlm.masking import hashing

_ORDER_SALT = 0x5BD1E995  # keeps the order stream apart from the masker's and ELECTRA's, which share the seed
_SLOT_SALT = 0x68E31DA4


def order_key(seed):
    """The 32-bit key of a seed's factorisation orders (a Python int)."""
    return int(hashing.mix32_numpy(hashing.seed_key(seed, deterministic=False) ^ _ORDER_SALT))


def order_row_keys(key, step, batch_size, first_row=None):
    """(batch,) uint32 keys of (key, step, global row index).

    Rows are numbered in the global batch: `first_row` + 0 .. batch_size-1, where `first_row` None
    means this replica's offset (replica id x batch_size under a distribution strategy, else 0). So
    two replicas order their halves of a batch exactly as one device orders the whole batch.
    """
    if first_row is None:
        first_row = 0
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            first_row = tf.cast(context.replica_id_in_sync_group, tf.int32) * batch_size
    keys = hashing.training_row_keys(key, step, first_row + batch_size)  # (first_row + batch,)
    return keys[first_row:]  # (batch,)


def factorisation_ranks(mask_positions, used, sequence_length, row_keys=None):
    """The order's rank of every position and of every target slot.

    Args:
        mask_positions: (batch, n) int, the targets' positions (unused slots anywhere, e.g. 0).
        used: (batch, n) bool, the slots that hold a target.
        sequence_length: int, positions per row.
        row_keys: (batch,) uint32 from `order_row_keys` for a random order of the targets; None puts
            every target at rank 1 (each predicted from the context alone).

    Returns:
        (position_ranks (batch, sequence_length) int32, slot_ranks (batch, n) int32): 0 for context
        positions and unused slots, 1 .. T for the targets of a row.
    """
    positions = tf.cast(mask_positions, tf.int32)
    used = tf.cast(used, tf.bool)
    n = positions.shape[1] if positions.shape[1] is not None else tf.shape(positions)[1]
    if row_keys is None:
        slot_ranks = tf.cast(used, tf.int32)  # (batch, n)
    else:
        keys = _slot_keys(n)  # (n,) uint32, fixed per slot
        noise = tf.cast(hashing.mix32(tf.bitwise.bitwise_xor(row_keys[:, None], keys[None, :])), tf.int64)  # (batch, n)
        slot = tf.range(n, dtype=tf.int64)
        # Sort key (noise, slot index): distinct, so the targets' ranks are a permutation of 1 .. T.
        sort_key = noise * tf.cast(n, tf.int64) + slot[None, :]  # (batch, n), < 2**32 * n
        before = sort_key[:, None, :] < sort_key[:, :, None]  # (batch, n, n): slot j comes before slot i
        earlier_targets = tf.reduce_sum(tf.cast(before & used[:, None, :], tf.int32), axis=-1)  # (batch, n)
        slot_ranks = tf.where(used, earlier_targets + 1, 0)
    # Scatter the slots' ranks onto their positions; unused slots write 0, which max() ignores.
    batch_size = tf.shape(positions)[0]
    rows = tf.broadcast_to(tf.range(batch_size)[:, None], tf.shape(positions))  # (batch, n)
    indices = tf.stack([rows, positions], axis=-1)  # (batch, n, 2)
    position_ranks = tf.tensor_scatter_nd_max(
        tf.zeros(tf.stack([batch_size, sequence_length]), tf.int32), indices, slot_ranks
    )  # (batch, seq)
    return position_ranks, slot_ranks


def _slot_keys(n):
    """(n,) uint32 tensor mix32(slot ^ salt): distinct per slot (a constant when n is static)."""
    if isinstance(n, int):
        return tf.constant(hashing.mix32_numpy(np.arange(n, dtype=np.uint64) ^ np.uint64(_SLOT_SALT)), tf.uint32)
    slots = tf.cast(tf.range(n), tf.uint32)
    return hashing.mix32(tf.bitwise.bitwise_xor(slots, tf.constant(_SLOT_SALT, tf.uint32)))


def permutation_masks(position_ranks, slot_ranks):
    """The order's two visibility masks (padding not included).

    Returns:
        content_visible (batch, seq, seq) bool: position i sees position j iff rank[j] <= rank[i].
        query_visible (batch, n, seq) bool: target slot m sees position j iff rank[j] < slot_rank[m]
            (an unused slot, rank 0, sees nothing).
    """
    content_visible = position_ranks[:, None, :] <= position_ranks[:, :, None]  # (batch, query i, key j)
    query_visible = position_ranks[:, None, :] < slot_ranks[:, :, None]  # (batch, slot m, key j)
    return content_visible, query_visible
