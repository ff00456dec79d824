"""Thick-slice acquisition along one axis, and interpolation back to a fine grid (numpy).

A clinical 2D multi-slice stack samples the object along its slice axis with thick slices:
slice k integrates the object over its *slice profile*, a boxcar as wide as the slice thickness
T or a Gaussian of full width at half maximum T, centred at ``c_k = c_0 + k * spacing``
(``spacing = T + gap``). In-plane the stack is fine (0.5-1 mm), along the slice axis coarse
(3-6 mm): the through-plane problem (:mod:`keras_seran.inference.throughplane`).

Units along the axis are *fine voxels*: fine voxel i covers [i - 0.5, i + 0.5], so a stack of m
slices of thickness T with no gap covering the same field of view as n = m T fine voxels has
its slice centres at the block centres ``c_k = -0.5 + (k + 0.5) T`` (:func:`block_centres`).
Every operation is a matrix along the axis (so a 2D slice is ``M @ img``), built exactly: a
thick slice's weights on fine voxel i are the integral of its profile over that voxel.
"""

from __future__ import annotations

from math import erf, sqrt

import numpy as np

from keras_seran.config import SLICE_PROFILES
from keras_seran.data.degrade import cubic_kernel

__all__ = ["PROFILES", "block_centres", "profile_matrix", "cubic_matrix", "thick_slice_matrix"]

PROFILES = SLICE_PROFILES
#: FWHM = 2 sqrt(2 ln 2) sigma
_FWHM_PER_SIGMA = 2.0 * sqrt(2.0 * np.log(2.0))


def block_centres(n_slices: int, thickness: float, spacing: float | None = None) -> np.ndarray:
    """Fine-grid positions of the centres of ``n_slices`` slices that tile the field of view from
    fine position -0.5 on: ``-0.5 + thickness / 2 + k * spacing`` (spacing defaults to the
    thickness: no gap)."""
    spacing = float(thickness if spacing is None else spacing)
    return -0.5 + float(thickness) / 2.0 + spacing * np.arange(int(n_slices), dtype=np.float64)


def _overlap_boxcar(centres: np.ndarray, width: float, n: int) -> np.ndarray:
    lo = np.arange(n) - 0.5
    hi = lo + 1.0
    a = centres[:, None] - width / 2.0
    b = centres[:, None] + width / 2.0
    return np.clip(np.minimum(hi, b) - np.maximum(lo, a), 0.0, None)


def _overlap_gaussian(centres: np.ndarray, fwhm: float, n: int) -> np.ndarray:
    sigma = fwhm / _FWHM_PER_SIGMA
    verf = np.vectorize(erf)
    edges = np.arange(n + 1) - 0.5
    cdf = 0.5 * (1.0 + verf((edges[None, :] - centres[:, None]) / (sigma * sqrt(2.0))))
    return np.diff(cdf, axis=1)


def profile_matrix(
    n_fine: int, centres: np.ndarray, thickness: float, kind: str = "boxcar"
) -> np.ndarray:
    """(m, n_fine) matrix of thick-slice acquisition: row k holds slice k's weights on the fine
    voxels, the integral of its profile over each voxel, normalised to sum 1 (a slice partly
    outside the field of view averages what lies inside it; replicate boundary).

    Args:
        n_fine: fine voxels along the axis.
        centres: (m,) slice centres in fine-voxel units (:func:`block_centres`).
        thickness: slice thickness T in fine voxels (boxcar width, Gaussian FWHM).
        kind: "boxcar" or "gaussian".
    """
    if kind not in PROFILES:
        raise ValueError(f"slice profile must be one of {PROFILES}, got {kind!r}")
    if not thickness > 0:
        raise ValueError(f"slice thickness must be positive, got {thickness!r}")
    c = np.asarray(centres, np.float64).ravel()
    w = (
        _overlap_boxcar(c, float(thickness), n_fine)
        if kind == "boxcar"
        else _overlap_gaussian(c, float(thickness), n_fine)
    )
    total = w.sum(axis=1, keepdims=True)
    if np.any(total <= 0):
        raise ValueError("a slice lies entirely outside the field of view")
    return w / total


def cubic_matrix(positions: np.ndarray, n_in: int) -> np.ndarray:
    """(len(positions), n_in) matrix of cubic interpolation (Keys, a = -0.5: MATLAB's
    ``imresize`` kernel, no antialiasing) of n_in samples at fractional input ``positions``
    (input sample k sits at position k), symmetric (mirror) boundary.

    For positions ``(j + 0.5) / r - 0.5`` it equals
    ``keras_seran.data.degrade.imresize_weights(n_in, n_out, r, antialias=False)``.
    """
    u = np.asarray(positions, np.float64).ravel()
    left = np.floor(u) - 1.0
    idx = left[:, None] + np.arange(4, dtype=np.float64)[None, :]  # 4 taps
    w = cubic_kernel(u[:, None] - idx)
    w = w / w.sum(axis=1, keepdims=True)
    period = 2 * n_in
    aux = np.concatenate([np.arange(n_in), np.arange(n_in - 1, -1, -1)])
    cols = aux[np.mod(idx.astype(np.int64), period)]
    m = np.zeros((len(u), n_in), dtype=np.float64)
    rows = np.broadcast_to(np.arange(len(u))[:, None], cols.shape)
    np.add.at(m, (rows, cols), w)
    return m


def thick_slice_matrix(
    n_fine: int, thickness: float, gap: float = 0.0, offset: float = 0.0, kind: str = "boxcar"
) -> tuple[np.ndarray, np.ndarray]:
    """The training degradation along one axis of a fine patch: ``(A, U)``.

    ``A`` (m, n_fine) acquires the slices whose centres lie in the patch (centres
    ``-0.5 + thickness / 2 + offset + k * (thickness + gap)``, ``offset`` in [0, spacing));
    ``U`` (n_fine, m) interpolates them back onto the fine voxels with the cubic kernel, so
    ``U @ A @ patch`` is what a network restoring pre-interpolated thick slices is given.
    """
    spacing = float(thickness) + float(gap)
    if not spacing > 0:
        raise ValueError("thickness + gap must be positive")
    first = -0.5 + thickness / 2.0 + float(offset)
    m = int(np.floor((n_fine - 0.5 - first) / spacing)) + 1
    if m < 2:
        raise ValueError(
            f"a patch of {n_fine} fine voxels holds fewer than two slices of spacing {spacing:g}"
        )
    centres = first + spacing * np.arange(m)
    a = profile_matrix(n_fine, centres, thickness, kind)
    u = cubic_matrix((np.arange(n_fine) - first) / spacing, m)
    return a, u
