"""Through-plane quality on the held-out slab: thick-slice stacks vs the 1 mm truth (needs
../shared/data).

The real 1 mm T1 volume of ``train_pretrained.py``; only its held-out slab (axis-1 slices
96-127, never seen in training, with a gap of 8 on each side) is used. The slab, normalised as
in training, is acquired as thick slices along one axis (``--axes``: 2 = coronal stack, slices
A-P; 0 = sagittal stack, slices L-R) of ``--ratios`` mm (boxcar or Gaussian profile of FWHM =
thickness, block-centred, no gap), optionally with Rician noise, and brought back to 1 mm by

- cubic: the cubic kernel along the slice axis (what scanners and viewers show for reformats),
- sinc: zero-filling along the slice axis (band-limited interpolation),
- SERAN: the through-plane network on the cubic grid, both orientations fused by their mean or
  in Fourier space (``--fusions``), and after ``--adapt-steps`` of self-supervised adaptation
  on the stack's own in-plane slices (SMORE-style).

Scores against the truth: PSNR over the head (truth > 5 % of the range, the 3D mask) and the
mean SSIM of the axial slices (the planes that contain the thick axis), both on the normalised
range (peak 1).

    python scripts/eval_throughplane.py                       # table on stdout
    python scripts/eval_throughplane.py --csv docs/throughplane.csv --markdown docs/tp.md
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from train_pretrained import GAP, HELD_OUT, VOLUME  # noqa: E402

HEAD = 0.05  # head mask: truth above this fraction of the normalised range


def held_out_slab() -> np.ndarray:
    """The normalised held-out slab (256, 32, 256), every slice (training validates on ::2)."""
    from keras_seran.data.io import load_volume
    from keras_seran.data.normalize import fit_normalization

    vol = load_volume(VOLUME).data
    vol = fit_normalization(vol).apply(vol)
    return np.ascontiguousarray(vol[:, HELD_OUT[0] : HELD_OUT[1], :], np.float32)


def acquire(truth: np.ndarray, axis: int, ratio: int, profile: str, sigma: float, seed: int):
    """(thick stack, truth cropped to whole slices) along ``axis``."""
    from keras_seran.data.degrade import add_rician_noise
    from keras_seran.data.slice_profile import block_centres, profile_matrix

    n = truth.shape[axis] - truth.shape[axis] % ratio
    truth = np.take(truth, np.arange(n), axis=axis)
    a = profile_matrix(n, block_centres(n // ratio, ratio), ratio, profile)
    thick = np.moveaxis(np.tensordot(a, np.moveaxis(truth, axis, 0), axes=1), 0, axis)
    if sigma:
        thick = add_rician_noise(thick, sigma, np.random.default_rng(seed))
    return thick.astype(np.float32), truth


def scores(estimate: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(PSNR over the head, mean SSIM of the axial slices), peak 1."""
    from keras_seran.metrics import ssim

    head = truth > HEAD
    mse = float(np.mean((np.clip(estimate, 0, None)[head] - truth[head]) ** 2))
    s = np.mean([ssim(estimate[:, k, :], truth[:, k, :]) for k in range(truth.shape[1])])
    return 10 * np.log10(1.0 / mse), float(s)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ratios", type=int, nargs="+", default=[3, 4])
    p.add_argument("--profiles", nargs="+", default=["boxcar", "gaussian"])
    p.add_argument("--axes", type=int, nargs="+", default=[2, 0])
    p.add_argument("--fusions", nargs="+", default=["mean", "fourier"])
    p.add_argument("--noise", type=float, default=0.0, help="Rician sigma (fraction of range)")
    p.add_argument("--adapt-steps", type=int, default=300, help="0: no adapted rows")
    p.add_argument("--weights", default=None, help="a .keras / .weights.h5 (default: bundled)")
    p.add_argument("--csv", type=Path)
    p.add_argument("--markdown", type=Path)
    p.add_argument("--from-csv", type=Path, help="only print the table of an earlier --csv")
    args = p.parse_args(argv)
    if args.from_csv:
        with open(args.from_csv, newline="") as f:
            table = to_markdown(list(csv.DictReader(f)))
        if args.markdown:
            args.markdown.write_text(table)
        print(table)
        return 0
    if not VOLUME.exists():
        print(f"{VOLUME}: missing; this script needs ../shared/data", file=sys.stderr)
        return 2

    import keras

    from keras_seran.inference.adapt import adapt
    from keras_seran.inference.network import as_network
    from keras_seran.inference.throughplane import (
        ThroughPlaneResolver,
        fuse_orientations,
        interpolate_axis,
    )
    from keras_seran.registry import THROUGH_PLANE

    if args.weights is None:
        model = THROUGH_PLANE.load()
    elif args.weights.endswith(".keras"):
        model = keras.saving.load_model(args.weights, compile=False)
    else:
        model = THROUGH_PLANE.build()
        model.load_weights(args.weights)
    resolver = ThroughPlaneResolver(model)
    slab = held_out_slab()
    rows = []

    def add(axis, ratio, profile, method, est, truth, base, seconds):
        psnr, s = scores(est, truth)
        rows.append(
            {
                "stack": {2: "coronal", 0: "sagittal", 1: "axial"}[axis],
                "thickness_mm": ratio,
                "profile": profile,
                "noise": args.noise,
                "method": method,
                "psnr": round(psnr, 3),
                "ssim": round(s, 4),
                "psnr_vs_cubic": round(psnr - base, 3) if base is not None else 0.0,
                "seconds": round(seconds, 1),
            }
        )
        r = rows[-1]
        print(
            f"{r['stack']:8s} {ratio} mm {profile:8s} {method:22s} PSNR {psnr:6.2f} "
            f"({r['psnr_vs_cubic']:+.2f})  SSIM {s:.4f}  {seconds:5.1f} s",
            flush=True,
        )
        return psnr

    for axis in args.axes:
        for ratio in args.ratios:
            for profile in args.profiles:
                thick, truth = acquire(slab, axis, ratio, profile, args.noise, seed=ratio)
                n = truth.shape[axis]
                t = time.time()
                cubic = interpolate_axis(thick, axis, n, "cubic")
                base = add(axis, ratio, profile, "cubic", cubic, truth, None, time.time() - t)
                t = time.time()
                sinc = interpolate_axis(thick, axis, n, "sinc")
                add(axis, ratio, profile, "sinc (zero-filling)", sinc, truth, base, time.time() - t)
                nets = [("SERAN", None)]
                if args.adapt_steps:
                    nets.append((f"SERAN adapted {args.adapt_steps}", args.adapt_steps))
                for label, steps in nets:
                    t = time.time()
                    net = None
                    if steps:
                        adapted = adapt(model, thick, axis, float(ratio), steps, progress=False)
                        net = as_network(adapted, 1)
                    a, b = resolver.restore_orientations(cubic, axis, network=net)
                    spent = time.time() - t
                    for fusion in args.fusions:
                        est = fuse_orientations(a, b, axis, fusion)
                        add(axis, ratio, profile, f"{label}, {fusion}", est, truth, base, spent)

    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    if args.markdown:
        args.markdown.write_text(to_markdown(rows))
    print(to_markdown(rows))
    return 0


