"""Through-plane geometry: from a thick-slice stack to a grid of (near-)isotropic voxels.

A 2D multi-slice stack has one thick axis (the slice axis, 3-6 mm) and fine in-plane voxels. The
isotropic grid keeps the field of view and divides the thick axis into ``n_out`` voxels of about
the target spacing (the in-plane voxel size unless given):

    n_out = round(n_in * dz / target),   voxel size along the axis = n_in * dz / n_out,

so the outer edges of the first and last thick slices are the outer edges of the first and last
output voxels, and output voxel j has its centre at input index ``(j + 0.5) / R - 0.5`` with
``R = n_out / n_in`` (the block-centre convention of the in-plane geometry,
:mod:`keras_seran.inference.geometry`; R may be any ratio above 1, e.g. 1.2 or 5.56).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from keras_seran.contract import DEFAULT_PERCENTILES, NETWORK_RANGE
from keras_seran.data.degrade import fourier_resample, imresize_weights
from keras_seran.data.normalize import check_percentiles, fit_normalization
from keras_seran.errors import InputDataError
from keras_seran.inference import geometry
from keras_seran.inference.network import as_network
from keras_seran.inference.output_dtype import cast_output, check_integer_output, check_output_dtype
from keras_seran.inference.volume import as_volume, predict_to_file

#: Largest thick/target ratio the through-plane path accepts (the network was trained up to 6).
MAX_RATIO = 8.0
#: Below this ratio a thick axis is "already fine": nothing to do.
MIN_RATIO = 1.05
INTERPOLATIONS = ("cubic", "sinc")
#: how the two through-plane orientations are combined
FUSIONS = ("mean", "fourier")


@dataclass(frozen=True)
class IsotropicPlan:
    """How a volume becomes isotropic along its thick axis.

    Attributes:
        axis: the thick (slice) axis, 0, 1 or 2.
        n_in: slices along it.
        n_out: output voxels along it.
        spacing_in: thick voxel size (mm).
        spacing_out: output voxel size (mm): ``n_in * spacing_in / n_out``.
    """

    axis: int
    n_in: int
    n_out: int
    spacing_in: float
    spacing_out: float

    @property
    def ratio(self) -> float:
        """R = n_out / n_in: output voxels per thick slice."""
        return self.n_out / self.n_in

    def vox_map(self) -> np.ndarray:
        """(4, 4) map from output voxel indices to input voxel indices (see module docstring)."""
        m = np.eye(4)
        r = self.ratio
        m[self.axis, self.axis] = 1.0 / r
        m[self.axis, 3] = 0.5 / r - 0.5
        return m


def plan_isotropic(
    shape: Sequence[int],
    zooms: Sequence[float],
    axis: int | None = None,
    target_spacing: float | None = None,
    path: object = None,
) -> IsotropicPlan:
    """The :class:`IsotropicPlan` of a volume of ``shape`` with voxel sizes ``zooms`` (mm).

    ``axis``: the thick axis (default: the axis with the largest voxel size, which must be larger
    than both others). ``target_spacing`` (mm): default the finer of the two other voxel sizes.
    Raises InputDataError naming ``path`` when there is no thick axis (nothing to do), the ratio
    is above :data:`MAX_RATIO`, or the axis holds fewer than 2 slices.
    """
    z = np.abs(np.asarray(zooms, np.float64)[:3])
    if axis is None:
        order = np.argsort(z)
        axis = int(order[-1])
        if np.isclose(z[order[-1]], z[order[-2]], rtol=1e-3):
            raise InputDataError(
                path,
                f"no thick axis: voxel sizes {_fmt(z)} mm have no single "
                "largest one; nothing to make isotropic (give --axis to "
                "choose one)",
            )
    others = [z[a] for a in range(3) if a != axis]
    target = float(min(others) if target_spacing is None else target_spacing)
    if not target > 0:
        raise InputDataError(path, f"target spacing must be positive, got {target_spacing!r}")
    ratio = z[axis] / target
    if ratio < MIN_RATIO:
        raise InputDataError(
            path,
            f"axis {axis} ({z[axis]:g} mm) is already as fine as the target "
            f"{target:g} mm (voxel sizes {_fmt(z)} mm): nothing to do",
        )
    if ratio > MAX_RATIO:
        raise InputDataError(
            path,
            f"axis {axis}: {z[axis]:g} mm to {target:g} mm is a ratio of "
            f"{ratio:.2f}, above the supported {MAX_RATIO:g}; choose a "
            "larger --target-spacing",
        )
    n_in = int(shape[axis])
    if n_in < 2:
        raise InputDataError(path, f"axis {axis} holds {n_in} slice; need at least 2")
    n_out = int(round(n_in * ratio))
    return IsotropicPlan(
        axis=int(axis),
        n_in=n_in,
        n_out=n_out,
        spacing_in=float(z[axis]),
        spacing_out=float(n_in * z[axis] / n_out),
    )


def interpolate_axis(
    volume: np.ndarray, axis: int, n_out: int, method: str = "cubic"
) -> np.ndarray:
    """``volume`` resampled along ``axis`` to ``n_out`` samples on the block-centred grid, float32.

    "cubic": the cubic kernel (MATLAB ``imresize``, no antialiasing: an upsampling), what
    scanners and viewers show for reformats; "sinc": zero-filling of the spectrum along the axis
    (band-limited interpolation, the k-space baseline).
    """
    if method not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {method!r}")
    v = np.asarray(volume, np.float64)
    n_in = v.shape[axis]
    if method == "sinc":
        return fourier_resample(v, int(n_out), axis).astype(np.float32)
    w = imresize_weights(n_in, int(n_out), n_out / n_in, antialias=False)
    return np.moveaxis(np.tensordot(w, np.moveaxis(v, axis, 0), axes=1), 0, axis).astype(np.float32)


def _fmt(z: np.ndarray) -> str:
    return " x ".join(f"{v:g}" for v in z)


def fuse_orientations(a: np.ndarray, b: np.ndarray, axis: int, mode: str = "mean") -> np.ndarray:
    """Combine two restorations of the same volume, each made in planes through ``axis``.

    "mean": their average. "fourier": along each of the other two axes, a restoration made in
    planes that contain that axis saw it at full resolution; the 2D spectrum (over the two
    in-plane axes) takes each frequency from the restoration whose planes resolved it better
    (|k_b| > |k_c|: the one whose planes contain axis b), the diagonal as the mean (SMORE's
    Fourier burst accumulation, simplified to a weight of 1/0).
    """
    if mode not in FUSIONS:
        raise ValueError(f"fusion must be one of {FUSIONS}, got {mode!r}")
    if mode == "mean":
        return (0.5 * (a + b)).astype(np.float32)
    p, q = (k for k in range(3) if k != axis)
    fa = np.fft.fftn(a, axes=(p, q))
    fb = np.fft.fftn(b, axes=(p, q))
    kp = np.abs(np.fft.fftfreq(a.shape[p]))
    kq = np.abs(np.fft.fftfreq(a.shape[q]))
    shape = [1, 1, 1]
    shape[p], shape[q] = a.shape[p], a.shape[q]
    w = np.where(kp[:, None] > kq[None, :], 1.0, np.where(kp[:, None] < kq[None, :], 0.0, 0.5))
    w = w.reshape(shape)
    # ``a`` was restored in planes through (axis, p): it resolved frequencies along p
    return np.real(np.fft.ifftn(w * fa + (1 - w) * fb, axes=(p, q))).astype(np.float32)


class ThroughPlaneResolver:
    """Make a thick-slice stack (near-)isotropic with a through-plane network.

    The volume is normalised (robust percentiles, as in training), interpolated along its thick
    axis onto the isotropic grid (:func:`plan_isotropic`, :func:`interpolate_axis`), and each
    2D reformat through the thick axis (both orientations) is restored by the network, rows along
    the thick axis; the two restorations are fused (:func:`fuse_orientations`), the intensities
    mapped back, and the result written on the grid of the plan (same field of view).

    Args:
        model: the restoration network (N, H, W, 1) -> (N, H, W, 1) (a Keras model such as
            :func:`keras_seran.models.throughplane.seran_through_plane`, a numpy batch
            function or a :class:`~keras_seran.inference.network.Network` of scale 1).
        percentiles: the robust intensity range mapped to [0, 1].
        interpolation: "cubic" (the network's training input) or "sinc".
        fusion: "mean" or "fourier".
        clip_output: clip the result to the input's intensity range.
    """

    def __init__(
        self,
        model: Any,
        *,
        percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
        interpolation: str = "cubic",
        fusion: str = "mean",
        clip_output: bool = True,
    ):
        self.model = model
        self.network = as_network(model, 1)
        if interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}"
            )
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        self.percentiles = check_percentiles(percentiles)
        self.interpolation = interpolation
        self.fusion = fusion
        self.clip_output = bool(clip_output)

    def predict_file(
        self,
        input_path: Any,
        output_path: Any,
        overwrite: bool = False,
        volume: Any = None,
        **kwargs: Any,
    ) -> dict:
        """Read a volume, make it isotropic and write the result atomically (as
        :meth:`keras_seran.SuperResolver.predict_file`); returns the summary dict."""
        return predict_to_file(
            self.predict_volume, input_path, output_path, overwrite, volume, **kwargs
        )

    @classmethod
    def from_pretrained(cls, **kwargs: Any) -> ThroughPlaneResolver:
        """The bundled through-plane network (:data:`keras_seran.registry.THROUGH_PLANE`);
        imports Keras."""
        from keras_seran.registry import THROUGH_PLANE

        return cls(THROUGH_PLANE.load(), **kwargs)

    def restore(
        self,
        volume: np.ndarray,
        axis: int,
        batch_size: int = 8,
        on_progress: Callable[[int], Any] | None = None,
        network: Any = None,
    ) -> np.ndarray:
        """Restore a normalised volume already interpolated along ``axis`` (float32, same shape):
        the two orientations of :meth:`restore_orientations`, fused (:func:`fuse_orientations`).
        """
        a, b = self.restore_orientations(volume, axis, batch_size, on_progress, network)
        return fuse_orientations(a, b, axis, self.fusion)

    def restore_orientations(
        self,
        volume: np.ndarray,
        axis: int,
        batch_size: int = 8,
        on_progress: Callable[[int], Any] | None = None,
        network: Any = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The two restorations of :meth:`restore`, before fusion (same shape as ``volume``).

        Reformats in planes through ``axis`` and each other axis, rows along ``axis``, through the
        network (``network``, default this resolver's) in batches; the network sees inputs
        clipped to ``NETWORK_RANGE`` and what lies beyond is added back to its output (a spike
        stays a spike and cannot disturb the rest of the image).
        """
        run = (network or self.network).run
        lo, hi = NETWORK_RANGE
        outs = []
        for other in (k for k in range(3) if k != axis):
            stack = np.moveaxis(volume, (other, axis), (0, 1))  # (n_other, n_axis, rest)
            out = np.empty(stack.shape, np.float32)
            for i in range(0, len(stack), batch_size):
                x = stack[i : i + batch_size].astype(np.float32)
                inside = np.clip(x, lo, hi)
                # what lies beyond the range bypasses the network, as in-plane (SuperResolver)
                out[i : i + batch_size] = np.asarray(run(inside[..., None]), np.float32)[..., 0] + (
                    x - inside
                )
                if on_progress is not None:
                    on_progress(len(x))
            outs.append(np.moveaxis(out, (0, 1), (other, axis)))
        return outs[0], outs[1]

    def predict_volume(
        self,
        img: Any,
        axis: int | None = None,
        target_spacing: float | None = None,
        batch_size: int = 8,
        progress: bool = False,
        output_dtype: Any = None,
        adapt_steps: int = 0,
    ) -> Any:
        """The isotropic volume of ``img`` (path, nibabel image or Volume) as a
        ``nibabel.Nifti1Image``: thick axis ``axis`` (default: the one with the largest voxels)
        resampled to ``target_spacing`` mm (default: the finer of the other two voxel sizes),
        field of view kept (:class:`IsotropicPlan`). InputDataError naming the file for a volume
        without a thick axis or a ratio above :data:`MAX_RATIO`, before any work.

        ``adapt_steps`` > 0: first fine-tune a copy of the network on the scan's own in-plane
        slices (:func:`keras_seran.inference.adapt.adapt`; needs a Keras model, imports Keras).
        """
        output_dtype = check_output_dtype(output_dtype)
        vol = as_volume(img)
        path = vol.path or None
        zooms = geometry.voxel_sizes(vol.affine)
        plan = plan_isotropic(vol.data.shape, zooms, axis, target_spacing, path)
        data = vol.data
        lo, hi = float(data.min()), float(data.max())
        check_integer_output(output_dtype, data, lo, hi, path)
        stats = fit_normalization(data, self.percentiles, clip=False, path=path)
        network = self.network
        if adapt_steps:
            from keras_seran.inference.adapt import adapt

            if not hasattr(self.model, "train_on_batch"):
                raise ValueError(
                    "adapt_steps needs a Keras through-plane model, not "
                    f"{type(self.model).__name__}"
                )
            adapted = adapt(
                self.model,
                stats.apply(data),
                plan.axis,
                plan.ratio,
                int(adapt_steps),
                progress=progress,
            )
            network = as_network(adapted, 1)
        fine = interpolate_axis(stats.apply(data), plan.axis, plan.n_out, self.interpolation)
        others = [k for k in range(3) if k != plan.axis]
        total = sum(fine.shape[k] for k in others)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(
                total=total,
                desc=f"{vol.path or 'volume'}: through-plane",
                unit="image",
                leave=False,
                dynamic_ncols=True,
            )
        try:
            y = self.restore(
                fine, plan.axis, batch_size, None if bar is None else bar.update, network=network
            )
        finally:
            if bar is not None:
                bar.close()
        y = stats.invert(y)
        if self.clip_output:
            np.clip(y, lo, hi, out=y)
        y = cast_output(y.astype(np.float32), output_dtype, vol.header, lo, hi, vol.scaled)
        return geometry.resampled_image(
            y,
            vol.affine,
            vol.header,
            plan.vox_map(),
            descrip=f"keras_seran through-plane {plan.spacing_in:g}->{plan.spacing_out:.3g} mm",
        )
