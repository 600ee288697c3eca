"""Distribution strategy and numeric precision of a run.

    strategy = make_strategy("auto", cpu_devices=0)      # Mirrored on >1 GPU, MultiWorker under TF_CONFIG
    with strategy.scope():                                # model, optimizer and metrics live here
        model = ...; model.compile(...)
    dataset = distribute_dataset(strategy, dataset_fn, global_batch_size)
    with keras_fit_fixes():                               # see below
        model.fit(dataset, ...)

The batch size is global everywhere: each input pipeline (one per worker) builds its share of every
global batch, masks it, and cuts it into per-replica batches. On one worker the pipeline therefore
builds exactly the batches (rows and masks) a one-device run builds, so a run on 2 devices follows the
same trajectory as a run on 1 (tests/training/test_distributed.py). The learning rate needs no scaling
(the batch does not change with the replica count) and the loss divides by the global masked-token
weight (`keras_mlm.losses.MaskedLMLoss`), so neither depends on the number of replicas.
"""

import contextlib
import json
import os

import keras
import tensorflow as tf
from tensorflow.python.distribute.values import PerReplicaSpec

from keras_mlm.errors import UserInputError

STRATEGIES = ("auto", "one-device", "mirrored", "multi-worker")


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


def tf_config():
    """The parsed `TF_CONFIG` environment variable ({} when unset), with errors naming it."""
    raw = os.environ.get("TF_CONFIG", "")
    if not raw.strip():
        return {}
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as e:
        raise UserInputError(f"TF_CONFIG is not valid JSON ({e})") from None
    if not isinstance(config, dict) or not isinstance(config.get("cluster", {}), dict):
        raise UserInputError("TF_CONFIG must be a JSON object with a 'cluster' mapping of task type -> addresses")
    return config


def cluster_size():
    """Number of chief + worker tasks named by TF_CONFIG (0 when it is unset)."""
    cluster = tf_config().get("cluster", {})
    return sum(len(cluster.get(kind, [])) for kind in ("chief", "worker"))


def make_strategy(name="auto", cpu_devices=0):
    """The tf.distribute strategy named by `--strategy`.

    auto: MultiWorkerMirrored when TF_CONFIG names more than one task, else Mirrored over the GPUs when
    more than one is visible, or over the `cpu_devices` logical CPUs when that is > 1, else the
    default (one-device) strategy. mirrored: all GPUs, or all logical CPUs when there is no GPU.
    """
    if name not in STRATEGIES:
        raise UserInputError(f"--strategy must be one of {', '.join(STRATEGIES)}, got {name!r}")
    split_cpu(cpu_devices)
    if name == "multi-worker" or (name == "auto" and cluster_size() > 1):
        # Before anything initialises TensorFlow's runtime (listing logical devices does): it sets up
        # the collective ops, which "must be configured at program startup".
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        if len(gpus) > 1 or (not gpus and cpu_devices > 1):
            name = "mirrored"
        else:
            return tf.distribute.get_strategy()
    if name == "one-device":
        return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")
    # mirrored: MirroredStrategy() alone takes every GPU, or only CPU:0 when there is none: name the CPUs.
    devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
    return tf.distribute.MirroredStrategy(devices=devices)


def in_multi_worker_mode(strategy):
    """True when `strategy` spans several worker processes (MultiWorkerMirrored with a TF_CONFIG cluster)."""
    return bool(getattr(strategy.extended, "_in_multi_worker_mode", lambda: False)())


