"""An export bundle's artifact as the resolver's :class:`~keras_seran.inference.network.Network`.

    net = load_bundle("bundle_x2")                       # onnxruntime/LiteRT float32, say
    net = load_bundle("bundle_x2", runtime="litert", precision="dynamic_int8")
    SuperResolver(net).predict_volume("t1.nii.gz")       # = SuperResolver.from_bundle(...)

The artifact is picked, hash-checked and opened by :func:`keras_seran.runtime.open_artifact`
(its errors: a one-line InputDataError naming the file, UsageError, RuntimeUnavailable). A
fixed-size file (the manifest's ``fixed_size``) becomes a Network with ``input_size``: the
resolver tiles larger slices to that size and :func:`padded_to` pads smaller inputs. numpy only.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from keras_seran.inference.network import Network
from keras_seran.runtime.bundle import open_artifact

Batch = Callable[[np.ndarray], np.ndarray]


def padded_to(run: Batch, size: tuple[int, int], scale: int) -> Batch:
    """``run`` (which takes LR inputs of exactly ``size``) for inputs up to that size: each
    batch (B, h, w, 1) is mirror-padded at the bottom/right to ``size``, run, and the output
    cropped to (B, h*s, w*s, 1). ValueError for an input larger than ``size``.

    SERA's attention pools over the whole input, padding included, so a padded slice comes out
    slightly different from the same slice run at its own size: a warning says so, once."""
    th, tw = size
    warned = []

    def run_padded(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32)
        _, h, w, _ = x.shape
        if h > th or w > tw:
            raise ValueError(f"input {h}x{w} is larger than the model's fixed size {th}x{tw}")
        if (h, w) != (th, tw):
            if not warned:
                warned.append(True)
                warnings.warn(
                    f"LR slices or tiles of {h}x{w} are padded to the file's fixed "
                    f"size {th}x{tw}; the attention sees the padding, so the result "
                    "differs a little from a file that takes any size (ONNX, or a "
                    "LiteRT export without --input-size)",
                    stacklevel=2,
                )
            x = np.pad(x, ((0, 0), (0, th - h), (0, tw - w), (0, 0)), mode="symmetric")
        return np.asarray(run(x))[:, : h * scale, : w * scale]

    return run_padded


def load_bundle(
    bundle_dir: str | Path,
    runtime: str | None = None,
    precision: str | None = None,
    scale: int | None = None,
    num_threads: int | None = None,
) -> Network:
    """The bundle's artifact for ``runtime`` and ``precision`` as a Network (see
    :func:`keras_seran.runtime.open_artifact` for the arguments, the default choice and the
    errors). ``network.name`` says what runs: bundle, runtime, precision, file."""
    art = open_artifact(bundle_dir, runtime, precision, scale, num_threads)
    run = art.run if art.input_size is None else padded_to(art.run, art.input_size, art.scale)
    return Network(
        run, art.scale, name=f"{art.bundle.name}: {art.description}", input_size=art.input_size
    )
