"""Which Keras backend runs, and which accelerators it sees, without assuming TensorFlow.

The layers and the model are pure ``keras.ops``, so inference and training also run on the JAX
and PyTorch backends (e.g. a GPU machine that has JAX but no TensorFlow). What differs per
backend is gathered here: counting GPUs, keeping work on the CPU, and whether the tf.data
pipeline, TensorBoard logging and ``tf.distribute`` are available. Export needs TensorFlow.
"""

from __future__ import annotations

import importlib.util
import os

import keras

from keras_seran.errors import UsageError

__all__ = ["backend", "gpu_count", "has_tensorflow", "select_device", "describe"]


def backend() -> str:
    """The running Keras backend: "tensorflow", "jax", "torch" or "numpy"."""
    return keras.backend.backend()


def has_tensorflow() -> bool:
    """Whether TensorFlow can be imported (tf.data, TensorBoard, export)."""
    return importlib.util.find_spec("tensorflow") is not None


def gpu_count() -> int:
    """GPUs the running backend can use (0 on a CPU-only install)."""
    name = backend()
    if name == "tensorflow":
        import tensorflow as tf

        return len(tf.config.list_physical_devices("GPU"))
    if name == "jax":
        import jax

        return sum(d.platform == "gpu" for d in jax.devices())
    if name == "torch":
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    return 0


def describe() -> str:
    """One line for logs and benchmark tables, e.g. "jax, gpu x1" or "tensorflow, cpu"."""
    n = gpu_count()
    return f"{backend()}, " + (f"gpu x{n}" if n else f"cpu ({os.cpu_count()} cores)")


def select_device(device: str) -> str:
    """Make the backend use ``device`` ("cpu", "gpu" or "auto"); returns a description.

    "cpu" hides the GPUs (TensorFlow: ``set_visible_devices``; JAX: the "cpu" platform, which
    must be chosen before its first computation; PyTorch: refused when a GPU is visible, as Keras
    has already placed itself, so start with ``CUDA_VISIBLE_DEVICES=`` instead). "gpu" fails
    clearly when the backend sees none.
    """
    if device not in ("cpu", "gpu", "auto"):
        raise UsageError(f"--device must be cpu, gpu or auto, got {device!r}")
    name = backend()
    if device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # effective for anything not started yet
        _hide_gpus(name)
        return "cpu"
    n = gpu_count()
    if device == "gpu":
        if not n:
            hint = (
                "install keras-seran[gpu]"
                if name == "tensorflow"
                else f"install the CUDA build of {name}"
            )
            raise UsageError(
                f"--device gpu: the {name} backend sees no GPU (a CPU-only "
                f"install, or no CUDA driver); {hint} or use --device cpu"
            )
        if name == "tensorflow":
            import tensorflow as tf

            for g in tf.config.list_physical_devices("GPU"):
                try:
                    tf.config.experimental.set_memory_growth(g, True)
                except (RuntimeError, ValueError):
                    pass
    return f"gpu ({n} visible)" if n else "cpu"


def _hide_gpus(name: str) -> None:
    if name == "tensorflow":
        import tensorflow as tf

        if tf.config.list_physical_devices("GPU"):
            try:
                tf.config.set_visible_devices([], "GPU")
            except RuntimeError:  # already initialised: the env var / default placement decide
                pass
    elif name == "jax":
        import jax

        try:
            jax.config.update("jax_platforms", "cpu")
        except RuntimeError:  # backends already initialised
            pass
        if any(d.platform != "cpu" for d in jax.devices()):
            raise UsageError(
                "--device cpu: JAX has already started on the GPU; start "
                "with JAX_PLATFORMS=cpu instead"
            )
    elif name == "torch":
        if gpu_count():
            raise UsageError(
                "--device cpu: the torch backend has already chosen the "
                "GPU; start with CUDA_VISIBLE_DEVICES= instead"
            )
