"""Geometry of in-plane super-resolution: affines, headers and the slice axis (numpy + nibabel).

Convention (pixel shuffle and bicubic with half-pixel centres): along an upscaled axis, output
voxel ``i_out`` has its centre at input voxel coordinate ``(i_out + 0.5) / s - 0.5``. So

    A_out = A_in @ M,   M = diag(1/s on the in-plane axes, 1 on the slice axis)
                            + translation -(s - 1) / (2 s) on the in-plane axes,

the voxel size shrinks by ``s`` in-plane, and the field of view is unchanged: the outer edge of
the first input voxel (coordinate -0.5) and of the last one (n - 0.5) are the outer edges of the
first and last output voxels. :func:`downscale_affine` is the inverse (HR -> LR geometry of an
``s``-times coarser grid over the same field of view, LR voxel ``i`` centred at HR coordinate
``(i + 0.5) s - 0.5``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from keras_seran.config import check_factor

#: Two voxel sizes closer than this (relative) count as equal when choosing the slice axis.
ZOOM_RTOL = 1e-3


def inplane_axes(slice_axis: int) -> tuple[int, int]:
    """The two axes of the slice plane perpendicular to ``slice_axis`` (0, 1 or 2), increasing."""
    axis = normalize_axis(slice_axis)
    a, b = (i for i in range(3) if i != axis)
    return a, b


def normalize_axis(axis: int) -> int:
    """``axis`` in {0, 1, 2, -1, -2, -3} -> 0, 1 or 2; ValueError otherwise."""
    if (
        isinstance(axis, bool)
        or not isinstance(axis, (int, np.integer))
        or not -3 <= int(axis) <= 2
    ):
        raise ValueError(f"axis must be 0, 1 or 2 (or -1, -2, -3), got {axis!r}")
    return int(axis) % 3


def choose_slice_axis(zooms: Sequence[float]) -> int:
    """The slice axis of a volume from its voxel sizes: the through-plane (thick-slice) axis.

    - two sizes equal and the third different: the different one (the equal pair is the
      acquisition plane), e.g. (2, 2, 3) -> 2 (the thick axis), (2, 1, 2) -> 1;
    - all three equal (isotropic): the last axis, 2;
    - all three different: the largest voxel size (the thickest slices; ties -> the last).
    """
    z = np.abs(np.asarray(zooms, dtype=np.float64)[:3])
    if z.shape != (3,) or not np.all(np.isfinite(z)):
        raise ValueError(f"need three finite voxel sizes, got {zooms!r}")

    def eq(a: float, b: float) -> bool:
        return bool(np.isclose(a, b, rtol=ZOOM_RTOL, atol=1e-6))

    pairs = [(i, j) for i in range(3) for j in range(i + 1, 3) if eq(z[i], z[j])]
    if len(pairs) == 3:
        return 2
    if len(pairs) == 1:
        i, j = pairs[0]
        return 3 - i - j
    # all different (or an intransitive near-tie): the thickest, the last among equals
    return int(2 - np.argmax(z[::-1]))


def upscale_matrix(scale: int, axes: Sequence[int]) -> np.ndarray:
    """(4, 4) voxel->voxel map from output (upscaled) indices to input indices along ``axes``."""
    s = float(check_factor(scale))
    m = np.eye(4)
    for a in axes:
        m[a, a] = 1.0 / s
        m[a, 3] = -(s - 1.0) / (2.0 * s)
    return m


def upscale_affine(affine: np.ndarray, scale: int, axes: Sequence[int]) -> np.ndarray:
    """Affine of the volume upscaled by ``scale`` along ``axes`` (same field of view)."""
    return np.asarray(affine, dtype=np.float64) @ upscale_matrix(scale, axes)


def downscale_affine(affine: np.ndarray, scale: int, axes: Sequence[int]) -> np.ndarray:
    """Affine of the volume downscaled by ``scale`` along ``axes`` (inverse of :func:`upscale_affine`)."""
    return np.asarray(affine, dtype=np.float64) @ np.linalg.inv(upscale_matrix(scale, axes))


def fov_corners(affine: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """World coordinates (8, 3) of the 8 outer corners of the field of view (voxel edges, not centres).

    Corner k has voxel coordinate -0.5 or n - 0.5 on each axis (bit a of k picks the upper one on axis a).
    """
    n = np.asarray(shape[:3], dtype=np.float64)
    vox = np.array([[(n[a] - 0.5) if (k >> a) & 1 else -0.5 for a in range(3)] for k in range(8)])
    return apply_affine(affine, vox)


def fov_centre(affine: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """World coordinate (3,) of the centre of the field of view (voxel coordinate (n - 1) / 2)."""
    n = np.asarray(shape[:3], dtype=np.float64)
    return apply_affine(affine, ((n - 1.0) / 2.0)[None])[0]


def apply_affine(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, 3) voxel coordinates -> (N, 3) world coordinates."""
    p = np.asarray(points, dtype=np.float64)
    a = np.asarray(affine, dtype=np.float64)
    return p @ a[:3, :3].T + a[:3, 3]


