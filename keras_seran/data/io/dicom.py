"""DICOM MR images with their scanner geometry (pydicom): one 2D image, a folder holding one
series of 2D images, or one multi-frame (enhanced) file.

Layout and world, as nibabel's DICOM wrappers and NIfTI: a volume is (rows, columns, slices),
its slices sorted along the slice normal, and its affine maps voxel indices to NIfTI's RAS+
world (DICOM's LPS patient coordinates with x and y negated)::

    A = diag(-1, -1, 1, 1) @ [[dr * u_r,  dc * u_c,  step,  p_0],
                              [0,         0,         0,     1  ]]

with ``u_c`` = ImageOrientationPatient[:3] (along a row: increasing column index), ``u_r`` =
ImageOrientationPatient[3:] (increasing row index), ``(dr, dc)`` = PixelSpacing, ``p_0`` the
ImagePositionPatient of the first slice and ``step`` the mean move from one slice's position
to the next (a gantry tilt stays in it). Voxel sizes: (dr, dc, |step|).

Refused, each with a one-line reason and what to do (:class:`~keras_seran.errors.InputDataError`):
Siemens mosaics (many slices tiled into one image: dcm2niix unpacks them), a folder holding
several series, several images at one position (echoes, time points, diffusion directions),
unevenly spaced slices (a missing slice), several orientations or image sizes, images without
geometry, multi-frame files without per-frame positions, colour images, non-image objects
(segmentations, RT, reports). Nothing here imports TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from keras_seran.data.io.discovery import looks_like_dicom
from keras_seran.errors import InputDataError
from keras_seran.files import is_temporary

#: How far (mm) slice positions may stray from an even spacing: this, or 5 % of the spacing.
POSITION_TOL_MM = 0.01
#: DICOM modalities that are not images to super-resolve.
NON_IMAGE_MODALITIES = (
    "SEG",
    "RTSTRUCT",
    "RTPLAN",
    "RTDOSE",
    "RTRECORD",
    "SR",
    "PR",
    "KO",
    "REG",
    "DOC",
    "ECG",
)
_CONVERT = "convert the series with dcm2niix (dcm2niix -z y -o OUT FOLDER) and use the NIfTI"
#: Siemens private tag (0019,100A) NumberOfImagesInMosaic.
_MOSAIC_TAG = (0x0019, 0x100A)


# --------------------------------------------------------------------------------------------
# files


def dicom_files(folder: Path) -> list[Path]:
    """The DICOM files directly in ``folder`` (hidden files and temporary files left out)."""
    return sorted(
        q
        for q in folder.iterdir()
        if q.is_file()
        and not q.name.startswith(".")
        and not is_temporary(q)
        and looks_like_dicom(q)
    )


def read_dicom(path: Path, pixels: bool = True) -> Any:
    """The pydicom dataset of ``path`` (pixel data read lazily; none with ``pixels=False``);
    InputDataError when pydicom is missing or the file is not DICOM."""
    try:
        import pydicom
    except ImportError:
        raise InputDataError(path, "reading DICOM needs pydicom: pip install pydicom") from None
    try:
        return pydicom.dcmread(str(path), stop_before_pixels=not pixels)
    except Exception as e:  # noqa: BLE001 - pydicom raises many kinds (InvalidDicomError, ...)
        raise InputDataError(path, f"cannot read as DICOM ({type(e).__name__}: {e})") from None


def frame_count(ds: Any) -> int:
    """Frames in a dataset (NumberOfFrames; 1 when absent)."""
    try:
        return max(1, int(ds.get("NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        return 1


def is_mosaic(ds: Any) -> bool:
    """Whether a dataset is a Siemens mosaic (ImageType MOSAIC or NumberOfImagesInMosaic)."""
    image_type = [str(v).upper() for v in (ds.get("ImageType") or [])]
    return "MOSAIC" in image_type or _MOSAIC_TAG in ds


def check_image(ds: Any, path: Path) -> None:
    """InputDataError unless ``ds`` is a greyscale image this package can use as it is."""
    modality = str(ds.get("Modality", "") or "").upper()
    if modality in NON_IMAGE_MODALITIES:
        raise InputDataError(
            path,
            f"holds a DICOM {modality} object (not an image to "
            "super-resolve); use the MR images of the study",
        )
    if "Rows" not in ds or "Columns" not in ds:
        raise InputDataError(
            path,
            "DICOM file holds no image (no Rows/Columns: a DICOMDIR, "
            "report or other non-image object)",
        )
    if int(ds.get("SamplesPerPixel", 1) or 1) != 1:
        raise InputDataError(
            path,
            f"DICOM holds a colour image ({ds.get('PhotometricInterpretation')}, "
            f"{ds.get('SamplesPerPixel')} samples per pixel); MR images "
            "are greyscale: export the greyscale series",
        )
    if is_mosaic(ds):
        n = ds.get(_MOSAIC_TAG)
        many = f"{int(n.value)} slices" if n is not None and str(n.value).isdigit() else "slices"
        raise InputDataError(
            path,
            f"is a Siemens mosaic ({many} of one volume tiled into one "
            f"{ds.get('Rows')}x{ds.get('Columns')} image, not a slice); "
            f"{_CONVERT}",
        )


def _pixels(ds: Any, path: Path) -> np.ndarray:
    """The stored pixel values as float32: (rows, cols) or (frames, rows, cols)."""
    try:
        a = np.asarray(ds.pixel_array)
    except Exception as e:  # noqa: BLE001 - pydicom raises many kinds (no handler, bad length)
        raise InputDataError(
            path,
            f"DICOM pixel data cannot be decoded ({type(e).__name__}: "
            f"{e}); install the decoder it needs (e.g. pylibjpeg) or "
            "re-export it uncompressed",
        ) from None
    return a.astype(np.float32)


def _float(value: Any, default: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return default
    return v if np.isfinite(v) else default


# --------------------------------------------------------------------------------------------
# one 2D image


def load_dicom_slice(path: str | Path) -> np.ndarray:
    """One 2D DICOM image as float32 (rows, columns), RescaleSlope/Intercept applied.

    InputDataError for a multi-frame file holding more than one frame (a volume:
    :func:`load_dicom_volume`), a mosaic, a colour or non-image object.
    """
    p = Path(path).expanduser()
    ds = read_dicom(p)
    check_image(ds, p)
    n = frame_count(ds)
    if n > 1:
        raise InputDataError(
            p,
            f"multi-frame DICOM holding {n} frames: a 3D volume, not one "
            "slice; read it with load_volume() (SuperResolver.predict_volume "
            "and keras-seran predict take the file as it is)",
        )
    a = _pixels(ds, p).reshape(int(ds.Rows), int(ds.Columns))
    slope, inter = _rescale(ds, None)
    return a * slope + inter


def _rescale(ds: Any, frame_groups: Any) -> tuple[float, float]:
    """(slope, intercept) of a frame: its PixelValueTransformation, else the dataset's."""
    slope = _float(ds.get("RescaleSlope", 1), 1.0) or 1.0
    inter = _float(ds.get("RescaleIntercept", 0), 0.0)
    if frame_groups is not None:
        s = _group_value(frame_groups, "PixelValueTransformationSequence", "RescaleSlope")
        i = _group_value(frame_groups, "PixelValueTransformationSequence", "RescaleIntercept")
        slope = _float(s, slope) if s is not None else slope
        inter = _float(i, inter) if i is not None else inter
    return slope or 1.0, inter


