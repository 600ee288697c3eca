"""Applies hand-made per-replica gradients on 2 logical CPUs, with and without `keras_fit_fixes`.

    python tests/training/fit_fixes_probe.py   -> prints one JSON line

Replica 0 and replica 1 hold different gradients for one variable v = [0, 0], updated by SGD with
learning rate 1 (so v ends at minus the applied gradient):
- clipping, global_clipnorm=1: gradients [3, 0] and [0, 4]; the global gradient [3, 4] has norm 5,
  clipped to [0.6, 0.8]. Clipping each replica first gives [1, 0] + [0, 1] = [1, 1].
- float16 loss scaling, scale 4: gradients [1, 1] and [inf, 1]; the step must be skipped (v stays
  [0, 0], the scale halves to 2). Trusting replica 0's "finite" applies inf.
A separate process because the CPU must be split before TensorFlow starts.
"""

import contextlib
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def apply_per_replica(strategy, optimizer, variable, per_replica, fixed):
    import tensorflow as tf

    from keras_mlm.training.strategy import keras_fit_fixes

    gradients = strategy.experimental_distribute_values_from_function(
        lambda context: tf.constant(per_replica[context.replica_id_in_sync_group], tf.float32)
    )
    with keras_fit_fixes() if fixed else contextlib.nullcontext():

        @tf.function
        def step(gradients):
            strategy.run(lambda g: optimizer.apply([g], [variable]), args=(gradients,))

        step(gradients)
    return [float(x) for x in variable.numpy()]


def main():
    from keras_mlm.training.strategy import make_strategy, split_cpu

    split_cpu(2)
    import keras

    strategy = make_strategy("mirrored", 2)
    results = {"replicas": strategy.num_replicas_in_sync}
    for fixed in (False, True):
        with strategy.scope():
            v = keras.Variable([0.0, 0.0])
            sgd = keras.optimizers.SGD(learning_rate=1.0, global_clipnorm=1.0)
            sgd.build([v])
        results[f"clip_fixed={fixed}"] = apply_per_replica(strategy, sgd, v, [[3.0, 0.0], [0.0, 4.0]], fixed)
        with strategy.scope():
            w = keras.Variable([0.0, 0.0])
            scaled = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(learning_rate=1.0), initial_scale=4.0)
            scaled.build([w])
        results[f"fp16_fixed={fixed}"] = apply_per_replica(strategy, scaled, w, [[1.0, 1.0], [float("inf"), 1.0]], fixed)
        results[f"fp16_scale_fixed={fixed}"] = float(scaled.dynamic_scale.numpy())
    print(json.dumps(results))


if __name__ == "__main__":
    sys.exit(main())