def voxel_sizes(affine: np.ndarray) -> np.ndarray:
    """Voxel sizes (3,) of an affine: the norms of its first three columns."""
    return np.sqrt((np.asarray(affine, dtype=np.float64)[:3, :3] ** 2).sum(axis=0))


def upscaled_header(
    header: Any,
    out_shape: Sequence[int],
    scale: int,
    axes: Sequence[int],
    affine: np.ndarray,
    dtype: Any = np.float32,
) -> Any:
    """A copy of a NIfTI ``header`` describing the volume upscaled by ``scale`` along ``axes``.

    The qform and the sform are each mapped by :func:`upscale_affine` (their codes are kept; a
    header with neither gets the new ``affine`` as an aligned sform/qform), the voxel sizes
    (pixdim) shrink by ``scale`` along ``axes``, the shape and data type are those of the output
    (little-endian, whatever the input's byte order; a NIfTI-2 header stays NIfTI-2),
    and the intensity scaling (scl_slope/inter) and cal_min/max are reset (data written as is).
    ``affine`` is the input image's affine (it wins over a header that disagrees with it).
    """
    return resampled_header(header, out_shape, upscale_matrix(scale, axes), affine, dtype)


def resampled_header(
    header: Any,
    out_shape: Sequence[int],
    vox_map: np.ndarray,
    affine: np.ndarray,
    dtype: Any = np.float32,
    descrip: str | None = None,
) -> Any:
    """A copy of ``header`` for a volume resampled on the grid ``out voxel -> vox_map @ in voxel``.

    ``vox_map`` is a (4, 4) diagonal-plus-translation map from output to input voxel indices
    (:func:`upscale_matrix`, or its inverse for downscaling). See :func:`upscaled_header`; also,
    when the header's slice axis (``dim_info``) is resampled, its slice-timing fields (slice
    code, start, end, duration) are cleared, and ``descrip`` (if given) replaces the text.
    """
    import nibabel as nib

    if isinstance(header, nib.Nifti1Header):  # NIfTI-1, or NIfTI-2 (a subclass): kept as it is
        hdr = header.copy()
        if hdr.endianness != "<":  # written in the standard little-endian, whatever came in
            hdr = hdr.as_byteswapped("<")
    else:
        hdr = nib.Nifti1Header()
        if header is not None:  # another format (Analyze, MGH, ...): keep what converts
            try:
                hdr = nib.Nifti1Header.from_header(header)
            except Exception:  # pragma: no cover - exotic headers
                hdr = nib.Nifti1Header()
    m = np.asarray(vox_map, dtype=np.float64)
    out_shape = tuple(int(n) for n in out_shape)
    new_affine = np.asarray(affine, dtype=np.float64) @ m
    fresh = header is None or len(hdr.get_data_shape()) < 3
    stale = fresh or not np.allclose(hdr.get_best_affine(), affine, atol=1e-4)
    old_zooms = list(voxel_sizes(affine)) if stale else list(hdr.get_zooms())
    qform, qcode = hdr.get_qform(coded=True)
    sform, scode = hdr.get_sform(coded=True)
    hdr.set_data_shape(out_shape)
    hdr.set_data_dtype(np.dtype(dtype))
    if stale:  # the image's affine wins over its header (nibabel's own rule when saving)
        hdr.set_sform(new_affine, code="aligned")
        hdr.set_qform(new_affine, code="unknown" if not fresh else "aligned")
    else:
        if qform is not None:
            hdr.set_qform(qform @ m, code=int(qcode))
        else:
            hdr.set_qform(None, code=0)
        if sform is not None:
            hdr.set_sform(sform @ m, code=int(scode))
        else:
            hdr.set_sform(None, code=0)
    zooms = [float(old_zooms[a]) * abs(float(m[a, a])) for a in range(3)]
    hdr.set_zooms(tuple(zooms) + tuple(float(z) for z in old_zooms[3 : len(out_shape)]))
    hdr.set_slope_inter(None, None)
    hdr["cal_min"] = 0
    hdr["cal_max"] = 0
    freq, phase, slice_dim = hdr.get_dim_info()
    if slice_dim is not None and not np.isclose(abs(m[slice_dim, slice_dim]), 1.0):
        # the acquisition's slice axis was resampled: its slice timing no longer fits the grid
        hdr.set_dim_info(freq, phase, None)
        for field in ("slice_code", "slice_start", "slice_end", "slice_duration"):
            hdr[field] = 0
    if descrip is not None:
        hdr["descrip"] = descrip[:79]
    return hdr


