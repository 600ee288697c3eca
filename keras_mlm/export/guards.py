"""In-graph checks of request tensors, so a bad request fails with a message instead of a crash.

TF Serving checks a request's dtypes against the signature but not its shapes: a (batch, 7) or a
rank-3 `token_ids` reaches the graph as is. Every signature therefore checks its inputs first and
runs nothing else until the checks pass (control dependencies), so the client gets one
INVALID_ARGUMENT naming the input, what was expected and what came.

The rank is read with the raw `Rank` op on purpose: `tf.rank` of a tensor whose rank is known when
the function is traced is a Python constant, and the check would vanish from the graph.
"""

import tensorflow as tf


def require(condition, message, *data, summarize=8):
    """An `Assert` op: fails with `message` followed by `data` when `condition` is not all true."""
    return tf.debugging.Assert(tf.reduce_all(condition), [message, *data], summarize=summarize)


def checked(value, checks):
    """`value`, readable only after every op in `checks` has run (and passed)."""
    with tf.control_dependencies(list(checks)):
        return tf.identity(value)


def check_rank(value, rank, name, shape):
    """`value` after checking at run time that it has `rank` dimensions; `shape` names them for the message."""
    actual = tf.raw_ops.Rank(input=value)
    message = f"{name} must have rank {rank}, shape {shape}; got rank"
    return checked(value, [require(tf.equal(actual, rank), message, actual)])


def failing_rows(ok):
    """Row indices (0-based) where the per-row boolean `ok` is false: the data of an error message."""
    return tf.boolean_mask(tf.range(tf.size(ok)), tf.logical_not(ok))


def error_message(error):
    """The line of a `tf.errors.OpError` that says what was wrong (the failed check's message)."""
    lines = [line.strip() for line in error.message.splitlines() if line.strip()]
    failed = [line for line in lines if line.startswith("assertion failed:")]
    return (failed or [line for line in lines if line != "Graph execution error:"] or ["(no message)"])[0]


def check_texts(texts, name):
    """A (batch,) string input, checked at run time: rank 1, valid UTF-8, no blank text.

    `name` prefixes the messages ("classify: texts"); failing rows are listed.
    """
    texts = check_rank(texts, 1, name, "(batch,)")
    # UTF-8 -> UTF-8 is the identity on valid text and replaces the bytes of invalid text.
    utf8 = tf.equal(tf.strings.unicode_transcode(texts, "UTF-8", "UTF-8", errors="replace"), texts)  # (batch,)
    blank = tf.equal(tf.strings.length(tf.strings.strip(texts)), 0)  # (batch,)
    return checked(texts, [
        require(utf8, f"{name}: text is not valid UTF-8; rows:", failing_rows(utf8)),
        require(~blank, f"{name}: empty text; rows:", failing_rows(~blank)),
    ])
