# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · Train and evaluate SERAN on real MR
#
# A short, real training run on the MR data bundled with the package, its loss and PSNR curves, then
# the evaluation protocol of the MR super-resolution literature (PSNR/SSIM, border of `scale`
# pixels cropped, data range 1) against bicubic and the bundled baselines, and a zoomed before/after
# figure with error maps.
#
# * **Training data**: `samples.T1_LOWRES`, a real T1 volume (128 × 128 × 62, 2 × 2 × 3 mm) — its
#   axial slices, the last ones held out for validation by the package's single-subject split.
# * **Test data**: the bundled benchmark sets (`keras_seran.evaluation.benchmark_pairs`): the real
#   1 mm T1 slab (another subject, never used by this notebook's training *nor* by the bundled
#   weights), and BrainWeb T1 and PD slices. The set `itk-t1` is built from `T1_LOWRES` — the
#   training volume here — so it is left out of the table.
#
# *Quick mode* (`KERAS_SERAN_SMALL=1`): the `tiny` preset for a few dozen steps and a subset of the
# test slices — a smoke test of the whole path; such a network is only about as good as bicubic.
# Without it: the `small` preset for 10 × 100 steps (several minutes on a laptop CPU).

# %%
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before keras loads TensorFlow

import keras
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

import keras_seran
from keras_seran import registry, samples

T0 = time.perf_counter()
# KERAS_SERAN_SMALL=1: the quick version (tiny preset, few steps, few slices) the tests run.
SMALL = os.environ.get("KERAS_SERAN_SMALL", "").strip().lower() not in ("", "0", "false", "no")
SCALE = 2
print(
    f"keras_seran {keras_seran.__version__}, keras {keras.__version__} "
    f"({keras.backend.backend()}); small settings: {SMALL}"
)
print("bundled pretrained SERAN weights:", registry.available() or "none")


# %%
def view(img):
    """Radiological display orientation of an axial slice of the bundled slab."""
    return np.rot90(np.asarray(img))


if SMALL:
    PRESET, EPOCHS, STEPS, PATCH, BATCH, LEARNING_RATE = "tiny", 5, 20, 24, 8, 1e-3
else:
    PRESET, EPOCHS, STEPS, PATCH, BATCH, LEARNING_RATE = "small", 10, 100, 32, 16, 5e-4
print(
    f"training SERAN-{PRESET} x{SCALE}: {EPOCHS} epochs x {STEPS} steps, "
    f"batch {BATCH} of {PATCH}x{PATCH} LR patches, Adam lr {LEARNING_RATE}"
)

# %% [markdown]
# ## The data pipeline
#
# `make_datasets` normalises the volume (0.5–99.5 percentiles → [0, 1]), cuts axial slices
# (skipping near-empty ones), splits them into a training part and a validation slab, and returns a
# `tf.data` stream of random HR patches with their bicubic-degraded LR patches (flips and 90°
# rotations), plus whole validation slices. One batch:

# %%
from keras_seran.config import DataConfig, TrainConfig
from keras_seran.data import make_datasets

data_cfg = DataConfig(patch_size=PATCH, batch_size=BATCH, slice_axis=2, degradation="bicubic")
train_ds, val_ds = make_datasets(samples.T1_LOWRES, SCALE, data_cfg)
lr_batch, hr_batch = next(iter(train_ds))
print(
    "LR batch",
    tuple(lr_batch.shape),
    " HR batch",
    tuple(hr_batch.shape),
    " validation slices",
    sum(1 for _ in val_ds),
)


def show_patch_rows(rows: dict, n: int = 6):
    """One row of the first ``n`` patches per (title -> batch (B, h, w, 1)) entry, on [0, 1]."""
    _, axes = plt.subplots(len(rows), n, figsize=(2 * n, 2.15 * len(rows)), squeeze=False)
    for r, (title, batch) in enumerate(rows.items()):
        for i in range(n):
            axes[r, i].imshow(batch[i, ..., 0], cmap="gray", vmin=0, vmax=1)
            axes[r, i].axis("off")
        axes[r, 0].set_title(title, loc="left")
    plt.tight_layout()
    plt.show()


show_patch_rows({"LR patches": lr_batch, "HR patches": hr_batch})

