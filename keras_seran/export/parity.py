"""Parity of exported models with the Keras model, on real MR slices (numpy; no TensorFlow).

Every exported format is a *runner*: a callable mapping an LR batch (1, h, w, 1) float32 (the
input contract's normalised units) to the SR batch (1, h*s, w*s, 1). :func:`parity_report` runs
the Keras reference and each runner on the same real MR slices and reports, per format:

    max_abs_diff / mean_abs_diff   of the raw outputs against Keras (over all slices)
    psnr                           of the exported output against the HR slice (mean over slices)
    psnr_drop                      Keras PSNR - exported PSNR (dB; positive = worse)

plus the PSNR of Keras and of bicubic upscaling (the floor an SR model must beat). PSNR is the
package's protocol (:func:`keras_seran.metrics.psnr`: data range 1, a border of ``scale`` pixels
cropped) on outputs clipped to ``NETWORK_RANGE``, the range of the input contract.

Slices come from a NIfTI volume (default: the bundled real T1 slab, axis 1 is its slice axis),
normalised per volume exactly as the device must (and :class:`~keras_seran.SuperResolver` does):
robust percentiles to [0, 1] for tissue, clipped to ``NETWORK_RANGE`` = [-0.5, 1.5], so the bright
structures above the 99.5th percentile are kept. int8 calibration sees the same range as the
device, and parity measures it there. LR inputs are the bicubic (MATLAB ``imresize``) downscale
of the HR slice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from keras_seran.contract import DEFAULT_PERCENTILES, NETWORK_RANGE
from keras_seran.data.degrade import bicubic_upscale, lr_hr_pairs
from keras_seran.data.io import load_any
from keras_seran.data.normalize import normalize
from keras_seran.errors import InputDataError

Runner = Callable[[np.ndarray], np.ndarray]

#: Slices of the bundled slab (axis 1, 16 slices) used for int8 calibration and for parity. They do
#: not overlap, so parity is measured on slices the calibration never saw.
CALIBRATION_SLICES: tuple[int, ...] = tuple(range(0, 12))
PARITY_SLICES: tuple[int, ...] = (12, 13, 14, 15)
SLAB_SLICE_AXIS = 1

#: Acceptance per precision class. Float formats must match Keras pixel for pixel; reduced
#: precision ones must stay close on average (``mean_abs_diff``, or ``max_abs_diff`` for fp16
#: weights) *and* keep the PSNR within ``psnr_drop`` dB of Keras either way (|Keras - export|: a
#: format that scores much better is as suspect as one that scores worse). Measured on the
#: bundled x2 / x3 / x4 weights (contract-range slices): fp16 weights max 6e-4 to 1.5e-3;
#: dynamic-range int8 mean 1.9e-3 to 2.4e-3, drop <= 0.02 dB; full int8: LiteRT mean 4.5e-3 to
#: 5.2e-3, drop 0.10 to 0.18 dB, ONNX Q/DQ with TensorRT's placement mean 4.3e-3 to 4.9e-3, drop
#: 0.09 to 0.14 dB on onnxruntime (bench/bench_export.py --int8). ``float16_compute``: TensorRT
#: fp16 kernels and the float16 ONNX (max 1.4e-3 at x2).
#: Full int8 is judged by how much it loses, not by which network it is: a different network
#: of equal quality (the matched EDSR for SERAN) also differs from Keras by about 5e-3 on
#: average, so only the float formats pin the network itself.
TOLERANCES: dict[str, dict[str, float]] = {
    "float32": {"max_abs_diff": 1e-4},
    "float16": {"max_abs_diff": 5e-3, "psnr_drop": 0.05},  # LiteRT: fp16 weights
    "float16_compute": {"mean_abs_diff": 2e-3, "psnr_drop": 0.1},  # fp16 kernels
    "dynamic_int8": {"mean_abs_diff": 5e-3, "psnr_drop": 0.1},
    "int8": {"mean_abs_diff": 1e-2, "psnr_drop": 0.3},
}


# --------------------------------------------------------------------------------------------
# real MR slices


def load_mr_slices(
    source: str | Path | None = None, axis: int | None = None, indices: Iterable[int] | None = None
) -> np.ndarray:
    """Slices of a NIfTI volume as (N, H, W) float32, normalised as the input contract says.

    Robust percentile normalisation per volume (tissue in [0, 1]), clipped to ``NETWORK_RANGE``.

    Args:
        source: a .nii/.nii.gz file (a 2D image is one slice); default the bundled real T1 slab
            (256 x 16 x 256). Read by :func:`keras_seran.data.io.load_any`, so every bad file
            gets the data package's error naming it.
        axis: slice axis (default 1 for the bundled slab, 2 for any other volume).
        indices: which slices along ``axis`` (default all).
    """
    from keras_seran import samples

    path = Path(source) if source is not None else samples.T1_AXIAL_SLAB
    if axis is None:
        axis = SLAB_SLICE_AXIS if source is None else 2
    vol = load_any(path)
    if vol.ndim == 2:
        vol = vol[:, :, None]
        axis = 2
    if not -vol.ndim <= int(axis) < vol.ndim:
        raise InputDataError(
            path, f"slice axis {axis} out of range for a {vol.ndim}D volume of shape {vol.shape}"
        )
    vol = np.clip(normalize(vol, DEFAULT_PERCENTILES, clip=False, path=path)[0], *NETWORK_RANGE)
    slices = np.moveaxis(vol, axis, 0)
    if indices is not None:
        idx = [int(i) for i in indices]
        bad = [i for i in idx if not -len(slices) <= i < len(slices)]
        if bad:
            raise InputDataError(
                path, f"slice indices {bad} out of range for {len(slices)} slices along axis {axis}"
            )
        slices = slices[idx]
    return np.ascontiguousarray(slices, dtype=np.float32)


def fit_to_size(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Centre-crop and/or reflect-pad the two leading axes of ``img`` (H, W, ...) to ``size``."""
    out = np.asarray(img)
    th, tw = (int(v) for v in size)
    for axis, target in ((0, th), (1, tw)):
        n = out.shape[axis]
        if n > target:
            start = (n - target) // 2
            out = np.take(out, np.arange(start, start + target), axis=axis)
        elif n < target:
            before = (target - n) // 2
            pad = [(0, 0)] * out.ndim
            pad[axis] = (before, target - n - before)
            out = np.pad(out, pad, mode="reflect" if n > 1 and target - n < n else "edge")
    return out