def task(strategy):
    """(task_type, task_id) of this process in a multi-worker cluster; (None, None) outside one."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not in_multi_worker_mode(strategy):
        return None, None
    return resolver.task_type, resolver.task_id


def is_chief(strategy):
    """True for the process that writes the model, checkpoints and logs (always, outside multi-worker).

    The chief is the "chief" task, or worker 0 when the cluster has no "chief" (Keras' convention).
    """
    task_type, task_id = task(strategy)
    if task_type is None:
        return True
    has_chief = "chief" in (strategy.cluster_resolver.cluster_spec().as_dict() or {})
    return task_type == "chief" or (not has_chief and task_type == "worker" and task_id == 0)


def check_jit_compile(strategy, jit_compile):
    """Refuses XLA (`--jit-compile`) with more than one replica, the one combination that cannot work.

    Keras 3 compiles the whole replicated step, `strategy.run` included, as one XLA computation for one
    device. Under MirroredStrategy it then cannot reach the other replicas' variables ("Trying to access
    resource .../replica_1/... located in device CPU:1 from device CPU:0", see
    tensorflow.org/xla/known_issues#tfvariable_on_a_different_device), on GPUs as on CPUs; under
    MultiWorkerMirrored on CPU XLA has no kernel for the collectives ("No registered
    'CollectiveGatherV2' OpKernel for XLA_CPU_JIT"). Both measured with TF 2.21 / Keras 3.15.
    """
    if jit_compile and (strategy.num_replicas_in_sync > 1 or in_multi_worker_mode(strategy)):
        raise UserInputError(
            f"--jit-compile works with one replica only, this run has {strategy.num_replicas_in_sync} "
            f"({type(strategy).__name__}): Keras compiles the whole replicated step for one device with XLA, "
            "which cannot reach the other replicas' variables or run the cross-worker collectives; "
            "use --no-jit-compile"
        )


def per_replica_batch_size(strategy, global_batch_size):
    """`global_batch_size` / replicas, with a clear error when it does not divide."""
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
        raise UserInputError(
            f"--batch-size {global_batch_size} is the global batch and must be divisible by the "
            f"{replicas} replicas of the {type(strategy).__name__}"
        )
    return global_batch_size // replicas


def pipeline_dataset(dataset_fn, input_context, global_batch_size):
    """One input pipeline's dataset: its share of every global batch, cut into per-replica batches.

    `dataset_fn(share_context)` must return batches of `global_batch_size / pipelines` rows, sharded
    with `share_context` (an InputContext in which each pipeline is one "replica"). Each batch is cut
    into `replicas / pipelines` consecutive per-replica batches of `global_batch_size / replicas` rows.
    """
    pipelines, pipeline = input_context.num_input_pipelines, input_context.input_pipeline_id
    share = tf.distribute.InputContext(num_input_pipelines=pipelines, input_pipeline_id=pipeline, num_replicas_in_sync=pipelines)
    dataset = dataset_fn(share)
    if input_context.num_replicas_in_sync == pipelines:
        return dataset
    replica_batch = input_context.get_per_replica_batch_size(global_batch_size)
    # (global / pipelines) rows -> replicas_per_pipeline elements of (global / replicas) rows
    return dataset.rebatch(replica_batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def distribute_dataset(strategy, dataset_fn, global_batch_size):
    """The dataset `fit` consumes under `strategy`, each input pipeline reading its own share of the data.

    `dataset_fn(input_context)` returns a pipeline's share of every global batch (see
    `pipeline_dataset`; `input_context` is None without distribution). `distribute_datasets_from_function`
    hands each pipeline's per-replica batches to that worker's replicas in order. So one element of a
    pipeline is one global step whatever the replica count (a resume at step k skips k elements), and
    on one worker every step's rows and masks equal those of a one-device run.
    """
    per_replica_batch_size(strategy, global_batch_size)  # a clear error when it does not divide
    if strategy.num_replicas_in_sync == 1 and not in_multi_worker_mode(strategy):
        return dataset_fn(None)
    return strategy.distribute_datasets_from_function(lambda context: pipeline_dataset(dataset_fn, context, global_batch_size))


# --- Keras 3.15 / TF 2.21 `fit` under tf.distribute: four narrowly scoped fixes -------------------
#
# 1. When the model was created under any strategy scope (OneDevice included), `fit` first calls
#    `TensorFlowTrainer._maybe_symbolic_build`, which takes a batch from a first iterator over the
#    dataset and calls `strategy.reduce("MEAN", batch, axis=None)` on it, only to learn its shapes
#    and dtypes. That fails for our batches: MultiWorkerMirrored cannot reduce a dict ("Attempt to
#    convert a value ({'token_ids': PerReplica...}) with an unsupported type <dict>",
#    keras-team/keras#20329), MirroredStrategy cannot average the boolean `padding_mask` ("Value for
#    attr 'T' of bool is not in the list of allowed values ... AddN"). And `fit` then trains on a
#    second iterator, to which tf.data's seeded `shuffle(..., reshuffle_each_iteration=True)` gives
#    another order than to the first (measured: none of its first 12 batches among the first
#    iterator's), so the run would not see the batches of a run without a strategy, and a resumed
#    run (its dataset starting at step k) not those of the run it resumes (measured: 2e-3 apart after
#    4 resumed steps). Fix: build from the dataset's element spec (one replica's shapes and dtypes);
#    `fit` then opens exactly one iterator, as it does without a strategy.
# 2. Each train step's logs are reduced by `reduce_per_replica`, which under multi-worker calls
#    `strategy.reduce("MEAN", value, axis=0)` on scalar logs: "Invalid reduction dimension 0 for input
#    with 0 dimensions". Fix: for multi-worker mean reductions, reduce with axis=None (the mean of the
#    replicas' values, which is what the single-worker branch computes).
# 3. The optimizer clips gradients (`global_clipnorm`, `clipnorm`, `clipvalue`) in each replica,
#    *before* they are summed across replicas (`BaseOptimizer._backend_apply_gradients` calls
#    `_clip_gradients`, then `_backend_update_step` all-reduces): with 2 replicas each half-gradient
#    is clipped to norm 1 and their sum may reach 2, and the run no longer matches a one-device run
#    (measured: weights 2e-3 apart after 6 steps with clip_norm=1, 6e-8 with clipping off). Fix: under
#    more than one replica, clip the all-reduced sum and hand each replica 1/N of it, so that the
#    optimizer's own SUM all-reduce yields exactly the clipped global gradient.
# 4. mixed_float16: `LossScaleOptimizer` decides per replica whether the gradients are finite (under
#    MirroredStrategy it then follows replica 0's verdict, its comment assuming the gradients were
#    already all-reduced, which they are not yet), so an overflow on another replica reaches the
#    weights, and under MultiWorkerMirrored the workers can take different branches, one of them
#    entering the gradient all-reduce alone. Fix: all replicas count the non-finite verdicts
#    together (a scalar all-reduce) and skip or apply the step as one.
# All are patched only inside `keras_fit_fixes`, and loudly refused if Keras' internals move, so an
# upgrade that changes them fails the distributed tests instead of silently training wrongly.


def _one_replica(spec):
    """The TypeSpec of one replica's part of a distributed dataset's element (itself if not per-replica)."""
    return spec._value_specs[0] if isinstance(spec, PerReplicaSpec) else spec


def _symbolic_build_from_spec(self, iterator=None, data_batch=None):
    """`TensorFlowTrainer._maybe_symbolic_build`, from the dataset's element spec instead of a batch."""
    if self._distribute_strategy is None:
        return  # no strategy at model creation: Keras builds while tracing the train step
    if iterator is not None:
        # TensorSpecs have the .shape and .dtype that `_symbolic_build` turns into KerasTensors.
        data_batch = tf.nest.map_structure(_one_replica, iterator.data_adapter.get_tf_dataset().element_spec)
    with self.distribute_strategy.scope():
        self._symbolic_build(data_batch=data_batch)


def _make_reduce_per_replica(original):
    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and in_multi_worker_mode(strategy):
            return tf.nest.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original(values, strategy, reduction)

    return reduce_per_replica


def _make_clip_gradients(original):
    def _clip_gradients(self, grads):
        context = tf.distribute.get_replica_context()
        clipping = any(getattr(self, name, None) for name in ("global_clipnorm", "clipnorm", "clipvalue"))
        if not clipping or context is None or context.num_replicas_in_sync == 1:
            return original(self, grads)
        present = [g for g in grads if g is not None]
        summed = iter(original(self, context.all_reduce(tf.distribute.ReduceOp.SUM, present)))  # the global gradient, clipped
        share = 1.0 / context.num_replicas_in_sync
        return [None if g is None else next(summed) * share for g in grads]

    return _clip_gradients


def _make_check_finite(original):
    def check_finite(self, grads):
        finite = original(self, grads)
        context = tf.distribute.get_replica_context()
        if context is None or context.num_replicas_in_sync == 1:
            return finite
        non_finite = context.all_reduce(tf.distribute.ReduceOp.SUM, tf.cast(tf.logical_not(finite), tf.float32))
        return tf.equal(non_finite, 0.0)  # finite on every replica

    return check_finite


@contextlib.contextmanager
def keras_fit_fixes():
    """Inside this block, `model.fit` trains correctly under any tf.distribute strategy (see above).

    With the default strategy and one replica every patched function behaves as Keras' own; the
    originals are restored on exit.
    """
    from keras.src.backend.tensorflow import trainer as tf_trainer
    from keras.src.optimizers import base_optimizer, loss_scale_optimizer

    targets = [
        (tf_trainer.TensorFlowTrainer, "_maybe_symbolic_build", _symbolic_build_from_spec),
        (tf_trainer, "reduce_per_replica", _make_reduce_per_replica(getattr(tf_trainer, "reduce_per_replica", None))),
        (base_optimizer.BaseOptimizer, "_clip_gradients", _make_clip_gradients(getattr(base_optimizer.BaseOptimizer, "_clip_gradients", None))),
        (
            loss_scale_optimizer.LossScaleOptimizer,
            "check_finite",
            _make_check_finite(getattr(loss_scale_optimizer.LossScaleOptimizer, "check_finite", None)),
        ),
    ]
    for owner, name, _ in targets:
        if not callable(getattr(owner, name, None)) or not hasattr(tf_trainer.TensorFlowTrainer, "_symbolic_build"):
            raise RuntimeError(
                f"keras {keras.__version__}: keras_mlm.training.strategy.keras_fit_fixes patches "
                f"{getattr(owner, '__name__', owner)}.{name}, which this Keras does not have; re-check "
                "whether distributed `fit` still needs the fix"
            )
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in targets]
    try:
        for owner, name, replacement in targets:
            setattr(owner, name, replacement)
        yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)


