"""MR files on disk: finding them (:mod:`.discovery`) and reading them (:mod:`.readers`; DICOM
with its scanner geometry: :mod:`.dicom`).

    from keras_seran.data.io import find_volumes, load_volume
    vols = [load_volume(p) for p in find_volumes("data/", contrast="T1")]

The names below are the public ones of both modules; nibabel, pydicom and Pillow load only when
a reader needs them.
"""

from __future__ import annotations

from keras_seran.data.io.discovery import (
    NIFTI_SUFFIXES,
    SLICE_SUFFIXES,
    find_volumes,
    has_contrast,
    is_hidden,
    is_nifti,
    is_series_folder,
    looks_like_dicom,
    parse_contrast,
    parse_ixi_name,
    subject_of,
)
from keras_seran.data.io.readers import (
    Volume,
    check_array,
    format_advice,
    has_scaling,
    load_any,
    load_dicom_series,
    load_slice,
    load_volume,
    volume_array,
)

__all__ = [
    # discovery
    "NIFTI_SUFFIXES",
    "SLICE_SUFFIXES",
    "find_volumes",
    "has_contrast",
    "is_hidden",
    "is_nifti",
    "is_series_folder",
    "looks_like_dicom",
    "parse_contrast",
    "parse_ixi_name",
    "subject_of",
    # readers
    "Volume",
    "check_array",
    "format_advice",
    "has_scaling",
    "load_any",
    "load_dicom_series",
    "load_slice",
    "load_volume",
    "volume_array",
]
