"""Run a Keras SR model on batches of 2D slices: the one place that calls a Keras network.

Both :class:`~keras_seran.inference.SuperResolver` (through :func:`keras_network`, the Keras
adapter of its :class:`~keras_seran.inference.network.Network`) and the evaluation protocol
(:func:`~keras_seran.evaluation.protocol.keras_predictor`) go through :func:`batch_runner`, so
they run a model the same way (and fall back the same way). The only inference module that
imports Keras.
"""

from __future__ import annotations

import keras
import numpy as np

from keras_seran.contract import infer_scale, input_channels
from keras_seran.inference.ensemble import BatchFn
from keras_seran.inference.network import Network
from keras_seran.inference.tiling import model_bytes_per_pixel


def _out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation failure (host or device) rather than a tracing problem."""
    return (
        isinstance(exc, MemoryError)
        or "ResourceExhausted" in type(exc).__name__
        or "out of memory" in str(exc).lower()
    )


def batch_runner(model: keras.Model) -> BatchFn:
    """A function (B, h, w) float -> (B, h*s, w*s) float32: one pass of ``model`` on (B, h, w, 1).

    Uses ``predict_on_batch`` (a traced function); when a model cannot be traced with the
    unknown H, W that retracing generalises to (e.g. the bicubic ``UpSampling2D`` baseline), it
    switches to eager calls for good. Running out of memory is raised as it is (an eager call
    needs more, and retrying would hide the cause: use tiles, --max-memory or a smaller batch).
    """
    eager = False

    def run(batch: np.ndarray) -> np.ndarray:
        nonlocal eager
        x = np.ascontiguousarray(batch, dtype=np.float32)[..., None]
        if not eager:
            try:
                return np.asarray(model.predict_on_batch(x), dtype=np.float32)[..., 0]
            except Exception as exc:  # noqa: BLE001 - tracing failure: run eagerly instead
                if _out_of_memory(exc):  # eager would need more, not less: say it as it is
                    raise
                eager = True
        y = keras.ops.convert_to_numpy(model(x, training=False))  # any backend
        return np.asarray(y, dtype=np.float32)[..., 0]

    return run


def keras_network(model: keras.Layer) -> Network:
    """``model`` as the resolver's :class:`~keras_seran.inference.network.Network`: its batch
    function (:func:`batch_runner` on (N, h, w, 1)), scale (one probe pass), name and memory
    estimate. ValueError for a model that is not a grayscale SR network (N, H, W, 1) ->
    (N, H*s, W*s, 1)."""
    name = getattr(model, "name", type(model).__name__)
    if input_channels(model) != 1:
        raise ValueError(
            f"model {name!r} takes {input_channels(model)} channels; "
            "SuperResolver needs a grayscale SR network (N, H, W, 1) -> "
            "(N, H*s, W*s, 1)"
        )
    scale = infer_scale(model)
    run = batch_runner(model)
    return Network(
        lambda x: run(x[..., 0])[..., None],
        scale,
        name,
        model_bytes_per_pixel(model),
        4.0 * float(getattr(model, "count_params", lambda: 0)()),
    )