CPUINFO = "/proc/cpuinfo"
CPU_BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")  # x86 instructions that compute bfloat16 natively
GPU_BFLOAT16_CAPABILITY = (8, 0)  # NVIDIA Ampere and later: bfloat16 tensor cores


def cpu_flags(path=None):
    """The feature flags of this machine's CPU (Linux /proc/cpuinfo; empty where there is none)."""
    try:
        with open(path or CPUINFO, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return set(value.split())
    except OSError:
        pass
    return set()


def gpu_compute_capabilities():
    """(major, minor) of every visible GPU ((0, 0) when TensorFlow does not report one)."""
    capabilities = []
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        except (ValueError, RuntimeError):
            capability = None
        capabilities.append(tuple(capability) if capability else (0, 0))
    return capabilities


def resolve_precision(requested):
    """The precision a run trains in and why: `requested`, or for "auto" the fastest correct one here.

    auto: mixed_bfloat16 where the device computes bfloat16 natively (TPUs, GPUs of compute capability
    8.0 and later, CPUs with avx512_bf16 or AMX), float32 elsewhere (there bfloat16 is emulated and
    slower). bfloat16 has float32's range, so it needs no loss scaling, and the masked-LM head's
    logits and the loss stay float32. Returns (precision, reason).
    """
    if requested != "auto":
        return requested, "as requested"
    if tf.config.list_physical_devices("TPU"):
        return "mixed_bfloat16", "auto: TPUs compute bfloat16 natively"
    capabilities = gpu_compute_capabilities()
    if capabilities:
        lowest = min(capabilities)
        if lowest >= GPU_BFLOAT16_CAPABILITY:
            return "mixed_bfloat16", f"auto: GPU compute capability {lowest[0]}.{lowest[1]} computes bfloat16 natively"
        return "float32", f"auto: GPU compute capability {lowest[0]}.{lowest[1]} is below 8.0, no native bfloat16"
    native = sorted(cpu_flags() & set(CPU_BFLOAT16_FLAGS))
    if native:
        return "mixed_bfloat16", f"auto: this CPU computes bfloat16 natively ({', '.join(native)})"
    return "float32", f"auto: this CPU has no native bfloat16 (no {' or '.join(CPU_BFLOAT16_FLAGS)})"


def set_precision(precision):
    """Sets Keras' global dtype policy: float32, mixed_bfloat16 or mixed_float16 ("auto": see `resolve_precision`).

    Under the mixed policies layers compute in 16 bits and keep float32 weights; our masked-LM head
    casts its logits to float32, so the loss and metrics are float32. With mixed_float16 `compile`
    wraps the optimizer in a `LossScaleOptimizer` (dynamic loss scaling); bfloat16 needs none.
    Returns the policy set.
    """
    precision = resolve_precision(precision)[0]
    keras.mixed_precision.set_global_policy(precision)
    return precision


def _sum_over_workers(strategy, value):
    """[distributed] The sum over the workers of a multi-worker run of each worker's `value` (a collective
    every worker must call): each worker contributes through its first replica only."""
    calls = []

    def contribution(_):
        first = not calls
        calls.append(None)
        return tf.constant(float(value) if first else 0.0, tf.float32)

    per_replica = strategy.experimental_distribute_values_from_function(contribution)
    return float(strategy.reduce("SUM", per_replica, axis=None))


def chief_value(strategy, value, chief):
    """[distributed] The chief's `value` on every worker (exact for integers below 2**24); `value` outside multi-worker."""
    if not in_multi_worker_mode(strategy):
        return value
    return _sum_over_workers(strategy, value if chief else 0.0)


def any_worker(strategy, flag):
    """[distributed] True on every worker when `flag` is true on any of them; `flag` outside multi-worker."""
    if not in_multi_worker_mode(strategy):
        return bool(flag)
    return _sum_over_workers(strategy, 1.0 if flag else 0.0) > 0
