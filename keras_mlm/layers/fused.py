"""Elementwise kernels of the encoder, and `fused`, which runs one as an XLA-compiled loop in training.

On CPU TensorFlow runs every elementwise op as its own pass over memory, and a BERT layer is a chain
of them around each matmul (dropout, residual add, LayerNorm, GELU), each with a gradient chain
twice as long. Forward + backward on one core of the 2-core AVX-512 machine (float32 / bfloat16):

    add_norm, (32, 128, 128)           separate ops 4.4 / 5.5 ms    fused 2.6 / 2.3 ms
    gelu_approximate, (4096, 512)      separate ops 9.5 / 12.1 ms   fused 2.5 / 2.9 ms
    softmax + dropout, (32, 2, 128, 128)  separate ops 3.5 ms        fused 4.3 ms  -> left unfused

`fused(kernel)(*tensors, **constants)` is `kernel(*tensors, **constants)` with a custom gradient:
the forward runs the kernel under XLA, the backward recomputes it under XLA and takes its
vector-Jacobian product there (recomputing a few elementwise ops is cheaper than storing them).
It is the same Python function either way, so the fused call and the plain call compute the same
math; the layers use the fused call only when training, so inference graphs and exported
SavedModels contain no XLA clusters (TF Serving runs without XLA JIT by default). Matmuls stay
outside, in oneDNN. Dropout masks are drawn outside with TensorFlow's stateless RNG (XLA's CPU RNG
was two orders of magnitude slower) and passed in as bool tensors.
"""

import functools

import tensorflow as tf


