"""The volume adapter: whatever a user passes as a volume -> a checked
:class:`keras_seran.data.io.Volume`, and the axis it is sliced along (numpy only; nibabel
objects are used as they come, not imported).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from keras_seran.data.io import Volume, has_scaling, load_volume, volume_array
from keras_seran.errors import InputDataError
from keras_seran.inference import geometry

#: What messages call an image that has no file.
IN_MEMORY = "<in-memory image>"


#: The geometry a bare numpy array gets: 1 mm voxels on the identity affine (as a .npy file).
ARRAY_AFFINE = np.eye(4)


def as_volume(img: Any) -> Volume:
    """A :class:`keras_seran.data.io.Volume` from a path (:func:`~keras_seran.data.io.load_volume`:
    NIfTI, a DICOM series folder or multi-frame file, .npy), a nibabel image, a 3D numpy array
    or a Volume (returned as it is); checked like a file (InputDataError naming the file, or
    ``IN_MEMORY``).

    A numpy array has no geometry: it gets ``ARRAY_AFFINE`` (identity, 1 mm isotropic voxels,
    as a .npy file), so the slice axis defaults to the last one; pass ``axis=``, or a
    ``nib.Nifti1Image(arr, affine)`` with the real affine, to say otherwise. TypeError, saying
    what to pass, for anything else.
    """
    if isinstance(img, Volume):
        return img
    if isinstance(img, (str, Path)):
        return load_volume(img)
    if isinstance(img, np.ndarray):
        if not np.issubdtype(img.dtype, np.number) or np.iscomplexobj(img):
            raise InputDataError(
                IN_MEMORY, f"array of dtype {img.dtype} is not real-valued intensities"
            )
        a = volume_array(np.asarray(img, dtype=np.float32), IN_MEMORY)
        return Volume(np.ascontiguousarray(a), ARRAY_AFFINE.copy(), None, "", (1.0, 1.0, 1.0))
    if hasattr(img, "dataobj") and hasattr(img, "affine"):
        name = img.get_filename() if hasattr(img, "get_filename") else None
        path = name or IN_MEMORY
        dtype = img.get_data_dtype() if hasattr(img, "get_data_dtype") else np.dtype(np.float32)
        if getattr(dtype, "fields", None) is not None or np.issubdtype(dtype, np.complexfloating):
            raise InputDataError(
                path, f"image holds {dtype} voxels (complex or RGB), not real-valued intensities"
            )
        a = np.asarray(img.dataobj, dtype=np.float32)
        a = volume_array(a, path)
        zooms = tuple(float(z) for z in geometry.voxel_sizes(img.affine))
        header = getattr(img, "header", None)
        if header is not None and len(header.get_zooms()) >= 3:
            zooms = tuple(float(z) for z in header.get_zooms()[:3])
        return Volume(
            np.ascontiguousarray(a),
            np.asarray(img.affine, dtype=np.float64),
            header,
            "" if path == IN_MEMORY else str(path),
            zooms,
            has_scaling(img),
        )
    raise TypeError(
        f"cannot use a {type(img).__name__} as a volume: pass a NIfTI/DICOM path, a "
        "nibabel image (e.g. nib.Nifti1Image(array, affine), which keeps the voxel "
        "sizes), a 3D numpy array (1 mm voxels assumed) or a "
        "keras_seran.data.io.Volume"
    )


def slice_axis(vol: Volume) -> int:
    """The through-plane axis of a Volume; InputDataError naming it for unusable voxel sizes.

    The voxel sizes are the affine's (the matrix the output geometry is built from; nibabel's
    ``img.affine`` is the sform when set), so a header whose pixdim (qform) disagrees with its
    sform cannot get one axis upscaled while the written affine says another is the thick one.
    An identity affine (an in-memory volume without one) leaves the choice to ``vol.zooms``.
    """
    affine = np.asarray(vol.affine, dtype=np.float64)
    use_affine = affine.shape == (4, 4) and not np.allclose(affine, np.eye(4))
    sizes = geometry.voxel_sizes(affine) if use_affine else vol.zooms
    try:
        return geometry.choose_slice_axis(sizes)
    except ValueError as e:
        where = "affine" if use_affine else "voxel sizes (pixdim)"
        raise InputDataError(
            vol.path or None,
            f"{e}: the {where} is invalid; fix the header or give the slice axis (--axis)",
        ) from None


def predict_to_file(
    predict_volume: Callable[..., Any],
    input_path: str | Path,
    output_path: str | Path,
    overwrite: bool = False,
    volume: Any = None,
    **kwargs: Any,
) -> dict:
    """Read ``input_path`` (or take ``volume``, already loaded), run ``predict_volume(vol,
    axis=..., **kwargs)`` and write the result atomically; the output path is checked before
    any work. Returns a summary dict (paths, shapes, voxel sizes, axis, seconds)."""
    import time

    from keras_seran import files

    t0 = time.perf_counter()
    out = files.check_output_path(output_path, input_path, overwrite)
    vol = as_volume(volume if volume is not None else input_path)
    axis = kwargs.pop("axis", None)
    axis = axis if axis is not None else slice_axis(vol)
    result = predict_volume(vol, axis=axis, **kwargs)
    files.save_nifti(result, out)
    return {
        "input": str(input_path),
        "output": str(out),
        "axis": int(axis),
        "shape_in": tuple(vol.data.shape),
        "shape_out": tuple(result.shape),
        "zooms_in": tuple(round(float(z), 4) for z in vol.zooms),
        "zooms_out": tuple(round(float(z), 4) for z in result.header.get_zooms()[:3]),
        "dtype_out": str(result.get_data_dtype()),
        "seconds": time.perf_counter() - t0,
    }
