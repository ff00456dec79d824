"""Real DICOM test inputs built from the files shipped in the pydicom and nibabel wheels, with
real MR pixels (the bundled T1 slab) where a case needs more slices than a wheel holds.

- :func:`write_series`: a folder holding one single-frame MR series (headers of pydicom's
  MR_small.dcm), oblique, non-square, with rescaling, files named out of order;
- :func:`write_enhanced`: one enhanced multi-frame MR file (nibabel's Philips MPRAGE headers:
  per-frame positions, shared orientation), frames stored in reverse order;
- :func:`mosaic_folder`: nibabel's folder of two Siemens mosaic DWI images (0.dcm, 1.dcm).
"""

from __future__ import annotations

import copy
import gzip
import io
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from keras_seran import samples

pydicom = pytest.importorskip("pydicom")
from pydicom.data import get_testdata_file

NIBABEL_DATA = Path(nib.__file__).parent / "tests" / "data"
NICOM_DATA = Path(nib.__file__).parent / "nicom" / "tests" / "data"

#: Orientation of the built series: rotated 20 deg about x then 10 deg about z (oblique).
_a, _b = np.deg2rad(20.0), np.deg2rad(10.0)
_RX = np.array([[1, 0, 0], [0, np.cos(_a), -np.sin(_a)], [0, np.sin(_a), np.cos(_a)]])
_RZ = np.array([[np.cos(_b), -np.sin(_b), 0], [np.sin(_b), np.cos(_b), 0], [0, 0, 1]])
ROTATION = _RZ @ _RX
COL_DIR, ROW_DIR, NORMAL = ROTATION[:, 0], ROTATION[:, 1], ROTATION[:, 2]
PIXEL_SPACING = (0.9, 1.1)  # between rows, between columns: unequal, to catch a swap
ORIGIN = np.array([-40.0, -25.0, 12.5])
SLOPE, INTERCEPT = 0.5, 10.0


def slab_slices() -> np.ndarray:
    """16 real T1 slices (16, 48, 64) int16: the bundled slab, every 4th pixel, cropped."""
    slab = np.asarray(nib.load(samples.T1_AXIAL_SLAB).dataobj)  # (256, 16, 256) uint8
    return np.moveaxis(slab[::4, :, ::4], 1, 0)[:, 8:56, :].astype(np.int16)


def write_series(
    folder: Path,
    n: int = 6,
    spacing: float = 2.5,
    skip: tuple[int, ...] = (),
    series_uid: str | None = None,
) -> list[Path]:
    """A folder of ``n`` single-frame MR images of one series (slice k at ORIGIN + k * spacing
    * NORMAL, pixels slab slice k), written out of order (file ``s{n-1-k}.dcm`` holds slice k);
    ``skip``: slice indices left out (a missing slice). Returns the files by slice index."""
    folder.mkdir(parents=True, exist_ok=True)
    pixels = slab_slices()
    out = []
    for k in range(n):
        if k in skip:
            continue
        ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
        ds.Rows, ds.Columns = pixels.shape[1:]
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.PixelData = pixels[k].tobytes()
        ds.ImageOrientationPatient = [float(v) for v in np.r_[COL_DIR, ROW_DIR]]
        ds.ImagePositionPatient = [float(v) for v in ORIGIN + k * spacing * NORMAL]
        ds.PixelSpacing = list(PIXEL_SPACING)
        ds.SliceThickness = spacing
        ds.RescaleSlope, ds.RescaleIntercept = SLOPE, INTERCEPT
        ds.InstanceNumber = k + 1
        if series_uid is not None:
            ds.SeriesInstanceUID = series_uid
        path = folder / f"s{n - 1 - k}.dcm"
        ds.save_as(path)
        out.append(path)
    return out


def philips_mprage():
    """nibabel's Philips enhanced MR multi-frame file (176 frames; the pixels are zeros)."""
    return pydicom.dcmread(io.BytesIO(gzip.open(NICOM_DATA / "philips_mprage.dcm.gz").read()))


def write_enhanced(path: Path, n: int = 16, repeats: int = 1) -> Path:
    """An enhanced multi-frame MR file: the first ``n`` frames of the Philips MPRAGE (their
    per-frame positions), each ``repeats`` times (several volumes at one position when > 1),
    stored in reverse order, with the real slab slices as pixels (frame at position k holds
    slab slice k, 256 x 256)."""
    ds = philips_mprage()
    slab = np.asarray(nib.load(samples.T1_AXIAL_SLAB).dataobj)  # (256, 16, 256)
    frames = [copy.deepcopy(ds.PerFrameFunctionalGroupsSequence[k]) for k in range(n)] * repeats
    pixels = [slab[:, k % 16, :].astype(np.uint16) for k in range(n)] * repeats
    ds.PerFrameFunctionalGroupsSequence = frames[::-1]
    ds.NumberOfFrames = len(frames)
    ds.PixelData = np.stack(pixels[::-1]).tobytes()
    ds.save_as(path)
    return path


def enhanced_positions(path: Path) -> list[np.ndarray]:
    """The ImagePositionPatient of each stored frame of an enhanced file."""
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return [
        np.asarray(f.PlanePositionSequence[0].ImagePositionPatient, float)
        for f in ds.PerFrameFunctionalGroupsSequence
    ]


def mosaic_folder(folder: Path) -> Path:
    """nibabel's two Siemens mosaic DWI images (0.dcm, 1.dcm) in a folder of their own."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("0.dcm", "1.dcm"):
        shutil.copy(NIBABEL_DATA / name, folder / name)
    return folder


def lps_to_ras(affine: np.ndarray) -> np.ndarray:
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine
