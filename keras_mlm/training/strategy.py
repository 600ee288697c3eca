"""Distribution strategy and numeric precision of a run."""

import keras
import tensorflow as tf

from keras_mlm.errors import UserInputError


def split_cpu(num_devices):
    """Splits the CPU into `num_devices` logical devices, so MirroredStrategy runs without GPUs.

    Must run before TensorFlow initialises its devices (before the first op).
    """
    if not num_devices or num_devices < 2:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * num_devices)
    except RuntimeError:
        existing = len(tf.config.list_logical_devices("CPU"))
        if existing != num_devices:
            raise UserInputError(
                f"--cpu-devices {num_devices}: TensorFlow already started with {existing} CPU device(s); "
                "split the CPU before anything else runs"
            ) from None


def make_strategy(name="auto", cpu_devices=0):
    """The tf.distribute strategy named by `--strategy`."""
    split_cpu(cpu_devices)
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        if len(gpus) > 1 or cpu_devices > 1:
            return tf.distribute.MirroredStrategy()
        return tf.distribute.get_strategy()
    if name == "one-device":
        return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")
    if name == "mirrored":
        devices = None if gpus else [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multi-worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise UserInputError(f"--strategy must be one of auto, one-device, mirrored, multi-worker, got {name!r}")


def is_chief(strategy):
    """True for the process that writes the model, checkpoints and logs (always, outside multi-worker)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(strategy.extended, "_in_multi_worker_mode", lambda: False)():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    has_chief = "chief" in (resolver.cluster_spec().as_dict() or {})
    return task_type == "chief" or (not has_chief and task_type == "worker" and task_id == 0) or task_type is None


def set_precision(precision):
    """Sets Keras' global dtype policy: float32, mixed_bfloat16 or mixed_float16 (loss-scaled by Keras)."""
    keras.mixed_precision.set_global_policy(precision)
