"""k-space data consistency: keep what the scanner measured in a super-resolved slice.

A k-space-truncated acquisition measured the centre (H, W) of the (H s, W s) spectrum of the
high-resolution slice. A network's output ``sr`` has its own estimate of that centre; data
consistency puts the measurement back:

    dc(sr) = sr + w * ZIP(lr - T(sr)),

with T the block-centred k-space truncation (:func:`keras_seran.data.degrade.kspace_downscale`,
linear part) and ZIP its zero-filling inverse (:func:`~keras_seran.data.degrade.kspace_upscale`).
``w = 1`` replaces the centre of the spectrum with the measured one exactly (T(dc(sr)) = lr);
``0 < w < 1`` blends them, for noisy measurements; frequencies outside the centre (what the
network added) are untouched.
"""

from __future__ import annotations

import numpy as np

from keras_seran.config import check_data_consistency
from keras_seran.data.degrade import kspace_downscale, kspace_upscale


def kspace_consistency(
    sr: np.ndarray, lr: np.ndarray, scale: int, weight: float = 1.0
) -> np.ndarray:
    """``sr`` (..., H s, W s) with the centre of its spectrum set to (``weight`` = 1) or blended
    towards (``weight`` < 1) that of the measured ``lr`` (..., H, W); float32, same shape as sr."""
    weight = check_data_consistency(weight, "data-consistency weight")
    sr = np.asarray(sr, np.float32)
    lr = np.asarray(lr, np.float32)
    s = int(scale)
    if sr.shape[-2:] != (lr.shape[-2] * s, lr.shape[-1] * s):
        raise ValueError(f"sr {sr.shape[-2:]} is not lr {lr.shape[-2:]} times {s}")
    if weight == 0:
        return sr
    residual = lr - kspace_downscale(sr, s)
    return (sr + float(weight) * kspace_upscale(residual, s)).astype(np.float32)
