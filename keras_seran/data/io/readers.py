"""Reading MR images into numpy: NIfTI volumes, DICOM series, 2D slices (PNG/TIFF/JPEG, NPY,
DICOM), each checked (:func:`volume_array`, :func:`check_array`) before it is returned.

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

from keras_seran.data.io.discovery import SLICE_SUFFIXES, is_hidden, is_nifti, looks_like_dicom
from keras_seran.errors import InputDataError


@dataclass
class Volume:
    """A 3D MR volume in memory.

    Attributes:
        data: float32 array (X, Y, Z), in the file's intensity units (NIfTI scaling applied).
        affine: (4, 4) voxel-to-world matrix (identity when the source has none).
        header: the nibabel header (NIfTI) or None (DICOM, numpy).
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
        raise InputDataError(path, f"{what} has a zero-size axis (shape {a.shape}); the file holds "
                                   "no image data")
    finite = np.isfinite(a)
    if not finite.all():
        bad = int(a.size - np.count_nonzero(finite))
        raise InputDataError(path, f"{what} contains {bad} NaN/Inf voxel(s) out of {a.size}; replace "
                                   "them (e.g. np.nan_to_num) or fix the file before use")
    lo, hi = float(a.min()), float(a.max())
    if lo == hi:
        raise InputDataError(path, f"{what} is a constant image (every voxel = {lo:g}): it holds "
                                   "no structure to train on or super-resolve and cannot be "
                                   "normalised; check the file")


def volume_array(a: np.ndarray, path: str | Path) -> np.ndarray:
    """``a`` as a checked 3D volume: trailing singleton axes beyond 3 dropped; InputDataError
    naming ``path`` for real 4D/5D data, fewer than 3 axes, a zero-size or 1-voxel-thick axis,
    and whatever :func:`check_array` refuses."""
    while a.ndim > 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim > 3:
        raise InputDataError(path, f"{a.ndim}D image of shape {a.shape} holds {int(np.prod(a.shape[3:]))} "
                                   "volumes (time points / diffusion directions); extract one 3D "
                                   "volume first (e.g. nibabel: img.slicer[..., 0])")
    if a.ndim < 3:
        raise InputDataError(path, f"image of shape {a.shape} is {a.ndim}D, not a 3D volume; for a "
                                   "single 2D slice use SuperResolver.predict_slice (or "
                                   "load_slice() to read it)")
    if 0 in a.shape:
        raise InputDataError(path, f"volume has a zero-size axis (shape {a.shape}); the file holds "
                                   "no image data")
    if 1 in a.shape:
        raise InputDataError(path, f"volume has a 1-voxel-thick axis (shape {a.shape}): it is a "
                                   "single slice, not a volume; use SuperResolver.predict_slice "
                                   "(or load_slice() to read it)")
    check_array(a, path)
    return a


# --------------------------------------------------------------------------------------------
# NIfTI


_READ_ERRORS = (OSError, EOFError, ValueError, zlib.error, gzip.BadGzipFile, MemoryError,
                TypeError, IndexError, KeyError)