# --------------------------------------------------------------------------------------------
# volumes


@dataclass
class DicomVolume:
    """A volume read from DICOM: data (rows, columns, slices) float32 in the files' units
    (rescaling applied), its RAS+ affine, voxel sizes (mm), the stored dtype and whether a
    rescaling other than 1/0 was applied."""

    data: np.ndarray
    affine: np.ndarray
    zooms: tuple[float, float, float]
    stored_dtype: np.dtype
    scaled: bool


@dataclass
class _Frame:
    """One 2D image of a volume: its geometry and how to get its pixels (in stored units)."""

    position: np.ndarray  # ImagePositionPatient (3,), LPS mm
    orientation: np.ndarray  # ImageOrientationPatient (6,)
    spacing: np.ndarray  # PixelSpacing (2,): between rows, between columns
    shape: tuple[int, int]
    pixels: Callable[[], np.ndarray]
    slope: float
    inter: float
    source: str  # for messages: the file (and frame)


def load_dicom_volume(path: str | Path) -> DicomVolume:
    """A 3D volume from a folder holding one DICOM series, or from one multi-frame file.

    See the module docstring for the layout, the affine and what is refused. A single-frame
    file on its own is one slice: InputDataError pointing to its folder and to load_slice().
    """
    p = Path(path).expanduser()
    if p.is_dir():
        frames, dtype = _series_frames(p)
    else:
        ds = read_dicom(p)
        check_image(ds, p)
        if frame_count(ds) == 1:
            raise InputDataError(
                p,
                "is one 2D DICOM image, not a volume: pass the folder "
                "holding its whole series (one series per folder), or "
                "read this slice with load_slice() / "
                "SuperResolver.predict_slice",
            )
        frames, dtype = _multiframe_frames(ds, p), np.dtype(ds.pixel_array.dtype)
    return _stack(frames, p, dtype)


