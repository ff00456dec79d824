"""MR data pipeline: files on disk -> normalised 2D slices -> (LR, HR) pairs for training.

Modules (one concern each): ``io`` (files on disk: ``io.discovery`` finds them and reads IXI/BIDS
names, ``io.readers`` reads NIfTI/DICOM/PNG/NPY), ``normalize`` (per-volume percentile scaling,
invertible), ``degrade`` (BI/BD/k-space degradations, Rician noise, MATLAB-exact bicubic),
``slices`` (slice extraction, subject-safe train/validation split), ``pipeline`` (tf.data;
imports TensorFlow) and ``pydataset`` (keras.utils.PyDataset, numpy only).

The TensorFlow-based names (``make_datasets``, ...) and the Keras-based PyDatasets are imported
lazily on first use, so ``import keras_seran.data`` itself pulls in neither TensorFlow nor Keras.
"""

from __future__ import annotations

from keras_seran._lazy import lazy_names
from keras_seran.data.degrade import (
    DEGRADATIONS,
    add_rician_noise,
    bicubic_downscale,
    bicubic_upscale,
    blur_downscale,
    crop_to_multiple,
    degradation_matrices,
    degrade,
    fourier_resample_matrix,
    gaussian_blur_matrix,
    imresize_weights,
    kspace_downscale,
    kspace_upscale,
    lr_hr_pairs,
    upscale_baseline,
)
from keras_seran.data.io import (
    Volume,
    find_volumes,
    load_any,
    load_dicom_series,
    load_slice,
    load_volume,
    parse_contrast,
    parse_ixi_name,
)
from keras_seran.data.normalize import NormStats, fit_normalization, normalize
from keras_seran.data.slices import (
    SliceSet,
    extract_slices,
    load_scored_slices,
    load_slice_sets,
    representative_slices,
    split_single_volume,
    split_volumes,
    validation_pairs,
    validation_pairs_from,
)

_LAZY = {
    "make_datasets": "keras_seran.data.pipeline",
    "train_dataset": "keras_seran.data.pipeline",
    "validation_dataset": "keras_seran.data.pipeline",
    "make_representative_slices": "keras_seran.data.pipeline",
    "tf_degrade_batch": "keras_seran.data.pipeline",
    "PatchPyDataset": "keras_seran.data.pydataset",
    "SlicePairPyDataset": "keras_seran.data.pydataset",
    "make_pydatasets": "keras_seran.data.pydataset",
}


__getattr__, __dir__ = lazy_names(__name__, _LAZY)


__all__ = [
    # io
    "Volume",
    "load_volume",
    "load_slice",
    "load_any",
    "load_dicom_series",
    "find_volumes",
    "parse_ixi_name",
    "parse_contrast",
    # normalize
    "NormStats",
    "fit_normalization",
    "normalize",
    # degrade
    "DEGRADATIONS",
    "imresize_weights",
    "bicubic_downscale",
    "bicubic_upscale",
    "blur_downscale",
    "kspace_downscale",
    "kspace_upscale",
    "add_rician_noise",
    "degrade",
    "crop_to_multiple",
    "degradation_matrices",
    "gaussian_blur_matrix",
    "fourier_resample_matrix",
    "upscale_baseline",
    "lr_hr_pairs",
    # slices
    "SliceSet",
    "extract_slices",
    "split_volumes",
    "split_single_volume",
    "load_slice_sets",
    "load_scored_slices",
    "validation_pairs",
    "validation_pairs_from",
    "representative_slices",
    # lazy: pipeline (TensorFlow) and pydataset (Keras)
    *_LAZY,
]