def _read_nifti_array(path: Path) -> tuple[np.ndarray, Any]:
    """(array, nibabel image) of a NIfTI file; any read failure -> InputDataError."""
    import nibabel as nib
    from nibabel.filebasedimages import ImageFileError
    from nibabel.spatialimages import HeaderDataError

    try:
        img = nib.load(str(path), mmap=False)
    except (ImageFileError, HeaderDataError, *_READ_ERRORS) as e:
        raise InputDataError(path, f"cannot read as NIfTI ({type(e).__name__}: {e}); the file is "
                                   "not a NIfTI image or is corrupt") from None
    header_shape = tuple(int(d) for d in img.header.get_data_shape())
    if 0 in header_shape or not header_shape:
        raise InputDataError(path, f"the header declares a zero-size axis (shape {header_shape}); "
                                   "the file holds no image data")
    dtype = img.get_data_dtype()
    if dtype.fields is not None or np.issubdtype(dtype, np.complexfloating):
        raise InputDataError(path, f"NIfTI holds {dtype} voxels (complex or RGB), not real-valued "
                                   "intensities; convert it to a magnitude/greyscale image first")
    try:
        # dataobj applies scl_slope/inter; float32 keeps memory at 4 bytes per voxel. Values
        # beyond float32 become inf in the cast: silenced here, reported below by name.
        with warnings.catch_warnings(), np.errstate(over="ignore", invalid="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            a = np.asarray(img.dataobj, dtype=np.float32)
    except (*_READ_ERRORS, ImageFileError, HeaderDataError) as e:
        raise InputDataError(path, f"NIfTI data cannot be read ({type(e).__name__}: {e}); the file is "
                                   "truncated or corrupt (an interrupted download or copy?): "
                                   "re-download or re-export it") from None
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
        raise InputDataError(path, f"{n} voxel value(s) beyond the float32 range (largest "
                                   f"magnitude {peak:.3g} > {float(np.finfo(np.float32).max):.3g}); "
                                   "rescale the intensities (e.g. divide by a power of 10) and "
                                   "save the file again")


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
    """Read a 3D MR volume: NIfTI (.nii, .nii.gz), a 3D .npy array, or a folder of one DICOM series.

    A 4D NIfTI whose last axis has length 1 is squeezed to 3D. Raises InputDataError (naming the file)
    for: a missing file, a file that is not NIfTI, a truncated/corrupt file, 4D data holding more than
    one volume, a 1-voxel-thick or zero-size axis, NaN/Inf voxels, values beyond the float32 range,
    a constant image.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise InputDataError(p, "file does not exist; check the path")
    if p.is_dir():
        return load_dicom_series(p)
    if p.suffix.lower() == ".npy":
        a = volume_array(_load_npy(p), p)
        return Volume(a, np.eye(4), None, str(p), (1.0, 1.0, 1.0))
    if not is_nifti(p):
        raise InputDataError(p, f"not a NIfTI file (suffix {''.join(p.suffixes) or 'none'}; expected "
                                ".nii or .nii.gz); convert it (e.g. dcm2niix) or use load_slice() for "
                                "2D images")
    a, img = _read_nifti_array(p)
    a = volume_array(a, p)
    zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
    if not np.all(np.isfinite(zooms)):
        raise InputDataError(p, f"the header's voxel sizes (pixdim) {zooms} are not finite; fix "
                                "the header (e.g. nibabel: img.header.set_zooms(...))")
    return Volume(np.ascontiguousarray(a, dtype=np.float32), np.asarray(img.affine, dtype=np.float64),
                  img.header, str(p), zooms, has_scaling(img))  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# DICOM


def _dicom_pixels(ds: Any, path: Path) -> np.ndarray:
    try:
        a = ds.pixel_array.astype(np.float32)
    except Exception as e:  # pydicom raises many kinds (missing handler, bad length, ...)
        raise InputDataError(path, f"DICOM pixel data cannot be decoded ({type(e).__name__}: {e}); "
                                   "install the decoder it needs (e.g. pylibjpeg) or re-export "
                                   "uncompressed") from None
    slope = float(getattr(ds, "RescaleSlope", 1) or 1)
    inter = float(getattr(ds, "RescaleIntercept", 0) or 0)
    return a * slope + inter


def _read_dicom(path: Path) -> Any:
    try:
        import pydicom
    except ImportError:
        raise InputDataError(path, "reading DICOM needs pydicom: pip install pydicom") from None
    try:
        return pydicom.dcmread(str(path))
    except Exception as e:
        raise InputDataError(path, f"cannot read as DICOM ({type(e).__name__}: {e})") from None


def load_dicom_series(folder: str | Path) -> Volume:
    """Stack the 2D DICOM files of one folder into a volume (X=rows, Y=cols, Z=slices).

    Slices are ordered by their position along the slice normal (ImagePositionPatient ·
    normal of ImageOrientationPatient), else by InstanceNumber. The affine is left as identity
    scaled by the voxel size (use dcm2niix for a fully oriented NIfTI).
    """
    folder = Path(folder)
    files = sorted(q for q in folder.iterdir()
                   if q.is_file() and not is_hidden(q, folder) and looks_like_dicom(q))
    if not files:
        raise InputDataError(folder, "folder holds no DICOM file (*.dcm or files with a DICM "
                                     "preamble)")
    items = []
    for f in files:
        ds = _read_dicom(f)
        if "PixelData" not in ds:
            continue
        key: float
        try:
            iop = np.asarray(ds.ImageOrientationPatient, dtype=np.float64)
            ipp = np.asarray(ds.ImagePositionPatient, dtype=np.float64)
            key = float(np.dot(np.cross(iop[:3], iop[3:]), ipp))
        except (AttributeError, ValueError, TypeError):
            key = float(getattr(ds, "InstanceNumber", len(items)) or len(items))
        items.append((key, f, ds))
    if not items:
        raise InputDataError(folder, "no DICOM file in the folder holds pixel data")
    items.sort(key=lambda t: t[0])
    arrays = [_dicom_pixels(ds, f) for _, f, ds in items]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1 or arrays[0].ndim != 2:
        raise InputDataError(folder, f"DICOM files have different or non-2D shapes {sorted(shapes)}; "
                                     "the folder must hold one series of 2D slices")
    a = np.stack(arrays, axis=-1)
    ds0 = items[0][2]
    try:
        dr, dc = (float(v) for v in ds0.PixelSpacing)
    except (AttributeError, ValueError, TypeError):
        dr = dc = 1.0
    dz = float(np.median(np.diff([k for k, _, _ in items]))) if len(items) > 1 else 1.0
    dz = abs(dz) or float(getattr(ds0, "SliceThickness", 1.0) or 1.0)
    a = volume_array(a, folder)
    return Volume(a.astype(np.float32), np.diag([dr, dc, dz, 1.0]), None, str(folder), (dr, dc, dz))


# --------------------------------------------------------------------------------------------
# 2D slices


def _load_npy(p: Path) -> np.ndarray:
    try:
        a = np.load(p, allow_pickle=False)
    except (*_READ_ERRORS,) as e:
        raise InputDataError(p, f"cannot read as a numpy .npy array ({type(e).__name__}: {e})") from None
    if not isinstance(a, np.ndarray) or not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a):
        raise InputDataError(p, f"npy file holds {getattr(a, 'dtype', type(a))}, not a real-valued image")
    return a.astype(np.float32)


def _load_pil(p: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(p) as im:
            im.load()
            mode = im.mode
            if mode in ("RGB", "RGBA", "P", "PA", "LA", "CMYK", "YCbCr"):
                rgb = np.asarray(im.convert("RGB"), dtype=np.float32)
                if not (np.array_equal(rgb[..., 0], rgb[..., 1])
                        and np.array_equal(rgb[..., 0], rgb[..., 2])):
                    warnings.warn(f"{p}: colour ({mode}) image converted to greyscale (MR slices "
                                  "are one channel)", stacklevel=3)
                    return np.asarray(im.convert("L"), dtype=np.float32)
                return np.ascontiguousarray(rgb[..., 0])   # grey stored as RGB/palette: exact
            return np.asarray(im, dtype=np.float32)
    except (UnidentifiedImageError, *_READ_ERRORS) as e:
        raise InputDataError(p, f"cannot read as an image ({type(e).__name__}: {e}); the file is not "
                                "a PNG/TIFF/JPEG or is corrupt") from None


def load_slice(path: str | Path) -> np.ndarray:
    """Read one 2D MR slice as float32 (H, W): PNG/TIFF/JPEG (grey), .npy, a DICOM file, or a NIfTI
    with a single slice (one axis of length 1).

    Raises InputDataError naming the file for a missing/unreadable file, a non-2D array,
    NaN/Inf pixels or a constant image.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise InputDataError(p, "file does not exist; check the path")
    if p.is_dir():
        raise InputDataError(p, "is a folder, not a 2D image file; use load_volume() for a DICOM series")
    suf = p.suffix.lower()
    if suf == ".npy":
        a = _load_npy(p)
    elif is_nifti(p):
        a, _ = _read_nifti_array(p)
    elif suf in (".dcm", ".ima") or looks_like_dicom(p):
        a = _dicom_pixels(_read_dicom(p), p)
    elif suf in SLICE_SUFFIXES:
        a = _load_pil(p)
    else:
        raise InputDataError(p, f"unsupported slice file type {suf or '(no suffix)'}; use PNG, NPY, "
                                "DICOM or a single-slice NIfTI")
    if a.ndim > 2:
        a = np.squeeze(a)
    if a.ndim != 2:
        raise InputDataError(p, f"expected a 2D slice, got an array of shape {a.shape}; use "
                                "load_volume() for 3D data")
    check_array(a, p, what="slice")
    return np.ascontiguousarray(a, dtype=np.float32)


def load_any(path: str | Path) -> np.ndarray:
    """A 3D volume or a 2D slice as float32 array, chosen by file type (NIfTI/DICOM folder -> 3D,
    PNG/DICOM file -> 2D, .npy/single-slice NIfTI -> by its shape)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise InputDataError(p, "file does not exist; check the path")
    if p.is_dir():
        return load_volume(p).data
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