def dropout_keep_mask(shape, rate, seed_generator):
    """A bool mask of `shape`, True with probability 1 - rate, from a keras.random.SeedGenerator.

    Each 32-bit draw of TensorFlow's stateless Philox RNG decides two elements, 16 bits each (an
    element is dropped when its 16 bits < round(rate * 65536)): half the RNG work of one float
    uniform per element (measured 3.2 ms against 5.0 ms for 1M elements), with the rate exact to
    1/65536 (Keras' float uniform is exact to 2^-23; for rate 0.1 the two differ by 6e-6).
    """
    seed = seed_generator.next()
    seed = tf.cast(tf.math.floormod(seed, tf.int32.max - 1), "int32")  # as keras' TF backend does
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
        # The generator's state is mirrored, so every replica would draw the same mask (as Keras'
        # own Dropout does); fold the replica id in so the global batch gets independent masks.
        seed = tf.random.experimental.stateless_fold_in(seed, context.replica_id_in_sync_group)
    size = tf.reduce_prod(shape)
    bits = tf.random.stateless_uniform(((size + 1) // 2,), seed=seed, minval=None, maxval=None, dtype="int32")
    halves = tf.reshape(tf.bitcast(bits, tf.uint16), (-1,))  # (2 * ceil(size / 2),) 16-bit draws
    threshold = min(round(rate * 65536), 65535)
    keep = halves[:size] >= tf.constant(threshold, tf.uint16)
    return tf.reshape(keep, shape)


def apply_dropout(x, keep, rate):
    """Inverted dropout with a given keep mask: x / (1 - rate) where kept, 0 elsewhere."""
    if keep is None or rate == 0.0:
        return x
    return tf.where(keep, x * tf.cast(1.0 / (1.0 - rate), x.dtype), tf.zeros_like(x))


def layer_norm(x, gamma, beta, epsilon):
    """LayerNorm over the last axis, statistics in float32, result in x's dtype; beta None: no shift."""
    xf = tf.cast(x, "float32")
    mean, variance = tf.nn.moments(xf, axes=[-1], keepdims=True)
    y = (xf - mean) * tf.math.rsqrt(variance + epsilon) * tf.cast(gamma, "float32")
    if beta is not None:
        y = y + tf.cast(beta, "float32")
    return tf.cast(y, x.dtype)


def add_norm(x, residual, gamma, beta, keep=None, *, rate, epsilon):
    """LayerNorm(residual + dropout(x)): the end of each post-norm sub-layer."""
    return layer_norm(residual + apply_dropout(x, keep, rate), gamma, beta, epsilon)


def embeddings_norm(tokens, positions, segments, gamma, beta, keep=None, *, rate, epsilon):
    """dropout(LayerNorm(tokens + positions + segments)): the encoder's embedding output."""
    return apply_dropout(layer_norm(tokens + positions + segments, gamma, beta, epsilon), keep, rate)


def attention_probabilities(scores, bias, keep=None, *, rate):
    """dropout(softmax(scores + bias)) over the last axis, in the scores' dtype (as Keras' MHA)."""
    if bias is not None:
        scores = scores + tf.cast(bias, scores.dtype)
    return apply_dropout(tf.nn.softmax(scores, axis=-1), keep, rate)


def activation(x, *, name):
    """The feed-forward activation by name, computed in float32 (XLA's CPU code for bfloat16
    transcendentals was 3x slower than float32 plus two converts)."""
    from keras_mlm.layers.activations import get_activation

    return tf.cast(get_activation(name)(tf.cast(x, "float32")), x.dtype)


def gated_activation(x, *, name):
    """act(a) * g for x = [a | g], halves of the last axis (GeGLU for "gelu"), computed in float32."""
    from keras_mlm.layers.activations import get_activation

    a, g = tf.split(tf.cast(x, "float32"), 2, axis=-1)
    return tf.cast(get_activation(name)(a) * g, x.dtype)


@functools.cache
def fused(kernel):
    """`kernel` with its forward and backward each compiled by XLA into one loop (see module doc).

    Positional arguments are tensors or None (an absent optional input such as a dropout mask);
    keyword arguments are Python constants (rate, epsilon, ...) and select a compiled variant.
    Memoised, so every layer calling `fused(add_norm)` shares one set of compiled functions.

    Inputs broadcast along leading axes of the output (LayerNorm's gamma and beta, the position
    table) get their gradient as a sum over those axes. XLA's CPU backend is slow at such column
    sums inside the backward loop (add_norm backward, (4096, 128), one core: 5.2 ms with them,
    1.7 ms without), so the loop returns the per-element gradient and a oneDNN matmul with a row of
    ones reduces it outside.
    """

    @functools.cache
    def compiled(constants, present):
        def pure(*tensors):
            tensors = iter(tensors)
            args = [next(tensors) if p else None for p in present]
            return kernel(*args, **dict(constants))

        # tf.function counts retraces per code object, and every variant shares `pure`'s code: a
        # partial gives each variant its own count (no spurious "excessive retracing" warnings).
        forward = tf.function(functools.partial(pure), jit_compile=True, autograph=False)

        def vjp(tensors, upstream):
            # Broadcast inputs are differentiated as their broadcast copies: (rows, ...) gradients.
            expanded = [
                tf.broadcast_to(t, tf.shape(upstream)) if _is_broadcast(t, upstream) else t for t in tensors
            ]
            differentiable = [t for t in expanded if t.dtype.is_floating]
            with tf.GradientTape() as tape:
                tape.watch(differentiable)
                outputs = pure(*expanded)
            return tape.gradient(outputs, differentiable, output_gradients=upstream)

        backward = tf.function(functools.partial(vjp), jit_compile=True, autograph=False)

        @tf.custom_gradient
        def call(*tensors):
            outputs = forward(*tensors)

            def gradient(upstream):
                grads = iter(backward(tensors, upstream))
                result = []
                for t in tensors:
                    if not t.dtype.is_floating:
                        result.append(None)
                    elif _is_broadcast(t, upstream):
                        result.append(_sum_to_shape(next(grads), t.shape))
                    else:
                        result.append(next(grads))
                return result

            return outputs, gradient

        return call

    @functools.wraps(kernel)
    def wrapper(*args, **constants):
        present = tuple(a is not None for a in args)
        tensors = [tf.convert_to_tensor(a) for a in args if a is not None]
        return compiled(tuple(sorted(constants.items())), present)(*tensors)

    return wrapper


def _is_broadcast(tensor, output):
    """A float input broadcast along leading axes of the output (judged on static shapes; when a
    dimension is unknown the input is treated as not broadcast, which is slower but still exact)."""
    if not tensor.dtype.is_floating or tensor.shape.rank is None or output.shape.rank is None:
        return False
    shape = list(tensor.shape)
    while shape and shape[0] == 1:
        shape.pop(0)
    suffix = list(output.shape)[output.shape.rank - len(shape):]
    return len(shape) < output.shape.rank and None not in shape and suffix == shape


def _sum_to_shape(gradient, shape):
    """Sums a gradient of the broadcast copy over its leading axes: ones (1, rows) @ (rows, size)."""
    size = 1
    for d in shape:
        size *= d
    flat = tf.reshape(gradient, (-1, size))  # (rows, size)
    ones = tf.ones((1, tf.shape(flat)[0]), flat.dtype)
    return tf.reshape(tf.matmul(ones, flat), shape)


def maybe_fused(kernel, training):
    """The fused kernel while training (a step worth compiling), the plain one otherwise."""
    return fused(kernel) if training else kernel
