"""Make the README's before/after picture from real MR data: docs/images/before_after_x2.png.

Axial slice of the bundled real T1 slab (``keras_seran.samples.T1_AXIAL_SLAB``, held out of the
bundled weights' training), normalised to [0, 1], downscaled by MATLAB-bicubic (the paper's BI
degradation); four panels: LR (shown at HR size, nearest neighbour), bicubic, SERAN (the bundled
pretrained weights), HR, each with its PSNR/SSIM (border of ``scale`` pixels cropped) and a zoomed
inset of the same region.

    python scripts/make_figures.py                      # bundled SERAN x2 -> docs/images/before_after_x2.png
    python scripts/make_figures.py --scale 4            # -> docs/images/before_after_x4.png
    python scripts/make_figures.py --model runs/x2/best.keras --out /tmp/mine.png
    python scripts/make_figures.py --figure kspace      # -> docs/images/kspace_x2.png
    python scripts/make_figures.py --figure anatomical  # -> docs/images/anatomical_x2.png

``--figure kspace``: the same slice acquired as a scanner would (k-space truncation, Rician noise
of 1 % of the range): LR, zero-filling (what the console shows), SERAN trained on bicubic, SERAN
trained on k-space truncation, HR. ``--figure anatomical``: a real 2 mm T1 from outside the
project (nibabel's test file ``anatomical.nii``, no HR exists): zero-filling, SERAN trained on
bicubic, SERAN trained on k-space truncation, with the share of overshooting pixels
(:func:`keras_seran.metrics.overshoot_fraction`).

Without bundled weights for the scale (and no ``--model``) it exits with status 2 and says how to
get them.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAX_BYTES = 300_000


def _panels(model, scale: int, slice_index: int, label: str = "SERAN"):
    import numpy as np

    from keras_seran import samples
    from keras_seran.data import (
        bicubic_downscale,
        bicubic_upscale,
        crop_to_multiple,
        load_volume,
        normalize,
    )
    from keras_seran.metrics import psnr, ssim

    slab, _ = normalize(load_volume(samples.T1_AXIAL_SLAB).data)  # (256, 16, 256), slice axis 1
    if not 0 <= slice_index < slab.shape[1]:
        raise SystemExit(f"make_figures: --slice must be in 0..{slab.shape[1] - 1}")
    hr = np.ascontiguousarray(crop_to_multiple(slab[:, slice_index, :], scale), dtype=np.float32)
    lr = bicubic_downscale(hr, scale)
    bic = np.clip(bicubic_upscale(lr, scale), 0, 1)
    sr = np.clip(model.predict_on_batch(lr[None, ..., None])[0, ..., 0], 0, 1)

    def caption(name, img):
        return f"{name}\n{psnr(img, hr, 1.0, scale):.2f} dB / SSIM {ssim(img, hr, 1.0, scale):.3f}"

    view = np.rot90  # radiological display orientation
    return [
        (f"LR ({lr.shape[0]}×{lr.shape[1]}, input)", view(np.kron(lr, np.ones((scale, scale))))),
        (caption("bicubic", bic), view(bic)),
        (caption(label, sr), view(sr)),
        (f"HR ({hr.shape[0]}×{hr.shape[1]}, reference)", view(hr)),
    ]


def _kspace_panels(scale: int, slice_index: int, sigma: float = 0.01):
    import numpy as np

    from keras_seran import registry, samples
    from keras_seran.data import crop_to_multiple, load_volume, normalize
    from keras_seran.data.degrade import add_rician_noise, kspace_downscale, kspace_upscale
    from keras_seran.metrics import psnr, ssim

    slab, _ = normalize(load_volume(samples.T1_AXIAL_SLAB).data)
    hr = np.ascontiguousarray(crop_to_multiple(slab[:, slice_index, :], scale), dtype=np.float32)
    lr = add_rician_noise(kspace_downscale(hr, scale), sigma, rng=0)

    def run(degradation):
        model = registry.Bundled("seran", scale, degradation=degradation).load()
        return np.clip(model.predict_on_batch(lr[None, ..., None])[0, ..., 0], 0, 1)

    def caption(name, img):
        return f"{name}\n{psnr(img, hr, 1.0, scale):.2f} dB / SSIM {ssim(img, hr, 1.0, scale):.3f}"

    view = np.rot90
    zf = np.clip(kspace_upscale(lr, scale), 0, 1)
    return [
        (
            f"LR: k-space {lr.shape[0]}×{lr.shape[1]},\nRician σ {100 * sigma:g} %",
            view(np.kron(lr, np.ones((scale, scale)))),
        ),
        (caption("zero-filling (console)", zf), view(zf)),
        (caption("SERAN, bicubic-trained", run("bicubic")), view(run("bicubic"))),
        (caption("SERAN, k-space-trained", run("kspace")), view(run("kspace"))),
        (f"HR ({hr.shape[0]}×{hr.shape[1]}, reference)", view(hr)),
    ]


def _anatomical_panels(scale: int = 2):
    import nibabel as nib
    import numpy as np
    from nibabel.testing import data_path

    from keras_seran import SuperResolver
    from keras_seran.data.degrade import kspace_upscale
    from keras_seran.metrics import overshoot_fraction

    img = nib.load(os.path.join(data_path, "anatomical.nii"))
    k = img.shape[2] // 2
    lr = np.asarray(img.dataobj, np.float32)
    lo, hi = np.percentile(lr, [0.5, 99.5])

    def show(a):
        return np.rot90(np.clip((a - lo) / (hi - lo), 0, 1))

    panels = []
    zf = kspace_upscale(lr[:, :, k], scale)
    panels.append(
        (
            f"zero-filling, overshoot\n{100 * overshoot_fraction(lr[:, :, k], zf, scale):.1f} %"
            " of pixels",
            show(zf),
        )
    )
    for degradation in ("bicubic", "kspace"):
        sr = SuperResolver.from_pretrained(scale, degradation=degradation).predict_volume(img)
        y = np.asarray(sr.dataobj, np.float32)
        frac = overshoot_fraction(np.moveaxis(lr, 2, 0), np.moveaxis(y, 2, 0), scale)
        panels.append(
            (
                f"SERAN {degradation}-trained,\novershoot {100 * frac:.1f} % (volume)",
                show(y[:, :, k]),
            )
        )
    return panels


def _throughplane_simulated_panels(model, ratio: int = 4):
    """A 4 mm coronal stack made of the held-out slab of the real 1 mm T1 (../shared/data), seen
    in an axial plane (which contains the thick axis): thick slices, cubic, SERAN, truth."""
    sys.path.insert(0, str(REPO / "scripts"))
    import numpy as np
    from eval_throughplane import acquire, held_out_slab, scores

    from keras_seran.inference.throughplane import ThroughPlaneResolver, interpolate_axis

    slab = held_out_slab()  # (256, 32, 256): L-R, I-S, A-P
    thick, truth = acquire(slab, 2, ratio, "boxcar", 0.0, seed=ratio)
    cubic = interpolate_axis(thick, 2, truth.shape[2], "cubic")
    sr = ThroughPlaneResolver(model).restore(cubic, 2)
    k = truth.shape[1] // 2

    def caption(name, vol):
        psnr, ssim = scores(vol, truth)
        return f"{name}\n{psnr:.2f} dB / SSIM {ssim:.3f} (head)"

    def view(vol):
        return np.clip(np.rot90(vol[:, k, :]), 0, 1)

    return [
        (f"{ratio} mm coronal slices (input)", view(np.repeat(thick, ratio, axis=2))),
        (caption("cubic along A-P", cubic), view(cubic)),
        (caption("SERAN through-plane", sr), view(sr)),
        ("1 mm truth (held out)", view(truth)),
    ]


def _throughplane_sample_panels(model):
    """The bundled real 2x2x3 mm T1 (3 mm coronal slices), an axial reformat: the slices as
    acquired, cubic to 1 mm isotropic, SERAN (in-plane x2 and through-plane 3 -> 1 mm)."""
    import numpy as np

    from keras_seran import SuperResolver, samples
    from keras_seran.data import load_volume
    from keras_seran.inference.throughplane import ThroughPlaneResolver, interpolate_axis

    vol = load_volume(samples.T1_LOWRES).data  # (128, 128, 62): L-R, S-I, A-P (slice axis)
    lo, hi = np.percentile(vol, [0.5, 99.5])
    inplane = SuperResolver.from_pretrained(2)
    sr_inplane = np.asarray(inplane.predict_volume(samples.T1_LOWRES).dataobj, np.float32)
    n = vol.shape[2] * 3
    cubic = interpolate_axis(
        interpolate_axis(interpolate_axis(vol, 0, 256, "cubic"), 1, 256, "cubic"), 2, n, "cubic"
    )
    tp = ThroughPlaneResolver(model)
    norm = (sr_inplane - lo) / (hi - lo)
    sr = tp.restore(interpolate_axis(norm, 2, n, "cubic"), 2)
    j = 128  # an axial plane through the middle of the head

    def view(v):
        return np.clip(np.rot90(v[:, j, :]), 0, 1)

    return [
        (
            "3 mm coronal slices as acquired",
            view(np.repeat(np.repeat((vol - lo) / (hi - lo), 2, 0), 2, 1).repeat(3, 2)),
        ),
        ("cubic to 1 mm isotropic", view((cubic - lo) / (hi - lo))),
        ("SERAN: in-plane ×2, then\nthrough-plane 3 -> 1 mm", view(sr)),
    ]


def render(
    panels, scale: int, out: Path, zoom=(0.30, 0.28, 0.22), heading: str | None = None
) -> int:
    """Draw the panels with a zoomed inset each; write a small PNG; return its size in bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle
    from PIL import Image

    h, w = panels[0][1].shape
    y0, x0 = int(zoom[0] * h), int(zoom[1] * w)
    size = int(zoom[2] * h)
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 4.0), dpi=100)
    for ax, (title, img) in zip(axes, panels):
        ax.imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.add_patch(Rectangle((x0, y0), size, size, fill=False, ec="#ffd400", lw=1.2))
        inset = ax.inset_axes([0.56, 0.0, 0.44, 0.44])
        inset.imshow(
            img[y0 : y0 + size, x0 : x0 + size],
            cmap="gray",
            vmin=0,
            vmax=1,
            interpolation="nearest",
        )
        inset.set_xticks([])
        inset.set_yticks([])
        for spine in inset.spines.values():
            spine.set_edgecolor("#ffd400")
            spine.set_linewidth(1.2)
        ax.set_title(title, fontsize=9.5)
        ax.axis("off")
    fig.suptitle(
        heading or f"×{scale} super-resolution of a real T1 slice (held out of training)",
        fontsize=10.5,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.94), w_pad=0.4)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    # Greyscale content: a 64-colour palette keeps the file small with no visible change.
    image = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    image = image.quantize(colors=64, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out, format="PNG", optimize=True)
    return out.stat().st_size


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--figure",
        choices=["bicubic", "kspace", "anatomical", "throughplane"],
        default="bicubic",
        help="which picture (see the module docstring)",
    )
    p.add_argument("--scale", type=int, default=2, choices=[2, 3, 4])
    p.add_argument(
        "--model",
        default=None,
        help="a .keras file instead of the bundled pretrained SERAN for --scale",
    )
    p.add_argument("--slice", type=int, default=8, help="axial slice of the bundled slab (0-15)")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="PNG to write (default docs/images/before_after_x{scale}.png)",
    )
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    out = args.out or REPO / "docs" / "images" / f"before_after_x{args.scale}.png"

    from keras_seran import registry

    if args.figure == "throughplane":
        model = (
            registry.THROUGH_PLANE.load() if args.model is None else registry.load_model(args.model)
        )
        for name, panels, title in (
            (
                "throughplane_simulated.png",
                _throughplane_simulated_panels(model),
                "Through-plane: a 4 mm coronal stack of held-out real T1, axial view",
            ),
            (
                "throughplane_sample.png",
                _throughplane_sample_panels(model),
                "Through-plane on the bundled real 2×2×3 mm T1 (axial reformat, no reference)",
            ),
        ):
            out = (args.out or REPO / "docs" / "images") / name
            size = render(panels, 1, out, heading=title)
            print(f"wrote {out} ({size / 1024:.0f} KiB)")
        return 0
    if args.figure != "bicubic":
        out = args.out or REPO / "docs" / "images" / f"{args.figure}_x{args.scale}.png"
        if args.figure == "kspace":
            panels = _kspace_panels(args.scale, args.slice)
            title = (
                f"×{args.scale} from a k-space-truncated, noisy acquisition of a real T1 "
                "slice (held out of training)"
            )
        else:
            panels = _anatomical_panels(args.scale)
            title = (
                f"×{args.scale} in-plane on a real 2 mm T1 from outside the project "
                "(nibabel's anatomical.nii; no reference exists)"
            )
        size = render(panels, args.scale, out, heading=title)
        print(f"wrote {out} ({size / 1024:.0f} KiB)")
        return 0 if size <= MAX_BYTES else 1
    if args.model is None:
        bundled = registry.Bundled("seran", args.scale)
        if not bundled.exists():
            print(
                f"make_figures: no bundled pretrained SERAN weights for x{args.scale} "
                f"({bundled.weights_path} is missing; bundled: "
                f"{registry.available() or 'none'}). Train and export them with "
                f"`python scripts/train_pretrained.py --scale {args.scale} --arch seran` "
                "(then `--export`), or pass --model run/best.keras. Nothing written.",
                file=sys.stderr,
            )
            return 2
        model = bundled.load()
        label = "SERAN-small (bundled weights)"
    else:
        model = registry.load_model(args.model)
        label = f"SERAN ({Path(args.model).name})"

    size = render(_panels(model, args.scale, args.slice, label), args.scale, out)
    print(f"wrote {out} ({size / 1024:.0f} KiB)")
    if size > MAX_BYTES:
        print(
            f"make_figures: {out} is {size} bytes, over the {MAX_BYTES}-byte budget",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
