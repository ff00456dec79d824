"""Whole-volume super-resolution: NIfTI in, NIfTI out (``SuperResolver``), tiling, safe writing.

    from keras_seran import SuperResolver
    sr = SuperResolver.from_pretrained(scale=2)          # bundled weights, no network
    img = sr.predict_volume("t1_thick.nii.gz")           # nibabel image, same field of view
    img.to_filename("t1_sr.nii.gz")

Modules: :mod:`.resolver` (SuperResolver, numpy only), :mod:`.network` (the network it runs: a
numpy batch function), :mod:`.runner` (a Keras model as that function), :mod:`.volume` (inputs
as checked volumes, slice axis), :mod:`.output_dtype` (dtype of the written volume),
:mod:`.geometry` (affine/header of the upscaled grid), :mod:`.tiling` (overlapping tiles and
blending), :mod:`.command` / :mod:`.demo` (``keras-seran predict`` / ``keras-seran demo``);
results are written with :mod:`keras_seran.files`.
Its submodules load lazily: importing it loads none of them (Keras itself loads with
``keras_seran``, which registers the layers).
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "SuperResolver": ("keras_seran.inference.resolver", "SuperResolver"),
    "predict_volume": ("keras_seran.inference.resolver", "predict_volume"),
    "as_volume": ("keras_seran.inference.volume", "as_volume"),
    "Network": ("keras_seran.inference.network", "Network"),
    "run_demo": ("keras_seran.inference.demo", "run_demo"),
    "predict_paths": ("keras_seran.inference.command", "predict_paths"),
    "upscale_affine": ("keras_seran.inference.geometry", "upscale_affine"),
    "downscale_affine": ("keras_seran.inference.geometry", "downscale_affine"),
    "choose_slice_axis": ("keras_seran.inference.geometry", "choose_slice_axis"),
    "upscaled_image": ("keras_seran.inference.geometry", "upscaled_image"),
    "fov_corners": ("keras_seran.inference.geometry", "fov_corners"),
    "fov_centre": ("keras_seran.inference.geometry", "fov_centre"),
    "predict_tiled": ("keras_seran.inference.tiling", "predict_tiled"),
    "tile_size_for_memory": ("keras_seran.inference.tiling", "tile_size_for_memory"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'keras_seran.inference' has no attribute {name!r}")


__all__ = sorted(_LAZY)
