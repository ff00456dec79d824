"""Through-plane geometry: from a thick-slice stack to a grid of (near-)isotropic voxels.

A 2D multi-slice stack has one thick axis (the slice axis, 3-6 mm) and fine in-plane voxels. The
isotropic grid keeps the field of view and divides the thick axis into ``n_out`` voxels of about
the target spacing (the in-plane voxel size unless given):

    n_out = round(n_in * dz / target),   voxel size along the axis = n_in * dz / n_out,

so the outer edges of the first and last thick slices are the outer edges of the first and last
output voxels, and output voxel j has its centre at input index ``(j + 0.5) / R - 0.5`` with
``R = n_out / n_in`` (the block-centre convention of the in-plane geometry,
:mod:`keras_seran.inference.geometry`; R may be any ratio above 1, e.g. 1.2 or 5.56).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from keras_seran.data.degrade import fourier_resample, imresize_weights
from keras_seran.errors import InputDataError

#: Largest thick/target ratio the through-plane path accepts (the network was trained up to 6).
MAX_RATIO = 8.0
#: Below this ratio a thick axis is "already fine": nothing to do.
MIN_RATIO = 1.05
INTERPOLATIONS = ("cubic", "sinc")


@dataclass(frozen=True)
class IsotropicPlan:
    """How a volume becomes isotropic along its thick axis.

    Attributes:
        axis: the thick (slice) axis, 0, 1 or 2.
        n_in: slices along it.
        n_out: output voxels along it.
        spacing_in: thick voxel size (mm).
        spacing_out: output voxel size (mm): ``n_in * spacing_in / n_out``.
    """

    axis: int
    n_in: int
    n_out: int
    spacing_in: float
    spacing_out: float

    @property
    def ratio(self) -> float:
        """R = n_out / n_in: output voxels per thick slice."""
        return self.n_out / self.n_in

    def vox_map(self) -> np.ndarray:
        """(4, 4) map from output voxel indices to input voxel indices (see module docstring)."""
        m = np.eye(4)
        r = self.ratio
        m[self.axis, self.axis] = 1.0 / r
        m[self.axis, 3] = 0.5 / r - 0.5
        return m


def plan_isotropic(shape: Sequence[int], zooms: Sequence[float], axis: int | None = None,
                   target_spacing: float | None = None, path: object = None) -> IsotropicPlan:
    """The :class:`IsotropicPlan` of a volume of ``shape`` with voxel sizes ``zooms`` (mm).

    ``axis``: the thick axis (default: the axis with the largest voxel size, which must be larger
    than both others). ``target_spacing`` (mm): default the finer of the two other voxel sizes.
    Raises InputDataError naming ``path`` when there is no thick axis (nothing to do), the ratio
    is above :data:`MAX_RATIO`, or the axis holds fewer than 2 slices.
    """
    z = np.abs(np.asarray(zooms, np.float64)[:3])
    if axis is None:
        order = np.argsort(z)
        axis = int(order[-1])
        if np.isclose(z[order[-1]], z[order[-2]], rtol=1e-3):
            raise InputDataError(path, f"no thick axis: voxel sizes {_fmt(z)} mm have no single "
                                       "largest one; nothing to make isotropic (give --axis to "
                                       "choose one)")
    others = [z[a] for a in range(3) if a != axis]
    target = float(min(others) if target_spacing is None else target_spacing)
    if not target > 0:
        raise InputDataError(path, f"target spacing must be positive, got {target_spacing!r}")
    ratio = z[axis] / target
    if ratio < MIN_RATIO:
        raise InputDataError(path, f"axis {axis} ({z[axis]:g} mm) is already as fine as the target "
                                   f"{target:g} mm (voxel sizes {_fmt(z)} mm): nothing to do")
    if ratio > MAX_RATIO:
        raise InputDataError(path, f"axis {axis}: {z[axis]:g} mm to {target:g} mm is a ratio of "
                                   f"{ratio:.2f}, above the supported {MAX_RATIO:g}; choose a "
                                   "larger --target-spacing")
    n_in = int(shape[axis])
    if n_in < 2:
        raise InputDataError(path, f"axis {axis} holds {n_in} slice; need at least 2")
    n_out = int(round(n_in * ratio))
    return IsotropicPlan(axis=int(axis), n_in=n_in, n_out=n_out, spacing_in=float(z[axis]),
                         spacing_out=float(n_in * z[axis] / n_out))


def interpolate_axis(volume: np.ndarray, axis: int, n_out: int, method: str = "cubic"
                     ) -> np.ndarray:
    """``volume`` resampled along ``axis`` to ``n_out`` samples on the block-centred grid, float32.

    "cubic": the cubic kernel (MATLAB ``imresize``, no antialiasing: an upsampling), what
    scanners and viewers show for reformats; "sinc": zero-filling of the spectrum along the axis
    (band-limited interpolation, the k-space baseline).
    """
    if method not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {method!r}")
    v = np.asarray(volume, np.float64)
    n_in = v.shape[axis]
    if method == "sinc":
        return fourier_resample(v, int(n_out), axis).astype(np.float32)
    w = imresize_weights(n_in, int(n_out), n_out / n_in, antialias=False)
    return np.moveaxis(np.tensordot(w, np.moveaxis(v, axis, 0), axes=1), 0, axis).astype(np.float32)


def _fmt(z: np.ndarray) -> str:
    return " x ".join(f"{v:g}" for v in z)
