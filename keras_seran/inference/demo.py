"""``keras-seran demo``: the main job on the bundled real MR sample, with no arguments.

Takes the bundled real T1 slab (256 x 16 x 256, 1 mm, slices along axis 1), makes its low-resolution
version by bicubic downscaling of every axial slice (MATLAB ``imresize``; the paper's BI
degradation) into a NIfTI with the coarser geometry over the same field of view, super-resolves it
with :meth:`SuperResolver.predict_volume` and the bundled pretrained weights, and writes

    <out>/t1_slab_lr_x{s}.nii.gz      the LR input (float32)
    <out>/t1_slab_seran_x{s}.nii.gz   SERAN's estimate (same grid as the HR slab)
    <out>/t1_slab_compare_x{s}.png    middle slice: LR (nearest), bicubic, SERAN, HR with PSNR/SSIM
                                      (needs matplotlib, the [plot] extra; skipped without it)

PSNR/SSIM follow the evaluation protocol (:mod:`keras_seran.metrics`): intensities normalised by
the HR volume's robust range (0.5/99.5 percentiles, clipped to [0, 1]), data range 1, a border of
``s`` pixels cropped; the printed numbers are the mean over the 16 slices and the middle slice.
The demo overwrites its own three files in the output folder.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path
from typing import Any

from keras_seran.config import (
    BUNDLED_DEGRADATIONS,
    DEFAULT_SCALE,
    InferenceConfig,
    add_config_arguments,
)

SLICE_AXIS = 1
DEFAULT_OUT = "seran_demo"
#: the LR input is made by bicubic downscaling, so the bundled weights trained on it are used
DEGRADATION = BUNDLED_DEGRADATIONS[0]
STEPS = 4


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", default=DEFAULT_OUT, metavar="DIR", help=f"output folder (default ./{DEFAULT_OUT})"
    )
    add_config_arguments(
        parser,
        InferenceConfig,
        ["scale", "device"],
        overrides={"scale": {"default_text": str(DEFAULT_SCALE)}},
    )
    parser.add_argument(
        "--model",
        default=None,
        help="a .keras file, or a bundled name such as x3 or edsr-x2, instead "
        "of the bundled SERAN weights for --scale",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress lines and bar, only the results"
    )


def _display(img2d):
    """Slab slice (x: L, z: A) -> radiological display (anterior up, patient's left on the right)."""
    import numpy as np

    return np.asarray(img2d).T[::-1]


def run_demo(
    out_dir: str | Path = DEFAULT_OUT,
    scale: int = 2,
    model: Any = None,
    progress: bool = False,
    verbose: bool = False,
) -> dict:
    """Run the demo; returns paths (``lr``, ``sr``, ``png``, ``out_dir``) and metrics.

    ``model``: None for the bundled pretrained weights, a Keras model, a SuperResolver, or a
    ``.keras`` path (tests inject a small untrained model here). ``progress``: a line per step
    and a progress bar over the slices; ``verbose``: the files written and the scores. Metric
    keys: ``psnr_bicubic``,
    ``psnr_seran``, ``ssim_bicubic``, ``ssim_seran``, ``psnr_nearest`` (mean over the slices) and
    the same with ``_mid`` for the middle slice; plus ``seconds`` and ``scale``.
    """
    import numpy as np

    from keras_seran import files, samples
    from keras_seran.data.degrade import bicubic_downscale, bicubic_upscale, crop_to_multiple
    from keras_seran.data.io import load_volume
    from keras_seran.data.normalize import fit_normalization
    from keras_seran.errors import InputDataError
    from keras_seran.inference import geometry
    from keras_seran.inference.resolver import SuperResolver
    from keras_seran.metrics import psnr, ssim

    t0 = time.perf_counter()
    s = int(scale)
    step = _stepper(progress)
    step(f"loading {'the bundled SERAN weights' if model is None else 'the model'} (x{s})")
    if isinstance(model, SuperResolver):
        resolver = model
    elif model is None:
        resolver = SuperResolver.from_pretrained(s, degradation=DEGRADATION)
    elif isinstance(model, (str, Path)):
        resolver = SuperResolver.from_file(model, scale=s)
    else:
        resolver = SuperResolver(model, scale=s)
    if resolver.scale != s:
        raise InputDataError(
            model if isinstance(model, (str, Path)) else None,
            f"model upscales by {resolver.scale}, not by --scale {s}",
        )

    out = files.ensure_writable_dir(out_dir)
    lr_path = out / f"t1_slab_lr_x{s}.nii.gz"
    sr_path = out / f"t1_slab_seran_x{s}.nii.gz"
    png_path = out / f"t1_slab_compare_x{s}.png"

    step(f"making the LR input: bicubic x1/{s} of each slice of the bundled T1 slab")
    hr_vol = load_volume(samples.T1_AXIAL_SLAB)
    # HR slices (N, H, W) along the slice axis, cropped at the bottom/right to multiples of s
    hr_slices = crop_to_multiple(np.moveaxis(hr_vol.data, SLICE_AXIS, 0), s)
    hr = np.ascontiguousarray(np.moveaxis(hr_slices, 0, SLICE_AXIS))
    lr_slices = bicubic_downscale(hr_slices, s)  # (N, H/s, W/s)
    lr = np.ascontiguousarray(np.moveaxis(lr_slices, 0, SLICE_AXIS), dtype=np.float32)
    lr_img = geometry.downscaled_image(lr, hr_vol.affine, hr_vol.header, s, SLICE_AXIS)
    files.save_nifti(lr_img, lr_path)

    step(f"super-resolving {len(lr_slices)} slices of {_shape(lr_slices.shape[1:])} pixels")
    sr_img = resolver.predict_volume(lr_path, axis=SLICE_AXIS, progress=progress)
    files.save_nifti(sr_img, sr_path)
    sr_slices = np.moveaxis(np.asarray(sr_img.dataobj, dtype=np.float32), SLICE_AXIS, 0)
    bic_slices = bicubic_upscale(lr_slices, s)
    near_slices = np.repeat(np.repeat(lr_slices, s, axis=1), s, axis=2)

    step("scoring (PSNR/SSIM against the HR slab) and drawing the figure")
    stats = fit_normalization(hr, clip=True)
    ref = stats.apply(hr_slices)
    est = {
        "nearest": stats.apply(near_slices),
        "bicubic": stats.apply(bic_slices),
        "seran": stats.apply(sr_slices),
    }
    mid = hr_slices.shape[0] // 2
    result: dict[str, Any] = {
        "out_dir": str(out),
        "lr": str(lr_path),
        "sr": str(sr_path),
        "png": str(png_path),
        "scale": s,
        "hr_shape": tuple(hr.shape),
        "lr_shape": tuple(lr.shape),
        "sr_shape": tuple(sr_img.shape),
        "sr_affine_matches_hr": bool(np.allclose(sr_img.affine, hr_vol.affine, atol=1e-4)),
    }
    for name, e in est.items():
        p = [psnr(e[i], ref[i], 1.0, s) for i in range(len(ref))]
        result[f"psnr_{name}"] = float(np.mean(p))
        result[f"psnr_{name}_mid"] = float(p[mid])
        if name != "nearest":
            q = [ssim(e[i], ref[i], 1.0, s) for i in range(len(ref))]
            result[f"ssim_{name}"] = float(np.mean(q))
            result[f"ssim_{name}_mid"] = float(q[mid])
    result["ssim_nearest_mid"] = float(ssim(est["nearest"][mid], ref[mid], 1.0, s))

    if importlib.util.find_spec("matplotlib") is not None:
        _write_figure(png_path, s, ref[mid], est, mid, result)
    else:  # matplotlib is an extra ([plot]); the NIfTI outputs and the numbers do not need it
        result["png"] = None
    result["seconds"] = time.perf_counter() - t0
    if verbose:
        print(
            f"wrote {lr_path}  (LR input {_shape(lr.shape)}, voxel "
            f"{_zooms(lr_img.header.get_zooms())})"
        )
        print(
            f"wrote {sr_path}  (SERAN x{s} {_shape(sr_img.shape)}, voxel "
            f"{_zooms(sr_img.header.get_zooms())})"
        )
        if result["png"] is not None:
            print(f"wrote {png_path}  (middle slice: LR, bicubic, SERAN, HR)")
        else:
            print(
                "no before/after PNG: matplotlib is not installed (pip install 'keras-seran[plot]')"
            )
        print(
            f"PSNR / SSIM over {len(ref)} slices (border {s}):  bicubic "
            f"{result['psnr_bicubic']:.2f} dB / {result['ssim_bicubic']:.4f}   SERAN "
            f"{result['psnr_seran']:.2f} dB / {result['ssim_seran']:.4f}   "
            f"({result['psnr_seran'] - result['psnr_bicubic']:+.2f} dB)"
        )
        print(f"done in {result['seconds']:.1f} s")
    return result


def _stepper(enabled: bool):
    """``step(text)`` printing "[k/STEPS] text" when ``enabled``, else nothing."""
    done = [0]

    def step(text: str) -> None:
        done[0] += 1
        if enabled:
            print(f"[{done[0]}/{STEPS}] {text}", flush=True)

    return step


def _shape(shape) -> str:
    return "x".join(str(int(n)) for n in shape)


def _zooms(z) -> str:
    return "x".join(f"{float(v):g}" for v in z[:3]) + " mm"


def _write_figure(path: Path, s: int, hr_mid, est: dict, mid: int, r: dict) -> None:
    # A bare Figure renders with the Agg canvas: no pyplot, no GUI backend, no global state.
    from matplotlib.figure import Figure

    from keras_seran import files

    panels = [
        (f"LR x1/{s} (nearest)", est["nearest"][mid], r["psnr_nearest_mid"], r["ssim_nearest_mid"]),
        ("bicubic", est["bicubic"][mid], r["psnr_bicubic_mid"], r["ssim_bicubic_mid"]),
        ("SERAN", est["seran"][mid], r["psnr_seran_mid"], r["ssim_seran_mid"]),
        ("HR (reference)", hr_mid, None, None),
    ]
    fig = Figure(figsize=(16, 4.8), layout="constrained")
    axes = fig.subplots(1, 4)
    for ax, (title, img, p, q) in zip(axes, panels):
        ax.imshow(_display(img), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        caption = title if p is None else f"{title}\nPSNR {p:.2f} dB, SSIM {q:.4f}"
        ax.set_title(caption, fontsize=11)
        ax.axis("off")
    fig.suptitle(
        f"SERAN x{s} on a real T1 slice (bundled sample, slice {mid} of the slab)", fontsize=12
    )
    files.save_figure(fig, path, dpi=100)


def run(args: argparse.Namespace) -> int:
    from keras_seran.devices import select_device

    select_device(args.device or InferenceConfig.device)
    run_demo(
        args.out,
        args.scale or DEFAULT_SCALE,
        model=args.model,
        progress=not args.no_progress,
        verbose=True,
    )
    return 0
