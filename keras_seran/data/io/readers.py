"""Reading MR images into numpy: NIfTI volumes, DICOM volumes (a folder holding one series, or a
multi-frame file: :mod:`.dicom`), 2D slices (PNG/TIFF/JPEG, NPY, one DICOM image), each checked
(:func:`volume_array`, :func:`check_array`) before it is returned. Other formats get advice
that fits them (:func:`format_advice`).

Every problem with an input file raises :class:`~keras_seran.errors.InputDataError` whose message
reads ``"<path>: <problem>; <what to do>"``. Nothing here imports TensorFlow; nibabel, pydicom
and Pillow are imported by the reader that needs them.
"""

from __future__ import annotations

import gzip
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from keras_seran.data.io.dicom import (
    frame_count,
    load_dicom_slice,
    load_dicom_volume,
    read_dicom,
)
from keras_seran.data.io.discovery import (
    SLICE_SUFFIXES,
    check_not_temporary,
    is_nifti,
    looks_like_dicom,
)
from keras_seran.errors import InputDataError


@dataclass
class Volume:
    """A 3D MR volume in memory.

    Attributes:
        data: float32 array (X, Y, Z), in the file's intensity units (NIfTI scaling applied).
        affine: (4, 4) voxel-to-world matrix (identity when the source has none).
        header: the nibabel NIfTI header (of the file; for DICOM one made from the scanner
            geometry, sform/qform code "scanner"), or None (numpy).
        path: the file (or DICOM folder) it was read from.
        zooms: voxel size in mm along the three axes.
        scaled: the file stores integers with a scaling (NIfTI scl_slope/scl_inter other than
            1/0), so ``data`` holds non-integer values in other units than the stored ones.
    """

    data: np.ndarray
    affine: np.ndarray = field(default_factory=lambda: np.eye(4))
    header: Any = None
    path: str = ""
    zooms: tuple[float, float, float] = (1.0, 1.0, 1.0)
    scaled: bool = False

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)


# --------------------------------------------------------------------------------------------
# checks


def check_array(a: np.ndarray, path: str | Path, what: str = "volume") -> None:
    """InputDataError naming ``path`` unless the image ``a`` (a "volume" or a "slice": ``what``)
    has no zero-size axis, only finite values, and is not constant."""
    if a.size == 0 or 0 in a.shape:
        raise InputDataError(
            path, f"{what} has a zero-size axis (shape {a.shape}); the file holds no image data"
        )
    finite = np.isfinite(a)
    if not finite.all():
        bad = int(a.size - np.count_nonzero(finite))
        raise InputDataError(
            path,
            f"{what} contains {bad} NaN/Inf voxel(s) out of {a.size}; replace "
            "them (e.g. np.nan_to_num) or fix the file before use",
        )
    lo, hi = float(a.min()), float(a.max())
    if lo == hi:
        raise InputDataError(
            path,
            f"{what} is a constant image (every voxel = {lo:g}): it holds "
            "no structure to train on or super-resolve and cannot be "
            "normalised; check the file",
        )


def volume_array(a: np.ndarray, path: str | Path) -> np.ndarray:
    """``a`` as a checked 3D volume: trailing singleton axes beyond 3 dropped; InputDataError
    naming ``path`` for real 4D/5D data, fewer than 3 axes, a zero-size or 1-voxel-thick axis,
    and whatever :func:`check_array` refuses."""
    while a.ndim > 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim > 3:
        raise InputDataError(
            path,
            f"{a.ndim}D image of shape {a.shape} holds {int(np.prod(a.shape[3:]))} "
            "volumes (time points / diffusion directions); extract one 3D "
            "volume first (e.g. nibabel: img.slicer[..., 0])",
        )
    if a.ndim < 3:
        raise InputDataError(
            path,
            f"image of shape {a.shape} is {a.ndim}D, not a 3D volume; for a "
            "single 2D slice use SuperResolver.predict_slice (or "
            "load_slice() to read it)",
        )
    if 0 in a.shape:
        raise InputDataError(
            path, f"volume has a zero-size axis (shape {a.shape}); the file holds no image data"
        )
    if 1 in a.shape:
        raise InputDataError(
            path,
            f"volume has a 1-voxel-thick axis (shape {a.shape}): it is a "
            "single slice, not a volume; use SuperResolver.predict_slice "
            "(or load_slice() to read it)",
        )
    check_array(a, path)
    return a


# --------------------------------------------------------------------------------------------
# NIfTI


_READ_ERRORS = (
    OSError,
    EOFError,
    ValueError,
    zlib.error,
    gzip.BadGzipFile,
    MemoryError,
    TypeError,
    IndexError,
    KeyError,
)