def upscaled_image(
    data: np.ndarray, affine: np.ndarray, header: Any, scale: int, slice_axis: int
) -> Any:
    """A NIfTI image of ``data`` (already upscaled in-plane) with updated geometry: NIfTI-2 for a
    NIfTI-2 input, else NIfTI-1 (:func:`resampled_image`).

    ``affine``/``header`` are those of the input volume; ``slice_axis`` the axis that was not upscaled.
    """
    return resampled_image(
        data,
        affine,
        header,
        upscale_matrix(scale, inplane_axes(slice_axis)),
        descrip=f"keras_seran x{int(scale)} super-resolution",
    )


def downscaled_image(
    data: np.ndarray, affine: np.ndarray, header: Any, scale: int, slice_axis: int
) -> Any:
    """A ``nibabel.Nifti1Image`` of ``data`` downscaled in-plane by ``scale`` (e.g. simulated LR):
    LR voxel ``i`` is centred at HR coordinate ``(i + 0.5) s - 0.5``, same field of view."""
    m = np.linalg.inv(upscale_matrix(scale, inplane_axes(slice_axis)))
    return resampled_image(
        data, affine, header, m, descrip=f"keras_seran x{int(scale)} simulated low resolution"
    )


def resampled_image(
    data: np.ndarray,
    affine: np.ndarray,
    header: Any,
    vox_map: np.ndarray,
    descrip: str | None = None,
) -> Any:
    """A NIfTI image of ``data`` resampled on the grid ``vox_map`` (:func:`resampled_header`):
    a ``Nifti2Image`` for a NIfTI-2 input header, else a ``Nifti1Image``; little-endian."""
    import nibabel as nib

    data = data.astype(data.dtype.newbyteorder("="), copy=False)  # native byte order
    hdr = resampled_header(header, data.shape, vox_map, affine, data.dtype, descrip)
    new_affine = np.asarray(affine, dtype=np.float64) @ np.asarray(vox_map, dtype=np.float64)
    klass = nib.Nifti2Image if isinstance(hdr, nib.Nifti2Header) else nib.Nifti1Image
    img = klass(data, new_affine, header=hdr, dtype=data.dtype)
    img.header.set_zooms(hdr.get_zooms())
    return img