def _series_frames(folder: Path) -> tuple[list[_Frame], np.dtype]:
    files = dicom_files(folder)
    if not files:
        raise InputDataError(
            folder, "folder holds no DICOM file (*.dcm, *.ima or files with a DICM preamble)"
        )
    images = []
    for f in files:
        ds = read_dicom(f)
        if "Rows" not in ds or "PixelData" not in ds:
            continue  # DICOMDIR, reports, presentation states
        images.append((f, ds))
    if not images:
        raise InputDataError(folder, "no DICOM file in the folder holds an image")
    series: dict[str, list] = {}
    for f, ds in images:
        series.setdefault(str(ds.get("SeriesInstanceUID", "")), []).append((f, ds))
    if len(series) > 1:
        names = []
        for items in series.values():
            ds = items[0][1]
            label = " ".join(
                str(v)
                for v in (ds.get("SeriesNumber"), ds.get("SeriesDescription"))
                if v not in (None, "")
            )
            names.append(f"{label or 'unnamed'} ({len(items)} file(s))")
        raise InputDataError(
            folder,
            f"folder holds {len(series)} DICOM series ("
            f"{'; '.join(names)}); put each series in a folder of its "
            "own and pass one folder",
        )
    for f, ds in images:
        check_image(ds, f)
    multi = [f for f, ds in images if frame_count(ds) > 1]
    if multi:
        if len(images) == 1:
            f, ds = images[0]
            return _multiframe_frames(ds, f), np.dtype(ds.pixel_array.dtype)
        raise InputDataError(
            folder,
            f"folder holds {len(multi)} multi-frame DICOM file(s) among "
            f"{len(images)} images; a multi-frame file is a volume of "
            f"its own: pass that file ({multi[0].name}) instead",
        )
    frames = []
    for f, ds in images:
        try:
            position = np.asarray(ds.ImagePositionPatient, dtype=np.float64)
            orientation = np.asarray(ds.ImageOrientationPatient, dtype=np.float64)
            spacing = np.asarray(ds.PixelSpacing, dtype=np.float64)
        except (AttributeError, ValueError, TypeError):
            raise InputDataError(
                f,
                "DICOM image lacks ImagePositionPatient, "
                "ImageOrientationPatient or PixelSpacing (no scanner geometry: "
                "a secondary capture or stripped export?), so its slices "
                "cannot be placed; convert the original series with dcm2niix, "
                "or read the images one by one with load_slice()",
            ) from None
        slope, inter = _rescale(ds, None)
        frames.append(
            _Frame(
                position,
                orientation,
                spacing,
                (int(ds.Rows), int(ds.Columns)),
                lambda ds=ds, f=f: _pixels(ds, f).reshape(int(ds.Rows), int(ds.Columns)),
                slope,
                inter,
                f.name,
            )
        )
    return frames, np.dtype(images[0][1].pixel_array.dtype)


def _group_value(groups: Any, sequence: str, attr: str) -> Any:
    """``attr`` of the first item of ``sequence`` in the first of ``groups`` holding it."""
    for g in groups:
        if g is None or sequence not in g:
            continue
        seq = g[sequence].value
        if len(seq) and attr in seq[0]:
            return seq[0][attr].value
    return None


def _multiframe_frames(ds: Any, path: Path) -> list[_Frame]:
    """The frames of an enhanced multi-frame file, each with its own position
    (Per-frame / Shared Functional Groups: PlanePosition, PlaneOrientation, PixelMeasures,
    PixelValueTransformation)."""
    n = frame_count(ds)
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is None or len(per_frame) != n:
        raise InputDataError(
            path,
            f"multi-frame DICOM ({n} frames) without per-frame positions "
            "(no PerFrameFunctionalGroupsSequence): its slices cannot be "
            f"placed; {_CONVERT}",
        )
    shared_seq = ds.get("SharedFunctionalGroupsSequence")
    shared = shared_seq[0] if shared_seq is not None and len(shared_seq) else None
    rows, cols = int(ds.Rows), int(ds.Columns)
    cache: dict[str, np.ndarray] = {}

    def frame(i: int) -> np.ndarray:
        if "all" not in cache:
            cache["all"] = _pixels(ds, path).reshape(n, rows, cols)
        return cache["all"][i]

    frames = []
    for i, fg in enumerate(per_frame):
        groups = (fg, shared)
        pos = _group_value(groups, "PlanePositionSequence", "ImagePositionPatient")
        ori = _group_value(groups, "PlaneOrientationSequence", "ImageOrientationPatient")
        spc = _group_value(groups, "PixelMeasuresSequence", "PixelSpacing")
        if pos is None or ori is None or spc is None:
            raise InputDataError(
                path,
                f"multi-frame DICOM frame {i + 1} of {n} lacks its "
                "position, orientation or pixel spacing (Plane Position, "
                "Plane Orientation, Pixel Measures); its slices cannot be "
                f"placed; {_CONVERT}",
            )
        slope, inter = _rescale(ds, groups)
        frames.append(
            _Frame(
                np.asarray(pos, np.float64),
                np.asarray(ori, np.float64),
                np.asarray(spc, np.float64),
                (rows, cols),
                lambda i=i: frame(i),
                slope,
                inter,
                f"{path.name} frame {i + 1}",
            )
        )
    return frames