def _read_nifti_array(path: Path) -> tuple[np.ndarray, Any]:
    """(array, nibabel image) of a NIfTI file; any read failure -> InputDataError."""
    import nibabel as nib
    from nibabel.filebasedimages import ImageFileError
    from nibabel.spatialimages import HeaderDataError

    try:
        img = nib.load(str(path), mmap=False)
    except (ImageFileError, HeaderDataError, *_READ_ERRORS) as e:
        raise InputDataError(
            path,
            f"cannot read as NIfTI ({type(e).__name__}: {e}); the file is "
            "not a NIfTI image or is corrupt",
        ) from None
    header_shape = tuple(int(d) for d in img.header.get_data_shape())
    if 0 in header_shape or not header_shape:
        raise InputDataError(
            path,
            f"the header declares a zero-size axis (shape {header_shape}); "
            "the file holds no image data",
        )
    dtype = img.get_data_dtype()
    if dtype.fields is not None or np.issubdtype(dtype, np.complexfloating):
        raise InputDataError(
            path,
            f"NIfTI holds {dtype} voxels (complex or RGB), not real-valued "
            "intensities; convert it to a magnitude/greyscale image first",
        )
    try:
        # dataobj applies scl_slope/inter; float32 keeps memory at 4 bytes per voxel. Values
        # beyond float32 become inf in the cast: silenced here, reported below by name.
        with warnings.catch_warnings(), np.errstate(over="ignore", invalid="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            a = np.asarray(img.dataobj, dtype=np.float32)
    except (*_READ_ERRORS, ImageFileError, HeaderDataError) as e:
        raise InputDataError(
            path,
            f"NIfTI data cannot be read ({type(e).__name__}: {e}); the file is "
            "truncated or corrupt (an interrupted download or copy?): "
            "re-download or re-export it",
        ) from None
    if not np.isfinite(a).all():
        _check_float32_range(img, a, path)
    return a, img


def _check_float32_range(img: Any, a: np.ndarray, path: Path) -> None:
    """InputDataError when finite stored (or scaled) values became inf in the float32 cast.

    Runs only when the float32 array holds NaN/Inf: the data are re-read at full precision to
    tell an overflow (a float64 file or a large scl_slope) from NaN/Inf stored in the file.
    """
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        full = np.asarray(img.dataobj, dtype=np.float64)
    over = np.isfinite(full) & ~np.isfinite(a)
    n = int(np.count_nonzero(over))
    if n:
        peak = float(np.max(np.abs(full[over])))
        raise InputDataError(
            path,
            f"{n} voxel value(s) beyond the float32 range (largest "
            f"magnitude {peak:.3g} > {float(np.finfo(np.float32).max):.3g}); "
            "rescale the intensities (e.g. divide by a power of 10) and "
            "save the file again",
        )


def has_scaling(img: Any) -> bool:
    """Whether a nibabel image's stored values are scaled (slope != 1 or intercept != 0).

    A loaded image keeps its scaling on ``img.dataobj`` (the header's copy reads None/NaN after
    loading); an image made in memory has it in the header, if anywhere.
    """
    proxy = getattr(img, "dataobj", None)
    slope, inter = getattr(proxy, "slope", None), getattr(proxy, "inter", None)
    if slope is None and hasattr(getattr(img, "header", None), "get_slope_inter"):
        slope, inter = img.header.get_slope_inter()
    slope = 1.0 if slope is None or not np.isfinite(slope) else float(slope)
    inter = 0.0 if inter is None or not np.isfinite(inter) else float(inter)
    return slope != 1.0 or inter != 0.0


def load_volume(path: str | Path) -> Volume:
    """Read a 3D MR volume: NIfTI (.nii, .nii.gz), a 3D .npy array (identity affine, 1 mm
    voxels), a folder holding one DICOM series, or a multi-frame DICOM file
    (:func:`load_dicom_series`).

    A 4D NIfTI whose last axis has length 1 is squeezed to 3D. Raises InputDataError (naming the file)
    for: a missing file, a file that is not NIfTI, a truncated/corrupt file, 4D data holding more than
    one volume, a 1-voxel-thick or zero-size axis, NaN/Inf voxels, values beyond the float32 range,
    a constant image, a temporary file of an unfinished write; for another format it says what
    to do instead (:func:`format_advice`: a PNG is a slice, MHA needs converting, ...).
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise InputDataError(p, "file does not exist; check the path")
    check_not_temporary(p)
    if p.is_dir() or (not is_nifti(p) and looks_like_dicom(p)):
        return load_dicom_series(p)
    if p.suffix.lower() == ".npy":
        a = volume_array(_load_npy(p), p)
        return Volume(a, np.eye(4), None, str(p), (1.0, 1.0, 1.0))
    if not is_nifti(p):
        raise InputDataError(p, format_advice(p, want="volume"))
    a, img = _read_nifti_array(p)
    a = volume_array(a, p)
    zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
    if not np.all(np.isfinite(zooms)):
        raise InputDataError(
            p,
            f"the header's voxel sizes (pixdim) {zooms} are not finite; fix "
            "the header (e.g. nibabel: img.header.set_zooms(...))",
        )
    return Volume(
        np.ascontiguousarray(a, dtype=np.float32),
        np.asarray(img.affine, dtype=np.float64),
        img.header,
        str(p),
        zooms,
        has_scaling(img),
    )  # type: ignore[arg-type]


#: Formats nibabel reads (suffix -> name): a converted NIfTI keeps their geometry.
_NIBABEL_FORMATS = {
    ".mgz": "FreeSurfer MGH",
    ".mgh": "FreeSurfer MGH",
    ".mnc": "MINC",
    ".hdr": "Analyze/NIfTI pair",
    ".img": "Analyze/NIfTI pair",
    ".par": "Philips PAR/REC",
    ".rec": "Philips PAR/REC",
}
#: Formats SimpleITK (ITK) reads.
_ITK_FORMATS = {".mha": "MetaImage", ".mhd": "MetaImage", ".nrrd": "NRRD", ".nhdr": "NRRD"}


def format_advice(path: str | Path, want: str = "volume") -> str:
    """Why ``path`` (not NIfTI, DICOM or .npy) cannot be read as a ``want`` ("volume" or
    "slice"), and what to do, by its suffix: a 2D picture (PNG, TIFF, JPEG, BMP) is one slice
    (:func:`load_slice`, ``SuperResolver.predict_slice``); MetaImage/NRRD convert with SimpleITK;
    MGH/MINC/Analyze/PAR convert with nibabel (or pass ``nib.load(path)`` to predict_volume)."""
    p = Path(path)
    suf = p.suffix.lower()
    suffix = "".join(p.suffixes[-2:]) or "none"
    if want == "volume" and suf in SLICE_SUFFIXES and suf not in (".npy", ".dcm"):
        kind = suf.lstrip(".").upper()
        return (
            f"is a 2D {kind} image, not a 3D volume: read it with load_slice() and "
            "super-resolve it with SuperResolver.predict_slice (the command line takes "
            "NIfTI volumes and DICOM series)"
        )
    convert = "save it as NIfTI (.nii.gz)"
    if suf in _ITK_FORMATS:
        return (
            f"{_ITK_FORMATS[suf]} ({suf}) is not read here; {convert}, e.g. with SimpleITK: "
            f"sitk.WriteImage(sitk.ReadImage('{p.name}'), 'out.nii.gz')"
        )
    if suf in _NIBABEL_FORMATS:
        use = " or pass nib.load(path) to SuperResolver.predict_volume" if want == "volume" else ""
        return (
            f"{_NIBABEL_FORMATS[suf]} ({suf}) is not read here; {convert} with nibabel: "
            f"nib.save(nib.load('{p.name}'), 'out.nii.gz'){use}"
        )
    if want == "slice":
        return (
            f"unsupported slice file type (suffix {suffix}); use PNG, TIFF, JPEG, NPY, one "
            "DICOM image or a single-slice NIfTI"
        )
    return (
        f"not a NIfTI file (suffix {suffix}; expected .nii or .nii.gz, a folder holding one "
        "DICOM series, a multi-frame DICOM file or a 3D .npy array); save it as NIfTI "
        "first"
    )


# --------------------------------------------------------------------------------------------
# DICOM


def load_dicom_series(path: str | Path) -> Volume:
    """A DICOM volume as a :class:`Volume`: ``path`` is a folder holding one series of 2D
    images, or one multi-frame (enhanced) file; sorted along the slice normal, with the scanner
    geometry as a RAS+ affine and a NIfTI header (sform/qform code "scanner"), so a result
    written as NIfTI lies where the scan was. Layout (rows, columns, slices); what is refused:
    :mod:`keras_seran.data.io.dicom`."""
    import nibabel as nib

    p = Path(path).expanduser()
    dv = load_dicom_volume(p)
    a = volume_array(dv.data, p)
    header = nib.Nifti1Header()
    header.set_data_shape(a.shape)
    stored = dv.stored_dtype
    header.set_data_dtype(
        stored
        if np.issubdtype(stored, np.integer) and not dv.scaled and stored.itemsize <= 4
        else np.float32
    )
    header.set_sform(dv.affine, code="scanner")
    m = dv.affine[:3, :3] / np.asarray(dv.zooms)
    rigid = np.allclose(m.T @ m, np.eye(3), atol=1e-4)  # no shear (gantry tilt)
    header.set_qform(dv.affine if rigid else None, code="scanner" if rigid else "unknown")
    header.set_zooms(dv.zooms)
    header.set_xyzt_units("mm")
    return Volume(
        np.ascontiguousarray(a, dtype=np.float32), dv.affine, header, str(p), dv.zooms, dv.scaled
    )


# --------------------------------------------------------------------------------------------
# 2D slices


def _load_npy(p: Path) -> np.ndarray:
    try:
        a = np.load(p, allow_pickle=False)
    except (*_READ_ERRORS,) as e:
        raise InputDataError(
            p, f"cannot read as a numpy .npy array ({type(e).__name__}: {e})"
        ) from None
    if not isinstance(a, np.ndarray) or not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a):
        raise InputDataError(
            p, f"npy file holds {getattr(a, 'dtype', type(a))}, not a real-valued image"
        )
    return a.astype(np.float32)


def _load_pil(p: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(p) as im:
            im.load()
            mode = im.mode
            if mode in ("RGB", "RGBA", "P", "PA", "LA", "CMYK", "YCbCr"):
                rgb = np.asarray(im.convert("RGB"), dtype=np.float32)
                if not (
                    np.array_equal(rgb[..., 0], rgb[..., 1])
                    and np.array_equal(rgb[..., 0], rgb[..., 2])
                ):
                    warnings.warn(
                        f"{p}: colour ({mode}) image converted to greyscale (MR slices "
                        "are one channel)",
                        stacklevel=3,
                    )
                    return np.asarray(im.convert("L"), dtype=np.float32)
                return np.ascontiguousarray(rgb[..., 0])  # grey stored as RGB/palette: exact
            return np.asarray(im, dtype=np.float32)
    except (UnidentifiedImageError, *_READ_ERRORS) as e:
        raise InputDataError(
            p,
            f"cannot read as an image ({type(e).__name__}: {e}); the file is not "
            "a PNG/TIFF/JPEG or is corrupt",
        ) from None


def load_slice(path: str | Path) -> np.ndarray:
    """Read one 2D MR slice as float32 (H, W): PNG/TIFF/JPEG (grey), .npy, one DICOM image
    (rows, columns; RescaleSlope/Intercept applied), or a NIfTI with a single slice (one axis of
    length 1).

    Raises InputDataError naming the file for a missing/unreadable file, a non-2D array,
    NaN/Inf pixels or a constant image; a multi-frame DICOM (a volume) or a Siemens mosaic is
    refused with what to use instead.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise InputDataError(p, "file does not exist; check the path")
    if p.is_dir():
        raise InputDataError(
            p, "is a folder, not a 2D image file; use load_volume() for a DICOM series"
        )
    check_not_temporary(p)
    suf = p.suffix.lower()
    if suf == ".npy":
        a = _load_npy(p)
    elif is_nifti(p):
        a, _ = _read_nifti_array(p)
    elif looks_like_dicom(p):
        a = load_dicom_slice(p)
    elif suf in SLICE_SUFFIXES:
        a = _load_pil(p)
    else:
        raise InputDataError(p, format_advice(p, want="slice"))
    if a.ndim > 2:
        a = np.squeeze(a)
    if a.ndim != 2:
        raise InputDataError(
            p,
            f"expected a 2D slice, got an array of shape {a.shape}; use load_volume() for 3D data",
        )
    check_array(a, p, what="slice")
    return np.ascontiguousarray(a, dtype=np.float32)


def load_any(path: str | Path) -> np.ndarray:
    """A 3D volume or a 2D slice as float32 array, chosen by file type (NIfTI/DICOM folder/
    multi-frame DICOM -> 3D, PNG/single-frame DICOM -> 2D, .npy/single-slice NIfTI -> by its
    shape)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise InputDataError(p, "file does not exist; check the path")
    if p.is_dir():
        return load_volume(p).data
    if not is_nifti(p) and looks_like_dicom(p):
        many = frame_count(read_dicom(p, pixels=False)) > 1
        return load_volume(p).data if many else load_slice(p)
    if p.suffix.lower() == ".npy":
        a = _load_npy(p)
        return load_volume(p).data if np.squeeze(a).ndim == 3 else load_slice(p)
    if is_nifti(p):
        try:
            return load_volume(p).data
        except InputDataError as e:
            if "1-voxel-thick" in e.problem or "not a 3D volume" in e.problem:
                return load_slice(p)
            raise
    return load_slice(p)
