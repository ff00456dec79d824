"""Whole-volume super-resolution with a trained network: :class:`SuperResolver`.

A volume is super-resolved slice by slice in the plane perpendicular to its slice axis (the
thick-slice axis by default): intensities are normalised per volume (robust percentiles, as in
training), the slices go through the network in batches (whole or in overlapping tiles), the
result is mapped back to the input's intensity units and written with an affine and header
describing the finer grid over the same field of view (:mod:`keras_seran.inference.geometry`).

The network is a numpy batch function (:class:`~keras_seran.inference.network.Network`):
(N, h, w, 1) float32 -> (N, h*s, w*s, 1) float32. This module and the ones it imports at load
time (volume, output dtype, tiling, geometry, the data readers) use numpy and nibabel only; a
Keras model is adapted by :mod:`keras_seran.inference.runner`, imported when one is given, and
the Keras constructors (:meth:`SuperResolver.from_pretrained`, :meth:`~SuperResolver.from_file`,
:meth:`~SuperResolver.from_spec`) import the weights registry (and so Keras) when called;
:meth:`SuperResolver.from_bundle` runs an export bundle's artifact in its own runtime (LiteRT,
onnxruntime, TensorRT) without them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from keras_seran.config import (
    DEFAULT_PRESET,
    DEFAULT_SCALE,
    InferenceConfig,
    check_data_consistency,
    check_percentiles,
)
from keras_seran.contract import NETWORK_RANGE
from keras_seran.data.degrade import bicubic_upscale
from keras_seran.data.normalize import fit_normalization
from keras_seran.errors import InputDataError, UsageError
from keras_seran.inference import geometry, tiling
from keras_seran.inference.ensemble import ensembled
from keras_seran.inference.network import as_network
from keras_seran.inference.output_dtype import cast_output, check_integer_output, check_output_dtype
from keras_seran.inference.volume import as_volume, predict_to_file, slice_axis

DEFAULT_BATCH_SIZE = InferenceConfig.batch_size
DEFAULT_OVERLAP = InferenceConfig.overlap  # LR pixels shared by neighbouring tiles
MIN_TILE = 64  # smallest tile a memory budget may choose (global attention: see tiling)


class SuperResolver:
    """Super-resolve 2D MR slices and whole NIfTI volumes with an SR network.

    Args:
        model: the network, working on intensities normalised as the input contract says
            (:mod:`keras_seran.contract`): a Keras model (N, H, W, 1) -> (N, H*s, W*s, 1) (any
            network of :mod:`keras_seran.models`), a numpy batch function of that signature, or
            a :class:`~keras_seran.inference.network.Network`.
        scale: its upscaling factor; measured by one forward pass when None, checked otherwise
            (ValueError when it differs).
        percentiles: the robust intensity range mapped to [0, 1] (per volume, or per slice in
            :meth:`predict_slice`); the training default.
        clip_input: clip normalised inputs to [0, 1] (as in training) and drop what lies
            beyond. Off by default: the network sees [-0.5, 1.5] (``NETWORK_RANGE``), so the
            voxels brighter than the upper percentile (fat, vessels) keep their contrast, and
            anything beyond that range (spikes, hot pixels) is upscaled by bicubic interpolation
            alone and added back: it stays in the output but cannot disturb the rest of the
            slice through the global attention.
        clip_output: clip the result to the input's intensity range [min, max] (removes the
            small over/undershoot of the network at sharp edges, e.g. negative magnitudes).
        self_ensemble: average the network over the 8 flips/rotations of each slice
            (:mod:`~keras_seran.inference.ensemble`; "SERAN+"): 8x the time, a little sharper.
        data_consistency: None (off), or the weight in [0, 1] of k-space data consistency
            (:func:`~keras_seran.inference.consistency.kspace_consistency`) applied to each
            slice's normalised network output: 1 puts the measured centre of the spectrum back
            exactly, less blends it (for a k-space-truncated acquisition, not a bicubic one).

    Attributes: ``model`` (as given), ``network`` (its Network), ``scale``.
    """

    def __init__(
        self,
        model: Any,
        scale: int | None = None,
        *,
        percentiles: tuple[float, float] = InferenceConfig.percentiles,
        clip_input: bool = False,
        clip_output: bool = True,
        self_ensemble: bool = InferenceConfig.self_ensemble,
        data_consistency: float | None = InferenceConfig.data_consistency,
    ):
        self.model = model
        self.network = as_network(model, scale)
        self.scale = self.network.scale
        run = self.network.run
        # (B, h, w) -> (B, h*s, w*s), one pass
        self._forward = lambda batch: np.asarray(run(batch[..., None]), np.float32)[..., 0]
        self.percentiles = check_percentiles(percentiles)
        self.clip_input = bool(clip_input)
        self.clip_output = bool(clip_output)
        self.self_ensemble = bool(self_ensemble)
        self.data_consistency = (
            None if data_consistency is None else check_data_consistency(data_consistency)
        )

    def __repr__(self) -> str:
        return (
            f"SuperResolver(model={self.network.name!r}, "
            f"scale={self.scale}, percentiles={self.percentiles}, "
            f"clip_input={self.clip_input}, clip_output={self.clip_output}, "
            f"self_ensemble={self.self_ensemble}, data_consistency={self.data_consistency})"
        )

    # ----------------------------------------------------------------------------------------
    # construction

    @classmethod
    def from_pretrained(
        cls,
        scale: int = DEFAULT_SCALE,
        preset: str = DEFAULT_PRESET,
        arch: str = "seran",
        degradation: str = InferenceConfig.degradation,
        **kwargs: Any,
    ) -> SuperResolver:
        """The bundled pretrained weights for ``scale`` (2, 3 or 4), trained on ``degradation``
        ("bicubic", the paper's; "kspace", a scanner's lower-resolution acquisition): see
        :mod:`keras_seran.registry`. No network access; imports Keras."""
        from keras_seran.registry import load_pretrained

        return cls(
            load_pretrained(scale, arch=arch, preset=preset, degradation=degradation),
            scale=scale,
            **kwargs,
        )

    @classmethod
    def from_bundle(
        cls,
        bundle_dir: str | Path,
        runtime: str | None = None,
        precision: str | None = None,
        scale: int | None = None,
        num_threads: int | None = None,
        **kwargs: Any,
    ) -> SuperResolver:
        """An export bundle's artifact (``keras-seran export``) run in its own runtime
        ("litert", "onnxruntime", "tensorrt"; default: the first installed that the bundle
        holds) at ``precision`` (default float32): no TensorFlow, Keras or JAX
        (:func:`keras_seran.inference.bundle.load_bundle`). InputDataError naming the file for
        a missing manifest or artifact or a hash mismatch, UsageError for a ``scale`` other
        than the bundle's, RuntimeUnavailable when the runtime is not installed."""
        from keras_seran.inference.bundle import load_bundle

        return cls(load_bundle(bundle_dir, runtime, precision, scale, num_threads), **kwargs)

    @classmethod
    def from_file(cls, path: str | Path, scale: int | None = None, **kwargs: Any) -> SuperResolver:
        """A saved ``.keras`` model (or a bundled name such as ``"x2"``); imports Keras.
        InputDataError naming the file when it is not a grayscale SR model."""
        from keras_seran.registry import load_model

        model = load_model(path)
        try:
            return cls(model, scale=scale, **kwargs)
        except ValueError as e:
            raise InputDataError(path, str(e)) from None

    @classmethod
    def from_spec(
        cls, spec: str | Path | None, scale: int | None = None, **kwargs: Any
    ) -> SuperResolver:
        """``None`` -> pretrained weights for ``scale`` (default ``DEFAULT_SCALE``, trained on
        ``InferenceConfig.degradation``); a bundled name (``"x3"``,
        ``"edsr-x4"``, ``"x2-kspace"``) -> those weights; a path -> that file."""
        from keras_seran.registry import parse

        if spec is None:
            return cls.from_pretrained(scale or DEFAULT_SCALE, **kwargs)
        named = parse(spec)
        if named is not None and not Path(str(spec)).exists():
            if scale is not None and int(scale) != named.scale:
                raise UsageError(
                    f"--model {spec} upscales by {named.scale} but --scale {scale} "
                    "was asked; drop one of them or make them agree"
                )
            return cls.from_pretrained(
                named.scale, named.preset, named.arch, named.degradation, **kwargs
            )
        return cls.from_file(spec, scale=scale, **kwargs)

    # ----------------------------------------------------------------------------------------
    # running the network

    def _run(self, batch: np.ndarray) -> np.ndarray:
        """(B, h, w) normalised float32 -> (B, h*s, w*s) float32 (self-ensembled if asked)."""
        return ensembled(self._forward, self.self_ensemble)(batch)

    def predict_normalized(
        self,
        slices: np.ndarray,
        batch_size: int = DEFAULT_BATCH_SIZE,
        tile_size: int | None = None,
        overlap: int = DEFAULT_OVERLAP,
        on_progress: Callable[[float], None] | None = None,
    ) -> np.ndarray:
        """Network output of (N, H, W) normalised slices: (N, H*s, W*s) float32.

        Values beyond ``NETWORK_RANGE`` bypass the network: it sees them clipped, and the
        clipped-off part is upscaled by bicubic interpolation and added to its output. With
        ``data_consistency`` the measured k-space centre of each slice is then put back.

        ``tile_size`` (LR pixels): cut slices larger than that into overlapping tiles
        (:func:`~keras_seran.inference.tiling.predict_tiled`). ``on_progress(k)`` receives the
        number of slices finished (fractional while tiling).
        """
        x = np.asarray(slices, dtype=np.float32)
        if x.ndim == 2:
            x = x[None]
        inside = np.clip(x, *NETWORK_RANGE)
        out = self._predict_inside(inside, batch_size, tile_size, overlap, on_progress)
        beyond = x - inside
        if beyond.any():
            out += bicubic_upscale(beyond, self.scale)
        if self.data_consistency is not None:
            from keras_seran.inference.consistency import kspace_consistency

            out = kspace_consistency(out, x, self.scale, self.data_consistency)
        return out

    def _predict_inside(
        self,
        x: np.ndarray,
        batch_size: int,
        tile_size: int | None,
        overlap: int,
        on_progress: Callable[[float], None] | None,
    ) -> np.ndarray:
        """The network on (N, H, W) slices within ``NETWORK_RANGE``, whole or tiled (always
        in tiles of the network's ``input_size`` when it has one)."""
        n, h, w = x.shape
        batch_size = max(1, int(batch_size))
        s = self.scale
        fixed = self.network.input_size
        tile = (
            tuple(fixed)
            if fixed is not None
            else None
            if tile_size is None
            else (int(tile_size), int(tile_size))
        )
        if tile is not None and (tile[0] < h or tile[1] < w):
            if min(tile) <= overlap:
                raise ValueError(
                    f"tile size {tile[0]}x{tile[1]} must be larger than the overlap {overlap}"
                )
            tile_size = tile if fixed is not None else tile[0]
            per_slice = len(tiling.make_tiles(h, w, tile_size, overlap))
            cb = None if on_progress is None else (lambda k: on_progress(k / per_slice))
            return tiling.predict_tiled(x, self._run, s, tile_size, overlap, batch_size, cb)
        out = np.empty((n, h * s, w * s), dtype=np.float32)
        for i in range(0, n, batch_size):
            out[i : i + batch_size] = self._run(x[i : i + batch_size])
            if on_progress is not None:
                on_progress(min(batch_size, n - i))
        return out

    # ----------------------------------------------------------------------------------------
    # one slice

    def predict_slice(
        self, arr2d: Any, tile_size: int | None = None, overlap: int = DEFAULT_OVERLAP
    ) -> np.ndarray:
        """Super-resolve one 2D image in any intensity range: (H, W) -> (H*s, W*s) float32, same units.

        A single channel axis, last ``(H, W, 1)`` or first ``(1, H, W)``, is accepted and kept:
        ``(H*s, W*s, 1)`` / ``(1, H*s, W*s)``. The slice is normalised by its own robust
        percentiles, run through the network and mapped back. A constant slice (e.g. the empty
        background at the end of a volume, when looping over its slices) comes back as the same
        constant, upscaled; a constant *volume* (or file) holds nothing to super-resolve and is an
        InputDataError in :meth:`predict_volume` and on the command line. Raises UsageError for
        a non-2D (or several-channel), empty or non-finite array.
        """
        a = np.asarray(arr2d)
        if a.ndim == 3 and a.shape[-1] == 1:
            return self.predict_slice(a[..., 0], tile_size, overlap)[..., None]
        if a.ndim == 3 and a.shape[0] == 1:
            return self.predict_slice(a[0], tile_size, overlap)[None]
        if a.ndim != 2:
            raise UsageError(
                f"predict_slice expects one 2D image (H, W) (or (H, W, 1)), got "
                f"shape {a.shape}; for a 3D volume use predict_volume()"
            )
        if a.size == 0:
            raise UsageError(f"empty image of shape {a.shape}")
        if not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a):
            raise UsageError(f"image of dtype {a.dtype} is not real-valued")
        if not np.isfinite(a).all():
            bad = int(a.size - np.count_nonzero(np.isfinite(a)))
            raise UsageError(
                f"image contains {bad} NaN/Inf value(s); replace them (e.g. np.nan_to_num) first"
            )
        big = float(np.abs(a).max())
        if big > float(np.finfo(np.float32).max):
            raise UsageError(
                f"image values reach {big:.3g}, beyond the float32 range "
                "the network computes in; rescale the image first"
            )
        a = a.astype(np.float32)
        s = self.scale
        lo, hi = float(a.min()), float(a.max())
        if lo == hi:
            return np.full((a.shape[0] * s, a.shape[1] * s), lo, dtype=np.float32)
        stats = self._fit(a, None)
        y = self.predict_normalized(stats.apply(a)[None], 1, tile_size, overlap)[0]
        return self._finish(stats.invert(y), lo, hi)

    # ----------------------------------------------------------------------------------------
    # volumes

    def _fit(self, data: np.ndarray, path: Any):
        return fit_normalization(data, self.percentiles, clip=self.clip_input, path=path)

    def _finish(self, y: np.ndarray, lo: float, hi: float) -> np.ndarray:
        if self.clip_output:
            np.clip(y, lo, hi, out=y)
        return y.astype(np.float32, copy=False)

    def plan(
        self,
        shape2d: tuple[int, int],
        batch_size: int = DEFAULT_BATCH_SIZE,
        tile_size: int | None = None,
        max_memory_mb: float | None = None,
        overlap: int = DEFAULT_OVERLAP,
    ) -> tuple[int | None, int]:
        """(tile_size or None for whole slices, batch size) for LR slices of ``shape2d``.

        An explicit ``tile_size`` wins. With ``max_memory_mb`` whole slices are used when at least
        one fits the estimated budget (the batch shrinks to what fits); otherwise tiles, one at
        a time: the budget left after the blend's HR buffers
        (:func:`~keras_seran.inference.tiling.hr_buffer_bytes`) bounds the tile
        (:func:`~keras_seran.inference.tiling.tile_side_for_budget`, with the network's memory
        estimate), and the tile is the
        smallest that covers the slice with the fewest tiles that bound allows
        (:func:`~keras_seran.inference.tiling.balanced_tile`); never below ``MIN_TILE`` (a
        warning says when that exceeds the budget).
        """
        batch_size = max(1, int(batch_size))
        if tile_size is not None:
            return int(tile_size), batch_size
        if not max_memory_mb:
            return None, batch_size
        net = self.network
        side = tiling.tile_side_for_budget(
            max_memory_mb, net.bytes_per_pixel, net.weights_bytes, batch_size=1, minimum=1
        )
        per_slice = shape2d[0] * shape2d[1]
        fit = (side * side) // per_slice
        if fit >= 1:
            return None, max(1, min(batch_size, int(fit)))
        # tiling: the blend's HR buffers come out of the budget too, then the fewest tiles
        # that fit, each as small as that count allows
        buffers_mb = tiling.hr_buffer_bytes(shape2d, self.scale) / 2**20
        side = tiling.tile_side_for_budget(
            max(max_memory_mb - buffers_mb, 1e-3),
            net.bytes_per_pixel,
            net.weights_bytes,
            batch_size=1,
            minimum=1,
        )
        tile = max(tiling.balanced_tile(shape2d, side, overlap), MIN_TILE)
        if tile <= overlap:
            raise UsageError(
                f"a memory budget of {max_memory_mb:g} MB allows tiles of "
                f"{tile} px, not larger than the overlap {overlap}; raise "
                "--max-memory or lower --overlap"
            )
        if side < MIN_TILE:
            import warnings

            warnings.warn(
                f"a memory budget of {max_memory_mb:g} MB allows tiles of {side} px; "
                f"using {MIN_TILE} px, the smallest that keeps enough context for the "
                "attention, which may exceed the budget",
                stacklevel=2,
            )
        return tile, 1

    def predict_volume(
        self,
        img: Any,
        axis: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        tile_size: int | None = None,
        overlap: int = DEFAULT_OVERLAP,
        progress: bool = False,
        output_dtype: Any = None,
        max_memory_mb: float | None = None,
        isotropic: bool = False,
        target_spacing: float | None = None,
        adapt_steps: int = 0,
        through_plane: Any = None,
    ) -> Any:
        """Super-resolve a 3D volume slice by slice; returns a ``nibabel.Nifti1Image``
        (a ``Nifti2Image`` for a NIfTI-2 input), little-endian.

        Args:
            img: a path (a NIfTI file, a folder holding one DICOM series, a multi-frame DICOM
                file), a nibabel image, a 3D numpy array (no geometry: identity affine, 1 mm
                voxels, so the slice axis defaults to the last; wrap it as
                ``nib.Nifti1Image(arr, affine)`` to give the real one), or a
                :class:`keras_seran.data.io.Volume`
                (:func:`~keras_seran.inference.volume.as_volume`). A constant volume is an
                InputDataError, as on the command line.
            axis: the slice axis (0, 1, 2); the two other axes are upscaled. Default: the
                through-plane axis (:func:`~keras_seran.inference.geometry.choose_slice_axis`:
                the thick-slice axis; the last axis for isotropic voxels).
            batch_size: slices (or tiles) per network call.
            tile_size: LR tile side for slices too large for memory (None: whole slices).
            overlap: LR pixels shared by neighbouring tiles (blended with cosine ramps).
            progress: show a tqdm progress bar (slices).
            output_dtype: None / "float32": float32; "input": the input's on-disk dtype when it is
                an unscaled integer type (values rounded and clipped to its range), else float32;
                or one of :data:`~keras_seran.inference.output_dtype.NIFTI_DTYPES` ("int16",
                "uint8", "float64", ...; :mod:`~keras_seran.inference.output_dtype`). An integer
                type that cannot hold the input's range, or whose rounding would leave fewer than
                256 grey levels of a non-integer input, is an InputDataError (before any work).
            max_memory_mb: choose batch and tile size from this memory budget (an estimate of the
                network's activations; see :meth:`plan`).
            isotropic: then make the result (near-)isotropic along ``axis`` with the
                through-plane network (``through_plane``, a
                :class:`~keras_seran.inference.throughplane.ThroughPlaneResolver`; default the
                bundled one), to ``target_spacing`` mm (default: the new in-plane voxel size),
                after ``adapt_steps`` steps of adaptation to the scan (0: none).

        The output covers the same field of view: its affine is ``A @ M`` with M the in-plane
        scaling by 1/s and shift -(s - 1)/(2 s) (pixel-shuffle half-pixel convention), its voxel
        size is divided by ``s`` in-plane, qform and sform are updated alike, and intensities are
        in the input's units (per-volume normalisation inverted).
        """
        output_dtype = check_output_dtype(output_dtype)  # before any work
        vol = as_volume(img)
        data = vol.data
        if axis is None:
            axis = slice_axis(vol)
        try:
            axis = geometry.normalize_axis(axis)
        except ValueError as e:
            raise InputDataError(vol.path or None, str(e)) from None
        stats = self._fit(data, vol.path or None)
        lo, hi = float(data.min()), float(data.max())
        check_integer_output(output_dtype, data, lo, hi, vol.path or None)  # before the network
        slices = np.moveaxis(data, axis, 0)
        n, h, w = slices.shape
        tile, bs = self.plan((h, w), batch_size, tile_size, max_memory_mb, overlap)
        s = self.scale
        out_shape = [k * s if a != axis else k for a, k in enumerate(data.shape)]
        result = np.empty(out_shape, dtype=np.float32)  # final layout: no copy at the end
        out = np.moveaxis(result, axis, 0)  # (n, h*s, w*s) view
        bar = _progress_bar(n, Path(vol.path).name if vol.path else "volume", progress)
        step = None if bar is None else whole_slices(bar.update)
        try:
            for i in range(0, n, bs):
                chunk = stats.apply(slices[i : i + bs])
                y = self.predict_normalized(chunk, bs, tile, overlap, on_progress=step)
                out[i : i + bs] = self._finish(stats.invert(y), lo, hi)
        finally:
            if bar is not None:
                bar.close()
        if isotropic:
            inplane = geometry.upscaled_image(result, vol.affine, vol.header, s, axis)
            if vol.header is not None and not vol.scaled:  # "input" still means the input's type
                inplane.set_data_dtype(vol.header.get_data_dtype())
            tp = through_plane if through_plane is not None else self.through_plane()
            return tp.predict_volume(
                inplane,
                axis=axis,
                target_spacing=target_spacing,
                batch_size=batch_size,
                progress=progress,
                output_dtype=output_dtype,
                adapt_steps=adapt_steps,
            )
        result = cast_output(result, output_dtype, vol.header, lo, hi, vol.scaled)
        return geometry.upscaled_image(result, vol.affine, vol.header, s, axis)

    def through_plane(self) -> Any:
        """The bundled through-plane resolver used by ``predict_volume(isotropic=True)``, loaded
        once (imports Keras)."""
        if getattr(self, "_through_plane", None) is None:
            from keras_seran.inference.throughplane import ThroughPlaneResolver

            self._through_plane = ThroughPlaneResolver.from_pretrained(percentiles=self.percentiles)
        return self._through_plane

    def predict_file(
        self,
        input_path: str | Path,
        output_path: str | Path,
        overwrite: bool = False,
        volume: Any = None,
        **kwargs: Any,
    ) -> dict:
        """Read a NIfTI file, super-resolve it and write the result atomically.

        The output path is checked before any work (not the input, writable, exists only with
        ``overwrite``). ``volume``: the input already loaded (a Volume). ``kwargs`` go to
        :meth:`predict_volume`. Returns a summary dict (paths, shapes, voxel sizes, axis,
        seconds).
        """
        return predict_to_file(
            self.predict_volume, input_path, output_path, overwrite, volume, **kwargs
        )


# --------------------------------------------------------------------------------------------
# helpers


def whole_slices(update: Callable[[int], Any]) -> Callable[[float], None]:
    """A progress callback passing ``update`` whole slices only: tiled runs report fractions of a
    slice, which a bar would show as "7.9999999999999964/20" and end short of its total."""
    done = [0.0, 0]

    def step(k: float) -> None:
        done[0] += k
        whole = int(done[0] + 1e-6)
        if whole > done[1]:
            update(whole - done[1])
            done[1] = whole

    return step


def _progress_bar(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="slice", leave=False, dynamic_ncols=True)


def predict_volume(model_or_resolver: Any, img: Any, **kwargs: Any) -> Any:
    """Functional form: ``SuperResolver(model).predict_volume(img, **kwargs)``."""
    r = (
        model_or_resolver
        if isinstance(model_or_resolver, SuperResolver)
        else SuperResolver(model_or_resolver)
    )
    return r.predict_volume(img, **kwargs)
