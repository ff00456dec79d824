"""Training on several devices: ``TrainConfig.distribute`` -> a strategy, and who writes the run.

- ``none``: one device, as Keras places it.
- ``mirrored``: ``tf.distribute.MirroredStrategy`` over this machine's GPUs, or, with none, its
  logical CPU devices (how the tests run it without a GPU). TensorFlow backend.
- ``multi-worker``: ``tf.distribute.MultiWorkerMirroredStrategy`` over the cluster the
  ``TF_CONFIG`` environment variable describes. TensorFlow backend.
- ``data-parallel``: ``keras.distribution.DataParallel`` over every JAX device of every process
  (``keras.distribution.initialize`` first when ``KERAS_DISTRIBUTION_*`` is set). JAX backend.

The batch size is the global batch; each replica computes ``batch / replicas`` of it. Every
worker draws the same global batches a one-device run draws and keeps its share (tf.data: the
DATA auto-shard policy, see :func:`keras_seran.data.pipeline.train_dataset`; PyDataset: the
process split of :class:`keras_seran.data.pydataset.PatchPyDataset`), so the loss curve and a
resume do not depend on the number of devices.

Only the chief (worker 0, or the ``chief`` task; JAX process 0) writes the run directory. Under
MultiWorkerMirroredStrategy every worker must take part in a save, so the others save to a
temporary folder of their own that is deleted after training (the TensorFlow multi-worker
pattern).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from typing import Any

from keras_seran.errors import UsageError

#: kinds that are tf.distribute strategies (the rest of ``DISTRIBUTIONS`` but "none" is JAX's)
TF_KINDS = ("mirrored", "multi-worker")
BACKEND_OF = {"mirrored": "tensorflow", "multi-worker": "tensorflow", "data-parallel": "jax"}
ENGINE_OF = {
    "mirrored": "tf.distribute.MirroredStrategy",
    "multi-worker": "tf.distribute.MultiWorkerMirroredStrategy",
    "data-parallel": "keras.distribution.DataParallel",
}


@dataclass(frozen=True)
class Placement:
    """Where a run trains: ``replicas`` devices over ``process_count`` processes (workers), this
    one being ``process_index``; ``strategy`` is the tf.distribute strategy or the
    keras.distribution Distribution (None for one device)."""

    kind: str = "none"
    replicas: int = 1
    process_index: int = 0
    process_count: int = 1
    is_chief: bool = True
    strategy: Any = None

    def scope(self):
        """Build, compile, load and fit the model in here."""
        return contextlib.nullcontext() if self.strategy is None else self.strategy.scope()

    def per_replica(self, global_batch: int) -> int:
        """The batch each replica computes; UsageError when ``global_batch`` does not split
        evenly over the replicas."""
        if global_batch % self.replicas:
            raise UsageError(
                f"--batch-size {global_batch} (the global batch) does not split "
                f"over {self.replicas} replicas of --distribute {self.kind}; use a "
                f"multiple of {self.replicas}"
            )
        return global_batch // self.replicas

    def describe(self, global_batch: int) -> str:
        """One line: the strategy, the replicas and the per-replica batch."""
        workers = f" on {self.process_count} workers" if self.process_count > 1 else ""
        return (
            f"distribute {self.kind} ({ENGINE_OF[self.kind]}): {self.replicas} replica(s)"
            f"{workers}; global batch {global_batch} = {self.per_replica(global_batch)} per "
            "replica"
        )


def check_backend(kind: str, backend: str) -> None:
    """UsageError naming the backend when ``kind`` needs another one."""
    needed = BACKEND_OF.get(kind)
    if needed is not None and backend != needed:
        other = (
            "mirrored or multi-worker (tensorflow)" if needed == "jax" else "data-parallel (jax)"
        )
        raise UsageError(
            f"--distribute {kind} uses {ENGINE_OF[kind]}, which needs the {needed} "
            f"backend (this is {backend}); set KERAS_BACKEND={needed}, use "
            f"--distribute {other}, or train on one device"
        )


def place(kind: str, global_batch: int) -> Placement:
    """The Placement of ``kind``, its strategy made now (call it first: MultiWorkerMirrored
    must be created before TensorFlow runs anything). UsageError when the cluster is not
    described, or ``global_batch`` does not split evenly over the replicas."""
    if kind == "none":
        return Placement()
    placement = {
        "mirrored": _mirrored,
        "multi-worker": _multi_worker,
        "data-parallel": _data_parallel,
    }[kind]()
    placement.per_replica(global_batch)
    return placement


def _mirrored() -> Placement:
    import tensorflow as tf

    devices = [d.name for d in tf.config.list_logical_devices("GPU")] or [
        d.name for d in tf.config.list_logical_devices("CPU")
    ]
    strategy = tf.distribute.MirroredStrategy(devices)
    return Placement("mirrored", strategy.num_replicas_in_sync, strategy=strategy)


def read_tf_config() -> dict:
    """The cluster of ``TF_CONFIG``; UsageError when it is unset or not a cluster description."""
    text = os.environ.get("TF_CONFIG")
    if not text:
        raise UsageError(
            "--distribute multi-worker reads the cluster from the TF_CONFIG "
            "environment variable, which is not set (docs/distributed.md)"
        )
    try:
        config = json.loads(text)
        workers = config["cluster"].get("worker", []) + config["cluster"].get("chief", [])
        task_type, task_index = config["task"]["type"], int(config["task"]["index"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(
            f"TF_CONFIG is not a cluster description ({type(exc).__name__}: "
            f'{exc}); expected {{"cluster": {{"worker": ["host:port", ...]}}, '
            '"task": {"type": "worker", "index": 0}}'
        ) from None
    if not workers:
        raise UsageError("TF_CONFIG names no worker (cluster.worker is empty)")
    return {"cluster": config["cluster"], "type": task_type, "index": task_index}


def _multi_worker() -> Placement:
    config = read_tf_config()
    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    cluster = config["cluster"]
    has_chief = bool(cluster.get("chief"))
    workers = cluster.get("chief", []) + cluster.get("worker", [])
    index = config["index"] + (1 if has_chief and config["type"] == "worker" else 0)
    chief = config["type"] == "chief" or (
        not has_chief and config["type"] == "worker" and config["index"] == 0
    )
    return Placement(
        "multi-worker", strategy.num_replicas_in_sync, index, len(workers), chief, strategy
    )


def _data_parallel() -> Placement:
    import jax
    import keras

    is_initialized = getattr(jax.distributed, "is_initialized", lambda: False)
    if (
        os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES")
        or os.environ.get("KERAS_DISTRIBUTION_JOB_ADDRESSES")
    ) and not is_initialized():
        keras.distribution.initialize()  # jax.distributed.initialize from those variables
    devices = keras.distribution.list_devices()
    # each process's PatchPyDataset yields its own share already (make_pydatasets)
    distribution = keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False)
    index = jax.process_index()
    return Placement(
        "data-parallel", len(devices), index, jax.process_count(), index == 0, distribution
    )


def prepare_model(model: Any, placement: Placement) -> None:
    """Work around keras-team/keras#20585: Keras 3's TensorFlow ``fit`` (3.15 here) fails twice
    under MultiWorkerMirroredStrategy, where MirroredStrategy works.

    1. It builds the metrics from a first distributed batch, reduced with one ``strategy.reduce``
       on the whole ``(lr, hr)`` tuple, which the multi-worker strategy cannot do ("Attempt to
       convert a value (PerReplica...) to a Tensor"). Only the batch's shapes matter there, so
       this worker's first local batch is used instead.
    2. It averages each step's scalar logs over the workers with ``reduce("MEAN", v, axis=0)``
       ("Invalid reduction dimension 0 for input with 0 dimensions"); they are averaged over
       the replicas instead (``axis=None``), which is what MirroredStrategy's path computes.

    Nothing changes for the other kinds.
    """
    if placement.kind != "multi-worker" or not hasattr(model, "_maybe_symbolic_build"):
        return
    import keras

    keras_build = model._maybe_symbolic_build
    strategy = placement.strategy

    def symbolic_build(iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, it in iterator:
                data_batch = keras.tree.map_structure(
                    lambda x: strategy.experimental_local_results(x)[0], next(it)
                )
                break
        return keras_build(data_batch=data_batch)

    model._maybe_symbolic_build = symbolic_build
    _patch_step_log_reduction()


def _patch_step_log_reduction() -> None:
    from keras.src.backend.tensorflow import trainer as tf_trainer

    keras_reduce = tf_trainer.reduce_per_replica
    if getattr(keras_reduce, "_keras_seran", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and tf_trainer._collective_all_reduce_multi_worker(
            strategy
        ):
            import keras

            return keras.tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return keras_reduce(values, strategy, reduction)

    reduce_per_replica._keras_seran = True
    tf_trainer.reduce_per_replica = reduce_per_replica