# %% [markdown]
# ### Contrast augmentation (optional)
#
# Trained on one contrast, a network meets others in use (CSF is dark in T1, bright in T2).
# `DataConfig(contrast_augment=p)` gives each HR patch, with probability p, a random
# piecewise-linear intensity table (background kept at 0, brightest knot at 1) *before* its LR is
# made, so every pair stays exact. The same seed draws the same patches, so here are the patches
# above, remapped (p = 1). docs/experiments.md measures the trade: a little better on other contrasts and
# scanners, a little worse on the training contrast; the bundled weights do without it.

# %%
import dataclasses

aug_ds, _ = make_datasets(
    samples.T1_LOWRES, SCALE, dataclasses.replace(data_cfg, contrast_augment=1.0)
)
_, hr_aug = next(iter(aug_ds))
show_patch_rows({"HR patches": hr_batch, "the same, contrast-remapped": hr_aug})

# %% [markdown]
# ## Training through `model.fit`
#
# `keras_seran.training.train` compiles with the paper's L1 loss and Adam, checkpoints
# `best.keras` / `last.keras` atomically every epoch (a killed run resumes with `resume=True`) and
# logs every epoch to `log.csv` (PSNR/SSIM with a border of `scale` pixels cropped). The run
# directory goes under `runs/` of the working directory.

# %%
from pathlib import Path

from keras_seran.training import train

RUN_DIR = Path("runs") / time.strftime(f"nb02_seran_{PRESET}_x{SCALE}_%Y%m%d_%H%M%S")
t = time.perf_counter()
history = train(
    samples.T1_LOWRES,
    SCALE,
    RUN_DIR,
    preset=PRESET,
    data=data_cfg,
    train_cfg=TrainConfig(epochs=EPOCHS, steps_per_epoch=STEPS, learning_rate=LEARNING_RATE),
    datasets=(train_ds, val_ds),
    tensorboard=False,
    verbose=2,
)
TRAIN_SECONDS = time.perf_counter() - t
print(
    f"trained in {TRAIN_SECONDS:.0f} s; run directory {RUN_DIR}:",
    sorted(p.name for p in RUN_DIR.iterdir()),
)

# %% [markdown]
# ## Curves
#
# From `log.csv` (the same numbers as `history.history`). The dashed line is bicubic
# interpolation on the same validation slices: the level a useful network has to clear.

# %%
import csv

from keras_seran.data import bicubic_upscale
from keras_seran.metrics import psnr

with open(RUN_DIR / "log.csv") as f:
    log = list(csv.DictReader(f))
epoch = np.array([int(r["epoch"]) + 1 for r in log])


def col(key):
    """One column of log.csv, one value per epoch."""
    return np.array([float(r[key]) for r in log])


assert np.allclose(col("val_psnr"), history.history["val_psnr"], atol=1e-4)

val_pairs = [(x[0, ..., 0].numpy(), y[0, ..., 0].numpy()) for x, y in val_ds]
bicubic_val = np.mean([psnr(bicubic_upscale(x, SCALE), y, 1.0, SCALE) for x, y in val_pairs])

fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
axes[0].plot(epoch, col("loss"), "o-", label="training (patches)")
axes[0].plot(epoch, col("val_loss"), "s-", label="validation (whole slices)")
axes[0].set_ylabel("L1 loss")
axes[0].set_yscale("log")
axes[1].plot(epoch, col("psnr"), "o-", label="training (patches)")
axes[1].plot(epoch, col("val_psnr"), "s-", label="validation (whole slices)")
axes[1].axhline(
    bicubic_val, ls="--", color="k", label=f"bicubic on validation ({bicubic_val:.2f} dB)"
)
axes[1].set_ylabel("PSNR (dB)")
for ax in axes:
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)
    ax.legend()
fig.suptitle(f"SERAN-{PRESET} x{SCALE}, {EPOCHS}x{STEPS} steps in {TRAIN_SECONDS:.0f} s")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Evaluation against bicubic and the baselines
#
# `keras_seran.evaluation` scores any predictor (a function LR slice → SR slice) on the bundled
# benchmark sets. Compared here: bicubic, the network just trained (its best checkpoint), and —
# when the package ships them — the bundled SERAN-small and EDSR-small (an EDSR baseline with the
# same parameter budget) weights. Cells are mean PSNR (dB) / SSIM over the slices.

# %%
import keras_seran.evaluation as ev