def to_markdown(rows: list[dict]) -> str:
    """One line per stack: cubic's PSNR / SSIM, then each method's PSNR gain over cubic and
    SSIM."""
    methods = list(dict.fromkeys(r["method"] for r in rows if r["method"] != "cubic"))
    lines = [
        f"Held-out slab of the real 1 mm T1 ({VOLUME.name}, axis-1 slices "
        f"{HELD_OUT[0]}-{HELD_OUT[1] - 1}, {GAP}-slice gap to training): PSNR over the head "
        "(dB) and mean SSIM of the axial slices against the truth; each method as its PSNR "
        "gain over cubic / its SSIM.",
        "",
        "| stack | slices | noise | cubic | " + " | ".join(methods) + " |",
        "|---|---|---:|---:|" + "---:|" * len(methods),
    ]
    stacks = dict.fromkeys((r["stack"], r["thickness_mm"], r["profile"], r["noise"]) for r in rows)
    for stack, mm, profile, noise in stacks:
        mine = {
            r["method"]: r
            for r in rows
            if (r["stack"], r["thickness_mm"], r["profile"], r["noise"])
            == (stack, mm, profile, noise)
        }
        c = mine["cubic"]
        cells = [
            f"{float(mine[m]['psnr_vs_cubic']):+.2f} / {float(mine[m]['ssim']):.3f}"
            if m in mine
            else "-"
            for m in methods
        ]
        lines.append(
            f"| {stack} | {mm} mm {profile} | {float(noise):g} | "
            f"{float(c['psnr']):.2f} / {float(c['ssim']):.3f} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
