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

from keras_seran._lazy import lazy_names

_LAZY = {
    "SuperResolver": ".resolver",
    "predict_volume": ".resolver",
    "as_volume": ".volume",
    "Network": ".network",
    "run_demo": ".demo",
    "predict_paths": ".command",
    "upscale_affine": ".geometry",
    "downscale_affine": ".geometry",
    "choose_slice_axis": ".geometry",
    "upscaled_image": ".geometry",
    "fov_corners": ".geometry",
    "fov_centre": ".geometry",
    "predict_tiled": ".tiling",
    "tile_size_for_memory": ".tiling",
}


__getattr__, __dir__ = lazy_names(__name__, _LAZY)


__all__ = sorted(_LAZY)
