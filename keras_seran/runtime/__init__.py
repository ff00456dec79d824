"""Run an export bundle's artifacts in their own runtimes (LiteRT, onnxruntime, TensorRT).

:mod:`.runners`: one runner per runtime, a numpy batch function (B, h, w, 1) -> (B, h*s, w*s, 1);
:mod:`.bundle`: the bundle's manifest read and checked, an artifact picked and opened. Shared by
the export (parity checks) and the console path (``keras-seran predict --model BUNDLE_DIR``,
``SuperResolver.from_bundle``; :func:`keras_seran.inference.bundle.load_bundle` wraps an
artifact as a :class:`~keras_seran.inference.network.Network`). numpy only: the runtimes load
when a runner is made, and nothing here imports TensorFlow, Keras or JAX.
"""

from keras_seran.runtime.bundle import (
    MANIFEST,
    BundleArtifact,
    is_bundle,
    open_artifact,
    read_manifest,
)
from keras_seran.runtime.runners import RUNNERS, RUNTIME_MODULES, is_installed

__all__ = [
    "MANIFEST",
    "BundleArtifact",
    "is_bundle",
    "open_artifact",
    "read_manifest",
    "RUNNERS",
    "RUNTIME_MODULES",
    "is_installed",
]
