"""The SR network as :class:`~keras_seran.SuperResolver` sees it: a numpy batch function.

    run(x) -> y    x (N, h, w, 1) float32, normalised intensities within ``NETWORK_RANGE``
                   y (N, h*s, w*s, 1) float32, the same units

for any N >= 1 and any h, w >= 1 (the resolver tiles slices larger than its tile size). Nothing
here imports Keras, TensorFlow or JAX: a Keras model is adapted by
:func:`keras_seran.inference.runner.keras_network` (imported only when one is given), and an
exported artifact run by its own runtime (LiteRT, onnxruntime, TensorRT) is wrapped the same way
by :func:`keras_seran.inference.bundle.load_bundle`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from keras_seran.contract import probe_scale
from keras_seran.inference.tiling import UNKNOWN_BYTES_PER_PIXEL

#: (N, h, w, 1) float32 -> (N, h*s, w*s, 1) float32
NetworkFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Network:
    """A batch function with what the resolver must know about it.

    Attributes:
        run: the batch function (see the module docstring); may return any array-like.
        scale: its upscaling factor s.
        name: how messages name it.
        bytes_per_pixel: estimated activation bytes per LR pixel of one image (memory planning,
            :meth:`SuperResolver.plan`).
        weights_bytes: bytes of its weights (memory planning).
        input_size: the one LR (H, W) it takes (a fixed-size exported file), None for any:
            the resolver then cuts larger slices into tiles of that size, and ``run`` pads
            smaller inputs to it (:func:`keras_seran.inference.bundle.padded_to`).
    """

    run: NetworkFn
    scale: int
    name: str = "network"
    bytes_per_pixel: float = UNKNOWN_BYTES_PER_PIXEL
    weights_bytes: float = 0.0
    input_size: tuple[int, int] | None = None

    @classmethod
    def from_function(cls, run: NetworkFn, scale: int | None = None, **kwargs: Any) -> Network:
        """``run`` as a Network; its scale is measured by one call on zeros
        (:func:`~keras_seran.contract.probe_scale`) when not given. ValueError when ``run`` is
        not an SR batch function."""
        name = kwargs.pop("name", getattr(run, "__name__", type(run).__name__))
        if scale is None:
            scale = probe_scale(run, 1, name)
        return cls(run, int(scale), name, **kwargs)


def is_keras_layer(obj: Any) -> bool:
    """Whether ``obj`` is a Keras layer or model (without importing Keras: a Keras object exists
    only once Keras is imported)."""
    keras = sys.modules.get("keras")
    return keras is not None and isinstance(obj, keras.Layer)


def as_network(model: Any, scale: int | None = None) -> Network:
    """A :class:`Network` from a Network, a Keras model (adapted by
    :func:`~keras_seran.inference.runner.keras_network`) or a batch function.

    ``scale``: the factor the caller expects; ValueError when the network's differs (or when
    ``model`` is not an SR network), TypeError for anything else.
    """
    if isinstance(model, Network):
        net = model
    elif is_keras_layer(model):
        from keras_seran.inference.runner import keras_network

        net = keras_network(model)
    elif callable(model):
        net = Network.from_function(model)
    else:
        raise TypeError(
            f"expected a Keras model, a batch function or a Network, got {type(model).__name__}"
        )
    if scale is not None and int(scale) != net.scale:
        raise ValueError(
            f"model {net.name!r} upscales by {net.scale}, not by the requested scale {scale}"
        )
    return net