def _stack(frames: list[_Frame], where: Path, stored: np.dtype) -> DicomVolume:
    """Sort ``frames`` along the slice normal, check they form one evenly spaced volume, and
    stack them (rows, cols, slices) with the RAS+ affine of the module docstring."""
    first = frames[0]
    for fr in frames[1:]:
        if fr.shape != first.shape:
            raise InputDataError(
                where,
                f"DICOM images of different sizes ({first.source}: "
                f"{first.shape[0]}x{first.shape[1]}, {fr.source}: "
                f"{fr.shape[0]}x{fr.shape[1]}); the folder must hold one "
                "series of equal slices",
            )
        if not np.allclose(fr.orientation, first.orientation, atol=1e-3):
            raise InputDataError(
                where,
                f"DICOM images of different orientations ({first.source} "
                f"and {fr.source}: a localizer or several stacks?); the "
                "volume must be one stack of parallel slices; "
                f"{_CONVERT}",
            )
        if not np.allclose(fr.spacing, first.spacing, rtol=1e-3, atol=1e-4):
            raise InputDataError(
                where,
                f"DICOM images of different pixel spacings ({first.source}: "
                f"{list(first.spacing)}, {fr.source}: {list(fr.spacing)}); "
                "the folder must hold one series",
            )
    if len(frames) < 2:
        raise InputDataError(
            where,
            f"holds a single 2D DICOM image ({first.source}), not a "
            "volume; read it with load_slice() and super-resolve it with "
            "SuperResolver.predict_slice",
        )
    col_dir, row_dir = first.orientation[:3], first.orientation[3:]
    normal = np.cross(col_dir, row_dir)
    if not (
        np.isclose(np.linalg.norm(col_dir), 1, atol=1e-3)
        and np.isclose(np.linalg.norm(row_dir), 1, atol=1e-3)
        and abs(float(col_dir @ row_dir)) < 1e-3
    ):
        raise InputDataError(
            where,
            f"ImageOrientationPatient {list(first.orientation)} is not "
            f"two orthogonal unit vectors; {_CONVERT}",
        )
    depth = np.array([fr.position @ normal for fr in frames])
    order = np.argsort(depth, kind="stable")
    frames = [frames[i] for i in order]
    depth = depth[order]
    gaps = np.diff(depth)
    same = int(np.count_nonzero(gaps < POSITION_TOL_MM))
    if same:
        raise InputDataError(
            where,
            f"{len(frames)} images at only {len(frames) - same} slice "
            "position(s): the series holds several volumes (echoes, time "
            "points, diffusion directions or repeats); split them into "
            f"one volume each: {_CONVERT}",
        )
    positions = np.stack([fr.position for fr in frames])
    n = len(frames)
    step = (positions[-1] - positions[0]) / (n - 1)
    expected = positions[0] + np.arange(n)[:, None] * step
    off = np.linalg.norm(positions - expected, axis=1)
    tol = max(POSITION_TOL_MM, 0.05 * float(np.linalg.norm(step)))
    if float(off.max()) > tol:
        raise InputDataError(
            where,
            f"slice positions are not evenly spaced (gaps from "
            f"{gaps.min():.3g} to {gaps.max():.3g} mm along the slice "
            "normal): a slice is missing or the folder mixes "
            "acquisitions; pass one complete series",
        )
    dr, dc = (float(v) for v in first.spacing)
    lps = np.eye(4)
    lps[:3, 0] = row_dir * dr
    lps[:3, 1] = col_dir * dc
    lps[:3, 2] = step
    lps[:3, 3] = positions[0]
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    data = np.empty(first.shape + (n,), dtype=np.float32)
    scaled = False
    for k, fr in enumerate(frames):
        data[..., k] = fr.pixels() * fr.slope + fr.inter
        scaled |= fr.slope != 1.0 or fr.inter != 0.0
    return DicomVolume(data, affine, (dr, dc, float(np.linalg.norm(step))), stored, scaled)