best = keras.saving.load_model(RUN_DIR / "best.keras")
methods = {
    "bicubic": ev.bicubic_predictor(SCALE),
    f"SERAN-{PRESET} (this notebook, {EPOCHS * STEPS} steps)": ev.keras_predictor(best),
}
for arch in ("seran", "edsr"):
    if registry.Bundled(arch, SCALE).exists():
        methods[f"{arch.upper()}-small (bundled weights)"] = ev.keras_predictor(
            registry.load_pretrained(SCALE, arch=arch)
        )
    else:
        print(f"no bundled {arch} x{SCALE} weights in this installation: row left out")

sets = {
    k: v for k, v in ev.benchmark_pairs(SCALE).items() if k != "itk-t1"
}  # itk-t1 = training volume
if SMALL:  # a few slices per set
    sets = {k: (lrs[::4], hrs[::4]) for k, (lrs, hrs) in sets.items()}
rows = []
t = time.perf_counter()
for name, predict in methods.items():
    for dataset, (lrs, hrs) in sets.items():
        rows.append(ev.Row(name, dataset, SCALE, ev.score_pairs(predict, lrs, hrs, SCALE)))
print(
    f"scored {len(methods)} methods on {sum(len(v[0]) for v in sets.values())} slices "
    f"in {time.perf_counter() - t:.0f} s"
)
display(Markdown(ev.to_markdown(rows)))

# %% [markdown]
# ## Before / after, zoomed, with error maps
#
# A real held-out T1 slice (slab slice 8). Top: the whole slice with the zoom window; middle: the
# zoom; bottom: the absolute error against HR in the zoom (same colour scale for every method).
# PSNR of the whole slice in the titles.

# %%
lrs, hrs = ev.benchmark_pairs(SCALE)["t1-heldout"]
lr, hr = lrs[8], hrs[8]
panels = {"LR (nearest)": np.kron(lr, np.ones((SCALE, SCALE)))}
panels.update(
    {
        name: np.clip(np.asarray(p(lr), np.float64).reshape(hr.shape), 0, 1)
        for name, p in methods.items()
    }
)
panels["HR (reference)"] = hr

# zoom window in display coordinates (view = rot90): a cortex/ventricle region
disp_h, disp_w = view(hr).shape
y0, x0, size = int(0.30 * disp_h), int(0.30 * disp_w), disp_h // 4
err_max = 0.15

fig, axes = plt.subplots(3, len(panels), figsize=(3.1 * len(panels), 9.6))
for k, (name, img) in enumerate(panels.items()):
    v = view(img)
    title = name if name.startswith(("LR", "HR")) else f"{name}\n{psnr(img, hr, 1.0, SCALE):.2f} dB"
    axes[0, k].imshow(v, cmap="gray", vmin=0, vmax=1)
    axes[0, k].add_patch(plt.Rectangle((x0, y0), size, size, fill=False, ec="yellow", lw=1.5))
    axes[0, k].set_title(title, fontsize=9)
    axes[1, k].imshow(
        v[y0 : y0 + size, x0 : x0 + size], cmap="gray", vmin=0, vmax=1, interpolation="nearest"
    )
    for r in range(3):
        axes[r, k].axis("off")
    if name.startswith("HR"):
        continue
    err = np.abs(view(img) - view(hr))[y0 : y0 + size, x0 : x0 + size]
    im = axes[2, k].imshow(err, cmap="magma", vmin=0, vmax=err_max, interpolation="nearest")
    axes[2, k].set_title(f"|error| (zoom), mean {err.mean():.3f}", fontsize=9)
fig.colorbar(im, ax=axes[2, :].tolist(), fraction=0.02, label="|SR - HR|")
plt.show()
print(f"notebook ran in {time.perf_counter() - T0:.0f} s")

# %% [markdown]
# ## Scanner acquisitions: k-space-trained weights against zero-filling
#
# A console's low-resolution image comes from a smaller k-space matrix, with noise, and is shown
# zero-filled. Below, the same held-out slice acquired that way (x2 truncation, Rician noise of
# 1 % of the range): zero-filling, the bicubic-trained SERAN (the paper's protocol) and the
# k-space-trained SERAN (`predict`'s default), with PSNR against the full-resolution slice.
# Tables for every scale and noise level: `docs/acquisitions.md`.

# %%
from keras_seran.data.degrade import add_rician_noise, kspace_downscale, kspace_upscale

