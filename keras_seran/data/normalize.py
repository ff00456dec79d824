"""Per-volume robust intensity normalisation to [0, 1], invertible (numpy; no TensorFlow).

MR intensities have no absolute scale (they depend on scanner, coil and sequence), so each volume
is mapped by its own percentiles: ``low`` -> 0 and ``high`` -> 1 (by default
:data:`keras_seran.contract.DEFAULT_PERCENTILES`, the 0.5th and the 99.5th).
The two numbers are kept in :class:`NormStats` so that a super-resolved result can be written back
in the intensity units of the original file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_seran.config import check_percentiles
from keras_seran.contract import DEFAULT_PERCENTILES
from keras_seran.errors import InputDataError


@dataclass(frozen=True)
class NormStats:
    """Linear map ``x -> (x - low) / (high - low)``, optionally clipped to [0, 1].

    Attributes:
        low: intensity mapped to 0 (lower percentile of the volume).
        high: intensity mapped to 1 (upper percentile); ``high > low``.
        clip: clip the normalised values to [0, 1] (the few voxels beyond the percentiles).
            ``invert`` cannot restore what clipping removed; everything else round-trips exactly
            (up to float32 round-off).
    """

    low: float
    high: float
    clip: bool = True

    def __post_init__(self) -> None:
        if not (np.isfinite(self.low) and np.isfinite(self.high)) or not self.high > self.low:
            raise ValueError(
                f"NormStats needs finite high > low, got low={self.low}, high={self.high}"
            )

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Original units -> normalised float32 (any shape)."""
        y = (np.asarray(x, dtype=np.float64) - self.low) / (self.high - self.low)
        if self.clip:
            y = np.clip(y, 0.0, 1.0)
        return y.astype(np.float32)

    def invert(self, y: np.ndarray) -> np.ndarray:
        """Normalised -> original units, float32 (any shape). E.g. a network output back to the file's scale."""
        return (np.asarray(y, dtype=np.float64) * (self.high - self.low) + self.low).astype(
            np.float32
        )

    def to_dict(self) -> dict:
        return {"low": float(self.low), "high": float(self.high), "clip": bool(self.clip)}


def fit_normalization(
    arr: np.ndarray,
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
    clip: bool = True,
    path: str | Path | None = None,
) -> NormStats:
    """Percentile range of an image or volume (any shape) as :class:`NormStats`.

    When the two percentiles coincide (e.g. a volume that is > 99 % background) the range falls
    back to [min, max]. Raises InputDataError (naming ``path`` when given) for a constant or
    non-finite array, and ValueError for invalid percentiles.
    """
    lo_p, hi_p = check_percentiles(percentiles)
    a = np.asarray(arr)
    if a.size == 0:
        raise InputDataError(path, "empty image: nothing to normalise")
    if not np.isfinite(a).all():
        raise InputDataError(path, "image contains NaN/Inf values; replace them before normalising")
    lo, hi = (float(v) for v in np.percentile(a, [lo_p, hi_p]))
    if not hi > lo:
        lo, hi = float(a.min()), float(a.max())
    if not hi > lo:
        raise InputDataError(
            path, f"constant image (every value = {lo:g}) cannot be normalised; check the file"
        )
    return NormStats(lo, hi, clip)


def normalize(
    arr: np.ndarray,
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
    clip: bool = True,
    path: str | Path | None = None,
) -> tuple[np.ndarray, NormStats]:
    """(arr mapped to [0, 1] as float32, the NormStats to map results back). Any shape."""
    stats = fit_normalization(arr, percentiles, clip=clip, path=path)
    return stats.apply(arr), stats