def slice_pairs(
    slices: np.ndarray, scale: int, lr_size: tuple[int, int] | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(LR (1, h, w, 1), HR (1, h*s, w*s, 1)) float32 pairs from normalised HR slices (N, H, W).

    With ``lr_size`` the HR slice is first centre-cropped/padded to ``lr_size * scale`` (what a
    fixed-size exported model needs); otherwise HR is cropped to a multiple of ``scale``.
    """
    hrs = np.asarray(slices, np.float32)
    if lr_size is not None:
        hrs = [fit_to_size(hr, (lr_size[0] * scale, lr_size[1] * scale)) for hr in hrs]
    lrs, hrs = lr_hr_pairs(hrs, scale, "bicubic")
    return [(lr[None, :, :, None], hr[None, :, :, None]) for lr, hr in zip(lrs, hrs)]


def calibration_inputs(
    scale: int,
    source: str | Path | None = None,
    indices: Iterable[int] | None = None,
    lr_size: tuple[int, int] | None = None,
    axis: int | None = None,
) -> list[np.ndarray]:
    """LR inputs (1, h, w, 1) for int8 calibration (default: the bundled slab's first 12 slices)."""
    if indices is None and source is None:
        indices = CALIBRATION_SLICES
    slices = load_mr_slices(source, axis=axis, indices=indices)
    return [lr for lr, _ in slice_pairs(slices, scale, lr_size)]


def parity_pairs(
    scale: int,
    source: str | Path | None = None,
    indices: Iterable[int] | None = None,
    lr_size: tuple[int, int] | None = None,
    axis: int | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(LR, HR) pairs for parity: by default the bundled slab's last 4 slices (held out)."""
    if indices is None and source is None:
        indices = PARITY_SLICES
    return slice_pairs(load_mr_slices(source, axis=axis, indices=indices), scale, lr_size)


# --------------------------------------------------------------------------------------------
# the report


def _psnr(est: np.ndarray, ref: np.ndarray, scale: int) -> float:
    from keras_seran.metrics import psnr

    return psnr(np.clip(est, *NETWORK_RANGE), ref, data_range=1.0, border=scale)


def check_tolerance(entry: dict, precision: str) -> dict:
    """Adds ``tolerance`` and ``ok`` to a format's parity entry for its precision class.

    Differences must be at most their bound; the PSNR drop is bounded in absolute value.
    """
    tol = TOLERANCES.get(precision, {})
    ok = "error" not in entry
    for key, bound in tol.items():
        if ok:
            value = abs(entry[key]) if key == "psnr_drop" else entry[key]
            ok = value <= bound
    return {**entry, "precision": precision, "tolerance": tol, "ok": bool(ok)}


def parity_report(
    reference: Runner,
    runners: Mapping[str, Runner],
    pairs: Sequence[tuple[np.ndarray, np.ndarray]],
    scale: int,
    precisions: Mapping[str, str] | None = None,
) -> dict:
    """Compare every runner with ``reference`` (the Keras model) on ``pairs`` of real MR slices.

    Args:
        reference: the Keras model as a runner.
        runners: name -> runner of each exported format (e.g. ``"tflite/int8"``).
        pairs: (LR (1,h,w,1), HR (1,h*s,w*s,1)) from :func:`parity_pairs`.
        scale: the SR factor (PSNR border).
        precisions: name -> precision class (a key of :data:`TOLERANCES`) to judge each format.

    Returns a dict ``{"slices", "lr_shape", "border", "keras": {"psnr"}, "bicubic": {"psnr"},
    "formats": {name: {"max_abs_diff", "mean_abs_diff", "psnr", "psnr_drop", "precision",
    "tolerance", "ok"}}}``; a runner that raises gets ``{"error": message, "ok": False}``.
    """
    if not pairs:
        raise ValueError("parity needs at least one (LR, HR) pair")
    precisions = precisions or {}
    refs = [np.asarray(reference(lr), np.float32) for lr, _ in pairs]
    keras_psnr = float(np.mean([_psnr(r, hr, scale) for r, (_, hr) in zip(refs, pairs)]))
    bicubic_psnr = float(
        np.mean(
            [
                _psnr(bicubic_upscale(lr[0, :, :, 0], scale), hr[0, :, :, 0], scale)
                for lr, hr in pairs
            ]
        )
    )
    formats: dict[str, dict] = {}
    for name, run in runners.items():
        try:
            outs = [np.asarray(run(lr), np.float32) for lr, _ in pairs]
            for o, r in zip(outs, refs):
                if o.shape != r.shape:
                    raise ValueError(f"output shape {o.shape} != Keras output shape {r.shape}")
            diffs = np.concatenate([np.abs(o - r).ravel() for o, r in zip(outs, refs)])
            p = float(np.mean([_psnr(o, hr, scale) for o, (_, hr) in zip(outs, pairs)]))
            entry = {
                "max_abs_diff": float(diffs.max()),
                "mean_abs_diff": float(diffs.mean()),
                "psnr": p,
                "psnr_drop": keras_psnr - p,
            }
        except Exception as exc:  # a broken artifact is reported, not fatal to the whole bundle
            entry = {"error": f"{type(exc).__name__}: {exc}"}
        formats[name] = check_tolerance(entry, precisions.get(name, ""))
    return {
        "slices": len(pairs),
        "lr_shape": list(pairs[0][0].shape),
        "hr_shape": list(pairs[0][1].shape),
        "border": int(scale),
        "keras": {"psnr": keras_psnr},
        "bicubic": {"psnr": bicubic_psnr},
        "formats": formats,
    }


def parity_markdown(report: dict) -> str:
    """The parity report as a Markdown table (written to parity.md and printed by the CLI)."""
    lines = [
        f"Parity on {report['slices']} real MR slices (LR {tuple(report['lr_shape'])} -> "
        f"HR {tuple(report['hr_shape'])}), PSNR with a {report['border']}-pixel border.",
        "",
        f"Keras PSNR {report['keras']['psnr']:.3f} dB; bicubic {report['bicubic']['psnr']:.3f} dB.",
        "",
        "| format | precision | max abs diff | mean abs diff | PSNR (dB) | drop vs Keras (dB) | "
        "tolerance | ok |",
        "|---|---|---:|---:|---:|---:|---|:---:|",
    ]
    for name, e in report["formats"].items():
        tol = (
            ", ".join(
                f"|{k}| <= {v:g}" if k == "psnr_drop" else f"{k} <= {v:g}"
                for k, v in e.get("tolerance", {}).items()
            )
            or "-"
        )
        if "error" in e:
            lines.append(
                f"| {name} | {e.get('precision') or '-'} | error: {e['error']} | | | | {tol} | no |"
            )
            continue
        lines.append(
            f"| {name} | {e.get('precision') or '-'} | {e['max_abs_diff']:.2e} | "
            f"{e['mean_abs_diff']:.2e} | {e['psnr']:.3f} | {e['psnr_drop']:+.3f} | "
            f"{tol} | {'yes' if e['ok'] else 'NO'} |"
        )
    return "\n".join(lines) + "\n"