if registry.Bundled("seran", 2, degradation="kspace").exists():
    hr2 = hr[: hr.shape[0] // 2 * 2, : hr.shape[1] // 2 * 2]
    lr_k = add_rician_noise(kspace_downscale(hr2, 2), 0.01, rng=0)
    shown = {"zero-filling (console)": np.clip(kspace_upscale(lr_k, 2), 0, 1)}
    for deg in ("bicubic", "kspace"):
        net = registry.Bundled("seran", 2, degradation=deg).load()
        shown[f"SERAN, {deg}-trained"] = np.clip(
            net.predict(lr_k[None, ..., None], verbose=0)[0, ..., 0], 0, 1
        )
    shown["HR"] = hr2
    fig, axes = plt.subplots(1, len(shown), figsize=(3.1 * len(shown), 3.6))
    for ax, (name, img) in zip(axes, shown.items()):
        ax.imshow(view(img), cmap="gray", vmin=0, vmax=1)
        ax.set_title(
            name if name == "HR" else f"{name}\n{psnr(img, hr2, 1.0, 2):.2f} dB", fontsize=9
        )
        ax.axis("off")
    plt.show()
else:
    print("the bundled k-space weights are not installed")

# %% [markdown]
# ## Thick slices: through-plane super-resolution to isotropic voxels
#
# Most clinical stacks are 2D multi-slice: fine in-plane, 3-6 mm between slices.
# `keras-seran predict IN OUT --isotropic` (or `SuperResolver.predict_volume(img,
# isotropic=True)`) interpolates the thick axis onto the in-plane voxel size and restores the
# reformats through it with the bundled through-plane SERAN, in both orientations, fused;
# `--adapt-steps N` first fine-tunes it on the scan's own in-plane slices (SMORE-style). Below:
# the held-out slab made into a 4 mm coronal stack (boxcar slices along A-P), seen in an axial
# plane, which contains the thick axis. Measurements at 3 and 4 mm: `docs/throughplane.md`.

# %%
from keras_seran.data.slice_profile import block_centres, profile_matrix
from keras_seran.inference.throughplane import ThroughPlaneResolver, interpolate_axis

if registry.THROUGH_PLANE.exists():
    from keras_seran.data import load_volume, normalize

    slab = normalize(load_volume(samples.T1_AXIAL_SLAB).data)[0]  # held out of all training
    RATIO = 4
    truth = slab[:, :, : slab.shape[2] // RATIO * RATIO]  # (256, 16, 256): L-R, I-S, A-P
    n = truth.shape[2]
    acquire = profile_matrix(n, block_centres(n // RATIO, RATIO), RATIO, "boxcar")
    thick = np.einsum("kn,ijn->ijk", acquire, truth).astype(np.float32)  # 4 mm along A-P
    cubic = interpolate_axis(thick, 2, n, "cubic")
    restored = ThroughPlaneResolver(registry.THROUGH_PLANE.load()).restore(cubic, 2)
    k = truth.shape[1] // 2
    shown = {
        f"{RATIO} mm coronal slices": np.repeat(thick, RATIO, axis=2),
        "cubic along A-P": cubic,
        "SERAN through-plane": restored,
        "1 mm truth": truth,
    }
    fig, axes = plt.subplots(1, len(shown), figsize=(3.1 * len(shown), 3.6))
    for ax, (name, vol) in zip(axes, shown.items()):
        img = np.clip(vol[:, k, :], 0, 1)
        score = (
            "" if name.endswith(("truth", "slices")) else f"\n{psnr(img, truth[:, k, :]):.2f} dB"
        )
        ax.imshow(view(img), cmap="gray", vmin=0, vmax=1)
        ax.set_title(name + score, fontsize=9)
        ax.axis("off")
    plt.show()
else:
    print("the bundled through-plane weights are not installed")

# %% [markdown]
# **What to expect.** In quick mode the tiny network has seen a few hundred patches: it is at
# about bicubic's level, with its own artefacts (see its error map). The rows of the bundled
# weights (when installed; trained for hours on a CPU, their JSON cards next to the weights in
# `keras_seran/weights/` record how) show what longer training of the same code gives. To train
# seriously, use the command line on your own volumes:
#
# ```bash
# keras-seran train --data /data/IXI-T1 --scale 2 --preset small --out runs/seran_x2
# keras-seran evaluate --models mine=runs/seran_x2/best.keras --scales 2
# ```
#
# Next: `03_export_and_deploy.ipynb` exports a network for deployment.
