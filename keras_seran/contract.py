"""The network's input contract: what every network of the package takes and gives.

An SR network maps (N, H, W, 1) float32 to (N, H*s, W*s, 1) float32, in normalised intensities:
each volume (or lone slice) is mapped by its robust percentiles ``DEFAULT_PERCENTILES`` to
[0, 1] for tissue, and the network is given values within ``NETWORK_RANGE``. Exported models
name their tensors ``INPUT_NAME`` -> ``OUTPUT_NAME`` under the signature ``SIGNATURE``.
Training (:class:`~keras_seran.config.DataConfig`), inference
(:class:`~keras_seran.SuperResolver`) and the export bundle's manifest all take them from here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: Robust normalisation range (percentiles of the whole volume's intensities) mapped to [0, 1].
DEFAULT_PERCENTILES: tuple[float, float] = (0.5, 99.5)

#: Normalised intensities the network is given; what lies beyond bypasses it (upscaled
#: bicubically and added back), so a spike (a voxel many times brighter than the tissue) enters
#: the network at 1.5 at most and cannot disturb the whole slice through SERA's image-wide
#: attention. Real LR volumes stay (almost) inside (see docs/design-notes.md, contract).
NETWORK_RANGE: tuple[float, float] = (-0.5, 1.5)

#: Tensor names of exported models (SavedModel signature, ONNX, TensorRT): LR in, SR out.
INPUT_NAME = "lr"
OUTPUT_NAME = "sr"
SIGNATURE = "serving_default"

_PROBE = 12  # side of the zero image the scale is measured on


def input_channels(model: Any) -> int:
    """Channels of ``model``'s input (the last axis of its first input; 1 when not known)."""
    import numpy as np  # here, not at the top: the command line's --help imports this module

    inputs = getattr(model, "inputs", None)
    channels = inputs[0].shape[-1] if inputs else None
    return int(channels) if isinstance(channels, (int, np.integer)) else 1


def probe_scale(run: Callable[[Any], Any], channels: int = 1, name: Any = "network") -> int:
    """The upscaling factor ``s`` of an SR batch function ``run`` (N, H, W, C) -> (N, H*s, W*s, C),
    from one call on a (1, 12, 12, C) image of zeros (the output only needs a ``shape``: a numpy
    array or any backend's tensor). ``name`` names the network in errors.

    Raises ValueError for several outputs (a model built with ``return_attention=True``?), an
    output that is not (1, 12 s, 12 s, C), or an upscaling that is not one integer factor.
    """
    import numpy as np  # here, not at the top: the command line's --help imports this module

    c = int(channels)
    out = run(np.zeros((1, _PROBE, _PROBE, c), dtype=np.float32))
    if isinstance(out, (dict, list, tuple)):
        raise ValueError(
            f"model {name!r} has several outputs (built with "
            "return_attention=True?); give the SR network alone, e.g. seran(...) "
            "without return_attention"
        )
    shape = tuple(np.shape(out))
    if len(shape) != 4 or shape[-1] != c:
        raise ValueError(
            f"model {name!r} maps (1, {_PROBE}, {_PROBE}, {c}) to {shape}; expected "
            f"(1, {_PROBE} s, {_PROBE} s, {c}) (an SR network)"
        )
    sh, sw = shape[1] / _PROBE, shape[2] / _PROBE
    if sh != sw or sh != int(sh) or sh < 1:
        raise ValueError(
            f"model output {shape[1:3]} is not an integer upscaling of ({_PROBE}, {_PROBE})"
        )
    return int(sh)


def infer_scale(model: Any) -> int:
    """The upscaling factor ``s`` of a Keras SR model (N, H, W, C) -> (N, H*s, W*s, C): one
    forward pass (:func:`probe_scale`, whose ValueErrors it raises) with ``training=False``."""
    return probe_scale(
        lambda x: model(x, training=False), input_channels(model), getattr(model, "name", model)
    )
