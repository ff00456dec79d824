"""Write the three tutorial notebooks of ``notebooks/`` from the cell sources below.

The notebooks are generated (not edited by hand) so that their code stays reviewable as plain
Python in this file and their outputs are always stripped when committed::

    python scripts/build_notebooks.py            # rewrite notebooks/*.ipynb (outputs stripped)
    python scripts/build_notebooks.py --check    # exit 1 if a notebook differs from this file

Every notebook reads ``KERAS_SERAN_SMALL=1`` (fewer steps, the tiny preset, fewer slices) so that
the test suite (``tests/test_notebooks.py``) runs each one top to bottom in well under 2 minutes
on a CPU; without it they do the full-size version of the same steps.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"


def md(text: str):
    return new_markdown_cell(text.strip("\n"))


def code(text: str):
    return new_code_cell(text.strip("\n"))


SETUP = '''
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# KERAS_SERAN_SMALL=1: the quick version (tiny preset, few steps, few slices) the tests run.
SMALL = os.environ.get("KERAS_SERAN_SMALL", "").strip().lower() not in ("", "0", "false", "no")
T0 = time.perf_counter()

import numpy as np
import matplotlib.pyplot as plt
from IPython.display import Markdown, display

import keras
import keras_seran
from keras_seran import pretrained, samples

SCALE = 2
print(f"keras_seran {keras_seran.__version__}, keras {keras.__version__} "
      f"({keras.backend.backend()}); small settings: {SMALL}")
print("bundled pretrained SERAN weights:", pretrained.available() or "none")
'''


VIEW = '''
def view(img):
    """Radiological display orientation of an axial slice of the bundled slab."""
    return np.rot90(np.asarray(img))
'''


# ---------------------------------------------------------------------------------------------
# 01: explore SERA


def notebook_01():
    cells = [
        md('''
# 01 · Explore SERA: what the attention of SERAN looks at

SERAN (Zhang et al., CVPR 2021) is an RCAN-style residual-in-residual network whose residual
groups each end with a **SERA** module (squeeze-and-excitation *reasoning* attention):

1. **Squeeze** (second-order pooling): *n* attention maps **M** (softmax over the H·W positions)
   pool the features into *n* global descriptors **V** (m × n), each an attention-weighted average
   of the whole image;
2. **Reasoning**: a graph convolution over the *n* descriptors (the nodes) gives **V\\***;
3. **Excitation**: every position picks a mixture **D** of the reasoned descriptors (softmax over
   the *n* descriptors) and adds it back to its features.

This notebook builds SERAN, tabulates parameters and FLOPs of every preset, runs it on a real MR
slice (the bundled T1 slab) and looks at **M**, **V\\*** and **D** through the public
`keras_seran.models.attention_model` API.

*Quick mode*: with `KERAS_SERAN_SMALL=1` the paper preset is not built (its parameter count comes
from the closed form) and the fallback training (below) is shorter.
'''),
        code(SETUP),
        code(VIEW),
        md('''
## Presets: parameters and FLOPs

`seran(scale, preset)` builds a functional `keras.Model` taking LR slices of any size
`(B, H, W, 1)`. FLOPs (2 × multiply-adds, convolutions and the SERA matmuls) are counted by
`count_flops` for one 128 × 128 LR input (→ 256 × 256 at ×2).
'''),
        code('''
from keras_seran.config import PRESETS
from keras_seran.models import (attention_model, attention_use, count_flops, effective_support,
                                seran, seran_param_count)

rows = []
for name, cfg in PRESETS.items():
    cfg = cfg.replace(scale=SCALE)
    closed_form = seran_param_count(cfg)
    if name == "paper" and SMALL:
        rows.append((name, cfg, closed_form, None, None))   # ~10-30 s to build: skipped
        continue
    t = time.perf_counter()
    net = seran(SCALE, name)
    built = time.perf_counter() - t
    assert net.count_params() == closed_form, (name, net.count_params(), closed_form)
    rows.append((name, cfg, net.count_params(), count_flops(net, (128, 128)) / 1e9, built))

table = ["| preset | C | G | B | m | n | parameters | GFLOPs (128×128 LR, ×2) | build (s) |",
         "|---|---|---|---|---|---|---|---|---|"]
for name, cfg, params, gflops, built in rows:
    table.append(f"| {name} | {cfg.channels} | {cfg.num_groups} | {cfg.blocks_per_group} | "
                 f"{cfg.sera.feature_dim} | {cfg.sera.num_descriptors} | {params:,} | "
                 + (f"{gflops:.1f} | {built:.1f} |" if gflops is not None
                    else "not built in quick mode | – |"))
display(Markdown("\\n".join(table)))
'''),
        md('''
## The network we look at

The bundled pretrained SERAN (`small` preset, trained on a real 1 mm T1 volume whose slices
around the bundled slab were held out) is used when `keras_seran.pretrained.available()` lists
×2. When the package was installed without its weights, the next cell instead **trains the
`tiny` preset briefly** on the other bundled real T1 volume (`samples.T1_LOWRES`, another subject
and scanner) through the package's `train` — enough for the attention to become structured, not
for a good reconstruction (the run goes to `runs/` of the working directory). The line printed
below says which of the two happened.
'''),
        code('''
from pathlib import Path

if f"x{SCALE}" in pretrained.available():
    model = pretrained.load_pretrained(SCALE)
    best = pretrained.card(SCALE).get("best_val_psnr_during_training")
    SOURCE = (f"bundled pretrained SERAN-small ×{SCALE} (`{pretrained.weights_path(SCALE).name}`"
              + (f"; best validation PSNR during training {best:.2f} dB)" if best else ")"))
else:
    from keras_seran.config import DataConfig, TrainConfig
    from keras_seran.training import train

    epochs, steps = (3, 15) if SMALL else (8, 100)
    run_dir = Path("runs") / time.strftime(f"nb01_seran_tiny_x{SCALE}_%Y%m%d_%H%M%S")
    t = time.perf_counter()
    history = train(samples.T1_LOWRES, SCALE, run_dir, preset="tiny",
                    data=DataConfig(patch_size=24, batch_size=8, slice_axis=2),
                    train_cfg=TrainConfig(epochs=epochs, steps_per_epoch=steps, learning_rate=1e-3),
                    tensorboard=False, verbose=0)
    model = keras.saving.load_model(run_dir / "best.keras", compile=False)
    SOURCE = (f"**no bundled weights for ×{SCALE}**: the `tiny` preset trained here for "
              f"{epochs}×{steps} steps ({time.perf_counter() - t:.0f} s) on `T1_LOWRES`; "
              f"final validation PSNR {history.history['val_psnr'][-1]:.2f} dB. Expect rough maps.")
display(Markdown(f"**Weights used below:** {SOURCE}"))
model.summary(line_length=110)
'''),
        md('''
## A real MR slice through SERAN, with its attention

`attention_model(model)` returns a copy of the network (same weights) whose output is a dict:
`"sr"` plus, for every SERA module `groupK_sera`, its `attention_maps` **M** (B, H, W, n),
`descriptors` **V** (B, m, n), `reasoned_descriptors` **V\\*** (B, m, n) and `excitation` **D**
(B, H, W, n). The input is axial slice 8 of the bundled real T1 slab, normalised to [0, 1], and
its MATLAB-bicubic ×2 downscaled version (the paper's BI degradation).
'''),
        code('''
from keras_seran.data import bicubic_downscale, bicubic_upscale, crop_to_multiple, load_volume, normalize
from keras_seran.metrics import psnr

slab, _ = normalize(load_volume(samples.T1_AXIAL_SLAB).data)   # (256, 16, 256), slice axis 1
hr = np.ascontiguousarray(crop_to_multiple(slab[:, 8, :], SCALE))
lr = bicubic_downscale(hr, SCALE)

explainer = attention_model(model)
out = {k: keras.ops.convert_to_numpy(v) for k, v in explainer(lr[None, ..., None], training=False).items()}
sr = np.clip(out["sr"][0, ..., 0], 0, 1)
direct = keras.ops.convert_to_numpy(model(lr[None, ..., None], training=False))[0, ..., 0]
print("same output as the plain model:", np.allclose(np.clip(direct, 0, 1), sr, atol=1e-5))
groups = sorted({k.split("/")[0] for k in out if "/" in k})
print("SERA modules:", groups)
for k in sorted(out):
    print(f"  {k:40s} {out[k].shape}")

bic = bicubic_upscale(lr, SCALE)
fig, axes = plt.subplots(1, 4, figsize=(14, 4))
for ax, (title, img) in zip(axes, [(f"LR {lr.shape[0]}×{lr.shape[1]}", lr),
                                   (f"bicubic {psnr(bic, hr, 1.0, SCALE):.2f} dB", bic),
                                   (f"SERAN {psnr(sr, hr, 1.0, SCALE):.2f} dB", sr),
                                   ("HR (reference)", hr)]):
    ax.imshow(view(img), cmap="gray", vmin=0, vmax=1)
    ax.set_title(title)
    ax.axis("off")
plt.tight_layout()
plt.show()
'''),
        md('''
## Squeeze: the attention maps M

Each of the *n* maps is a probability distribution over the LR positions; descriptor *j* is the
feature average under map *j*. Shown for the last SERA module as log₂ of the map relative to a
uniform one (red: the descriptor pools from here more than an even average would; blue: less),
with the brain outline. The title gives the map's **effective support**: exp(entropy) as a
fraction of the image (100 % = uniform average over the whole slice, like plain global pooling).
'''),
        code('''
GROUP = groups[-1]
M = out[f"{GROUP}/attention_maps"][0]            # (H, W, n), each map sums to 1
n = M.shape[-1]
support = effective_support(M)                    # (n,): 1.0 = uniform over the slice

relative = np.log2(M * M[..., 0].size + 1e-12)       # 0 = uniform weight
limit = max(1.0, float(np.percentile(np.abs(relative), 99)))
show = min(n, 16)
cols = min(show, 8)
rows_ = int(np.ceil(show / cols))
fig, axes = plt.subplots(rows_, cols, figsize=(2.1 * cols, 2.3 * rows_ + 0.4), squeeze=False)
for j, ax in enumerate(axes.flat):
    ax.axis("off")
    if j >= show:
        continue
    im = ax.imshow(view(relative[..., j]), cmap="RdBu_r", vmin=-limit, vmax=limit)
    ax.contour(view(lr), levels=[0.1], colors="k", linewidths=0.5)
    ax.set_title(f"M[{j}]  {100 * support[j]:.0f}%", fontsize=9)
fig.colorbar(im, ax=axes.ravel().tolist(), fraction=0.015, label="log2(M / uniform)")
fig.suptitle(f"{GROUP}: attention maps M (softmax over positions)")
plt.show()
'''),
        md('''
## Reasoning: the descriptor graph

The *n* descriptors are the nodes of a graph; the reasoning step (a GloRe graph convolution)
mixes them into V\\*. Below: the n × n cosine similarity of the columns of V\\* as they are;
the same for V and V\\* after removing the component all descriptors share (their mean column —
an image-wide average, which otherwise makes every pair look alike); and V\\* drawn as a graph,
each node joined to its two most similar neighbours (centred similarity), node size proportional
to how much of the image draws on that descriptor in the excitation (mean of D over positions).
'''),
        code('''
def cosine(mat, centred=False):                    # (m, n) -> (n, n), over the columns
    if centred:
        mat = mat - mat.mean(axis=1, keepdims=True)
    cols = mat / (np.linalg.norm(mat, axis=0, keepdims=True) + 1e-12)
    return cols.T @ cols

V = out[f"{GROUP}/descriptors"][0]
Vr = out[f"{GROUP}/reasoned_descriptors"][0]
D = out[f"{GROUP}/excitation"][0]                 # (H, W, n), softmax over descriptors
usage = D.reshape(-1, n).mean(0)
sim = cosine(Vr, centred=True)
iu = np.triu_indices(n, 1)

fig, axes = plt.subplots(1, 4, figsize=(19, 4.5))
for ax, (title, c) in zip(axes[:3], [("cos(V*) as is", cosine(Vr)),
                                     ("cos(V), shared part removed", cosine(V, centred=True)),
                                     ("cos(V*), shared part removed", sim)]):
    im = ax.imshow(c, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_title(title)
    ax.set_xlabel("descriptor")
    ax.set_ylabel("descriptor")
    fig.colorbar(im, ax=ax, fraction=0.046)

ax = axes[3]
angle = 2 * np.pi * np.arange(n) / n
xy = np.stack([np.cos(angle), np.sin(angle)], 1)
off = sim - 2 * np.eye(n)                          # ignore self-similarity
for i in range(n):
    for j in np.argsort(off[i])[-2:]:
        ax.plot(*xy[[i, j]].T, color=plt.cm.RdBu_r((off[i, j] + 1) / 2),
                lw=0.5 + 3 * max(off[i, j], 0), zorder=1)
ax.scatter(*xy.T, s=900 * usage / usage.max() + 60, c=[plt.get_cmap("tab20", n)(i) for i in range(n)],
           edgecolors="k", zorder=2)
for i in range(n):
    ax.annotate(str(i), xy[i] * 1.25, ha="center", va="center", fontsize=9)
ax.set_title("V* graph: 2 nearest neighbours per node\\n(node size: share of excitation D)")
ax.set_xlim(-1.4, 1.4)
ax.set_ylim(-1.4, 1.4)
ax.set_aspect("equal")
ax.axis("off")
plt.tight_layout()
plt.show()
shared = np.linalg.norm(V.mean(1)) * np.sqrt(n) / np.linalg.norm(V)
print(f"share of V that is common to all descriptors: {100 * shared ** 2:.1f}% of its energy")
print(f"mean |cos| between descriptors, as is: V {np.abs(cosine(V)[iu]).mean():.3f}, "
      f"V* {np.abs(cosine(Vr)[iu]).mean():.3f}; shared part removed: "
      f"V {np.abs(cosine(V, True)[iu]).mean():.3f}, V* {np.abs(sim[iu]).mean():.3f}")
'''),
        md('''
## Excitation: which descriptor each region draws on

**D** gives every LR position a mixture of the *n* reasoned descriptors. The left map colours
each position by its dominant descriptor (arg max of D), the middle one shows how dominant it is
(max of D; 1/n would be an even mix) and the bar chart counts the brain positions per dominant
descriptor.
'''),
        code('''
dominant = D.argmax(-1)
confidence = D.max(-1)
brain = lr > 0.05

fig, axes = plt.subplots(1, 3, figsize=(15, 4.4), gridspec_kw={"width_ratios": [1, 1, 1.2]})
cmap = plt.get_cmap("tab20", n)
im = axes[0].imshow(view(np.where(brain, dominant, np.nan)), cmap=cmap, vmin=-0.5, vmax=n - 0.5,
                    interpolation="nearest")
axes[0].set_title("dominant descriptor (arg max D), brain only")
fig.colorbar(im, ax=axes[0], fraction=0.046, ticks=range(n))
im = axes[1].imshow(view(confidence), cmap="viridis", vmin=1 / n, vmax=max(confidence.max(), 2 / n))
axes[1].set_title(f"max D (from 1/n = {1 / n:.3f}, an even mix)")
fig.colorbar(im, ax=axes[1], fraction=0.046)
for ax in axes[:2]:
    ax.axis("off")
counts = np.bincount(dominant[brain], minlength=n) / brain.sum()
axes[2].bar(range(n), 100 * counts, color=[cmap(j) for j in range(n)], edgecolor="k")
axes[2].set_xlabel("descriptor")
axes[2].set_ylabel("% of brain positions")
axes[2].set_title("share of positions per dominant descriptor")
plt.tight_layout()
plt.show()
'''),
        md('''
## Every SERA module at a glance

One line per residual group: how spread the attention maps are, how peaked the excitation is, how
many descriptors are the dominant one somewhere in the brain, and the module's residual scale *s*
(`out = E + s·Z`, a learnable scalar read from the layer's weights; |s|·Z small means the module
barely changes the features).
'''),
        code('''
uses = {u.name: u for u in attention_use(model, lr)}   # s, median support of M, peak of D
lines = ["| module | n | median support of M | mean max D | descriptors dominant somewhere | "
         "mean centred cos(V*) | s |", "|---|---|---|---|---|---|---|"]
supports, scales = [], []
for g in groups:
    supports.append(uses[g].support)
    scales.append(uses[g].residual_scale)
    used = len(np.unique(out[f"{g}/excitation"][0].argmax(-1)[brain]))
    c = cosine(out[f"{g}/reasoned_descriptors"][0], centred=True)
    lines.append(f"| {g} | {n} | {100 * supports[-1]:.1f}% | {uses[g].excitation_peak:.3f} | "
                 f"{used} | {c[iu].mean():+.2f} | {scales[-1]:+.4f} |")
display(Markdown("\\n".join(lines)))

verdict = []
if min(supports) > 0.9:
    verdict.append(f"The attention maps of this network are **close to uniform** (median support "
                   f"{100 * min(supports):.1f}–{100 * max(supports):.1f}% of the slice): its descriptors "
                   "are mostly image-wide averages, like the global pooling of plain channel attention, "
                   "with a mild preference for some tissues (the red/blue pattern of M above).")
else:
    verdict.append(f"Some attention maps are **local** (median support down to {100 * min(supports):.0f}% "
                   "of the slice): those descriptors summarise particular regions or tissues.")
if max(abs(x) for x in scales) < 0.01:
    verdict.append(f"The residual scales are small (max |s| = {max(abs(x) for x in scales):.4f}): the "
                   "SERA modules change the features only slightly and the trunk's residual blocks "
                   "do most of the work — worth watching when training longer or at the paper's size.")
display(Markdown(" ".join(verdict)))
print(f"notebook ran in {time.perf_counter() - T0:.0f} s")
'''),
        md('''
**Reading the pictures.** Maps M with a small support are *local* descriptors (they pool a
particular tissue or region: skull, ventricles, cortical rim); maps near 100 % behave like the
global average pooling of squeeze-and-excitation. Reasoning makes related descriptors similar
(blocks in the centred similarity of V\\*), and when the excitation is peaked, the arg-max map shows
which regions draw on which descriptor — the point of SERA over a single channel-attention vector.
The paragraph printed above describes what *this* network does; the briefly trained fallback
network, the bundled `small` weights and a paper-size network trained for days all differ here.

Next: `02_train_and_evaluate.ipynb` trains a network and compares it with bicubic and EDSR.
'''),
    ]
    return cells


# ---------------------------------------------------------------------------------------------
# 02: train and evaluate


def notebook_02():
    cells = [
        md('''
# 02 · Train and evaluate SERAN on real MR

A short, real training run on the MR data bundled with the package, its loss and PSNR curves, then
the evaluation protocol of the MR super-resolution literature (PSNR/SSIM, border of `scale`
pixels cropped, data range 1) against bicubic and the bundled baselines, and a zoomed before/after
figure with error maps.

* **Training data**: `samples.T1_LOWRES`, a real T1 volume (128 × 128 × 62, 2 × 2 × 3 mm) — its
  axial slices, the last ones held out for validation by the package's single-subject split.
* **Test data**: the bundled benchmark sets (`keras_seran.evaluation.benchmark_pairs`): the real
  1 mm T1 slab (another subject, never used by this notebook's training *nor* by the bundled
  weights), and BrainWeb T1 and PD slices. The set `itk-t1` is built from `T1_LOWRES` — the
  training volume here — so it is left out of the table.

*Quick mode* (`KERAS_SERAN_SMALL=1`): the `tiny` preset for a few dozen steps and a subset of the
test slices — a smoke test of the whole path; such a network is only about as good as bicubic.
Without it: the `small` preset for 10 × 100 steps (several minutes on a laptop CPU).
'''),
        code(SETUP),
        code(VIEW + '''

if SMALL:
    PRESET, EPOCHS, STEPS, PATCH, BATCH, LEARNING_RATE = "tiny", 5, 20, 24, 8, 1e-3
else:
    PRESET, EPOCHS, STEPS, PATCH, BATCH, LEARNING_RATE = "small", 10, 100, 32, 16, 5e-4
print(f"training SERAN-{PRESET} x{SCALE}: {EPOCHS} epochs x {STEPS} steps, "
      f"batch {BATCH} of {PATCH}x{PATCH} LR patches, Adam lr {LEARNING_RATE}")
'''),
        md('''
## The data pipeline

`make_datasets` normalises the volume (0.5–99.5 percentiles → [0, 1]), cuts axial slices
(skipping near-empty ones), splits them into a training part and a validation slab, and returns a
`tf.data` stream of random HR patches with their bicubic-degraded LR patches (flips and 90°
rotations), plus whole validation slices. One batch:
'''),
        code('''
from keras_seran.config import DataConfig, TrainConfig
from keras_seran.data import make_datasets

data_cfg = DataConfig(patch_size=PATCH, batch_size=BATCH, slice_axis=2, degradation="bicubic")
train_ds, val_ds = make_datasets(samples.T1_LOWRES, SCALE, data_cfg)
lr_batch, hr_batch = next(iter(train_ds))
print("LR batch", tuple(lr_batch.shape), " HR batch", tuple(hr_batch.shape),
      " validation slices", sum(1 for _ in val_ds))


def show_patch_rows(rows: dict, n: int = 6):
    """One row of the first ``n`` patches per (title -> batch (B, h, w, 1)) entry, on [0, 1]."""
    fig, axes = plt.subplots(len(rows), n, figsize=(2 * n, 2.15 * len(rows)), squeeze=False)
    for r, (title, batch) in enumerate(rows.items()):
        for i in range(n):
            axes[r, i].imshow(batch[i, ..., 0], cmap="gray", vmin=0, vmax=1)
            axes[r, i].axis("off")
        axes[r, 0].set_title(title, loc="left")
    plt.tight_layout()
    plt.show()


show_patch_rows({"LR patches": lr_batch, "HR patches": hr_batch})
'''),
        md('''
### Contrast augmentation (optional)

Trained on one contrast, a network meets others in use (CSF is dark in T1, bright in T2).
`DataConfig(contrast_augment=p)` gives each HR patch, with probability p, a random piecewise-linear
intensity table (background kept at 0, brightest knot at 1) *before* its LR is made, so every pair
stays exact. The same seed draws the same patches, so here are the patches above, remapped
(p = 1). The README measures the trade: a little better on other contrasts and scanners, a little
worse on the training contrast; the bundled weights do without it.
'''),
        code('''
import dataclasses

aug_ds, _ = make_datasets(samples.T1_LOWRES, SCALE, dataclasses.replace(data_cfg, contrast_augment=1.0))
_, hr_aug = next(iter(aug_ds))
show_patch_rows({"HR patches": hr_batch, "the same, contrast-remapped": hr_aug})
'''),
        md('''
## Training through `model.fit`

`keras_seran.training.train` compiles with the paper's L1 loss and Adam, checkpoints
`best.keras` / `last.keras` atomically every epoch (a killed run resumes with `resume=True`) and
logs every epoch to `log.csv` (PSNR/SSIM with a border of `scale` pixels cropped). The run
directory goes under `runs/` of the working directory.
'''),
        code('''
from pathlib import Path

from keras_seran.training import train

RUN_DIR = Path("runs") / time.strftime(f"nb02_seran_{PRESET}_x{SCALE}_%Y%m%d_%H%M%S")
t = time.perf_counter()
history = train(samples.T1_LOWRES, SCALE, RUN_DIR, preset=PRESET, data=data_cfg,
                train_cfg=TrainConfig(epochs=EPOCHS, steps_per_epoch=STEPS, learning_rate=LEARNING_RATE),
                datasets=(train_ds, val_ds), tensorboard=False, verbose=2)
TRAIN_SECONDS = time.perf_counter() - t
print(f"trained in {TRAIN_SECONDS:.0f} s; run directory {RUN_DIR}: {sorted(p.name for p in RUN_DIR.iterdir())}")
'''),
        md('''
## Curves

From `log.csv` (the same numbers as `history.history`). The dashed line is bicubic
interpolation on the same validation slices: the level a useful network has to clear.
'''),
        code('''
import csv

from keras_seran.data import bicubic_upscale
from keras_seran.metrics import psnr

with open(RUN_DIR / "log.csv") as f:
    log = list(csv.DictReader(f))
epoch = np.array([int(r["epoch"]) + 1 for r in log])
col = lambda key: np.array([float(r[key]) for r in log])
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
axes[1].axhline(bicubic_val, ls="--", color="k", label=f"bicubic on validation ({bicubic_val:.2f} dB)")
axes[1].set_ylabel("PSNR (dB)")
for ax in axes:
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)
    ax.legend()
fig.suptitle(f"SERAN-{PRESET} x{SCALE}, {EPOCHS}x{STEPS} steps in {TRAIN_SECONDS:.0f} s")
plt.tight_layout()
plt.show()
'''),
        md('''
## Evaluation against bicubic and the baselines

`keras_seran.evaluation` scores any predictor (a function LR slice → SR slice) on the bundled
benchmark sets. Compared here: bicubic, the network just trained (its best checkpoint), and —
when the package ships them — the bundled SERAN-small and EDSR-small (an EDSR baseline with the
same parameter budget) weights. Cells are mean PSNR (dB) / SSIM over the slices.
'''),
        code('''
import keras_seran.evaluation as ev

best = keras.saving.load_model(RUN_DIR / "best.keras")
methods = {"bicubic": ev.bicubic_predictor(SCALE),
           f"SERAN-{PRESET} (this notebook, {EPOCHS * STEPS} steps)": ev.keras_predictor(best)}
for arch in ("seran", "edsr"):
    if pretrained.weights_path(SCALE, arch).exists():
        methods[f"{arch.upper()}-small (bundled weights)"] = ev.keras_predictor(
            pretrained.load_pretrained(SCALE, arch=arch))
    else:
        print(f"no bundled {arch} x{SCALE} weights in this installation: row left out")

sets = {k: v for k, v in ev.benchmark_pairs(SCALE).items() if k != "itk-t1"}   # itk-t1 = training volume
if SMALL:   # a few slices per set
    sets = {k: (lrs[::4], hrs[::4]) for k, (lrs, hrs) in sets.items()}
rows = []
t = time.perf_counter()
for name, predict in methods.items():
    for dataset, (lrs, hrs) in sets.items():
        rows.append(ev.Row(name, dataset, SCALE, ev.score_pairs(predict, lrs, hrs, SCALE)))
print(f"scored {len(methods)} methods on {sum(len(v[0]) for v in sets.values())} slices "
      f"in {time.perf_counter() - t:.0f} s")
display(Markdown(ev.to_markdown(rows)))
'''),
        md('''
## Before / after, zoomed, with error maps

A real held-out T1 slice (slab slice 8). Top: the whole slice with the zoom window; middle: the
zoom; bottom: the absolute error against HR in the zoom (same colour scale for every method).
PSNR of the whole slice in the titles.
'''),
        code('''
lrs, hrs = ev.benchmark_pairs(SCALE)["t1-heldout"]
lr, hr = lrs[8], hrs[8]
panels = {"LR (nearest)": np.kron(lr, np.ones((SCALE, SCALE)))}
panels.update({name: np.clip(np.asarray(p(lr), np.float64).reshape(hr.shape), 0, 1)
               for name, p in methods.items()})
panels["HR (reference)"] = hr

# zoom window in display coordinates (view = rot90): a cortex/ventricle region
disp_h, disp_w = view(hr).shape
y0, x0, size = int(0.30 * disp_h), int(0.30 * disp_w), disp_h // 4
err_max = 0.15

fig, axes = plt.subplots(3, len(panels), figsize=(3.1 * len(panels), 9.6))
for k, (name, img) in enumerate(panels.items()):
    v = view(img)
    title = name if name.startswith(("LR", "HR")) else f"{name}\\n{psnr(img, hr, 1.0, SCALE):.2f} dB"
    axes[0, k].imshow(v, cmap="gray", vmin=0, vmax=1)
    axes[0, k].add_patch(plt.Rectangle((x0, y0), size, size, fill=False, ec="yellow", lw=1.5))
    axes[0, k].set_title(title, fontsize=9)
    axes[1, k].imshow(v[y0:y0 + size, x0:x0 + size], cmap="gray", vmin=0, vmax=1,
                      interpolation="nearest")
    for r in range(3):
        axes[r, k].axis("off")
    if name.startswith("HR"):
        continue
    err = np.abs(view(img) - view(hr))[y0:y0 + size, x0:x0 + size]
    im = axes[2, k].imshow(err, cmap="magma", vmin=0, vmax=err_max, interpolation="nearest")
    axes[2, k].set_title(f"|error| (zoom), mean {err.mean():.3f}", fontsize=9)
fig.colorbar(im, ax=axes[2, :].tolist(), fraction=0.02, label="|SR - HR|")
plt.show()
print(f"notebook ran in {time.perf_counter() - T0:.0f} s")
'''),
        md('''
**What to expect.** In quick mode the tiny network has seen a few hundred patches: it is at
about bicubic's level, with its own artefacts (see its error map). The rows of the bundled
weights (when installed; trained for hours on a CPU, their JSON cards next to the weights in
`keras_seran/weights/` record how) show what longer training of the same code gives. To train
seriously, use the command line on your own volumes:

```bash
keras-seran train --data /data/IXI-T1 --scale 2 --preset small --out runs/seran_x2
keras-seran evaluate --models mine=runs/seran_x2/best.keras --scales 2
```

Next: `03_export_and_deploy.ipynb` exports a network for deployment.
'''),
    ]
    return cells


# ---------------------------------------------------------------------------------------------
# 03: export and deploy


def notebook_03():
    cells = [
        md('''
# 03 · Export and deploy

`keras-seran export MODEL --out DIR --formats ...` writes a **deployment bundle**: every requested
format (TensorFlow SavedModel, LiteRT/TFLite in several precisions, ONNX float32 and int8 QDQ,
TensorRT engines where TensorRT and a GPU exist), each run on real MR slices and compared with the
Keras model (the *parity* report), all described by `manifest.json` with a sha256 per file.

This notebook exports to every format this machine can build, shows the parity table and measures
the latency of each artifact with its own runtime (TensorFlow, LiteRT, onnxruntime).

*Quick mode* (`KERAS_SERAN_SMALL=1`): two LiteRT precisions (float32, int8) instead of four, ONNX
float32 only (no int8 calibration) and fewer timing repeats. Without bundled weights, an untrained
`tiny` network is exported (parity does not need a trained one).
'''),
        code(SETUP),
        md('''
## Which model, which formats

The bundled SERAN-small ×2 (CLI name `x2`) when the package ships it; otherwise a `.keras` file of
an untrained `tiny` network (the line below says which). A format is requested when its toolchain
imports here; TensorRT is always requested — the bundle records why it was skipped on a machine
without TensorRT or a GPU, and ships `build_engines.sh` to build the engines on the target.
'''),
        code('''
import importlib.util
import json
from pathlib import Path

from keras_seran import cli

WORK = Path("runs") / time.strftime("nb03_export_%Y%m%d_%H%M%S")   # under the working directory
WORK.mkdir(parents=True)
if f"x{SCALE}" in pretrained.available():
    MODEL = f"x{SCALE}"
    display(Markdown(f"Exporting the **bundled pretrained SERAN-small ×{SCALE}** (`{MODEL}`)."))
else:
    from keras_seran.models import seran

    MODEL = str(WORK / f"seran_tiny_x{SCALE}.keras")
    seran(SCALE, "tiny").save(MODEL)
    display(Markdown(f"**No bundled weights in this installation**: exporting an *untrained* "
                     f"SERAN-tiny ×{SCALE}. Formats, parity and latency are measured the same way; "
                     "its PSNR against HR is meaningless."))

have = lambda module: importlib.util.find_spec(module) is not None
FORMATS = [f for f, ok in [("savedmodel", have("tensorflow")),
                           ("tflite", have("tensorflow")),
                           ("onnx", have("tf2onnx") and have("onnx") and have("onnxruntime")),
                           ("tensorrt", True)] if ok]
print("model:", MODEL)
print("formats requested:", ",".join(FORMATS))
'''),
        md('''
## Export through the command line

The same as `keras-seran export MODEL --out DIR --formats ...` in a shell: `keras_seran.cli.main`
takes the argument list and returns the exit code. It prints its progress and the parity table.
'''),
        code('''
BUNDLE = WORK / "bundle"
args = ["export", MODEL, "--out", str(BUNDLE), "--formats", ",".join(FORMATS)]
if SMALL:
    args += ["--tflite-variants", "float32,int8", "--onnx-variants", "float32"]
print("keras-seran " + " ".join(args))
t = time.perf_counter()
rc = cli.main(args)
EXPORT_SECONDS = time.perf_counter() - t
assert rc == 0, f"keras-seran export failed with exit code {rc}"
print(f"exported in {EXPORT_SECONDS:.0f} s")
'''),
        md('''
## The bundle

`manifest.json` records the model, the input contract (normalisation, shapes, dynamic sizes), every
format with its status and files, the parity report, and the size and sha256 of every file.
'''),
        code('''
manifest = json.loads((BUNDLE / "manifest.json").read_text())
files = manifest["files"]


def size_of(prefix):
    return sum(v["bytes"] for k, v in files.items() if k == prefix or k.startswith(prefix + "/"))


lines = ["| format | status | artifacts | size |", "|---|---|---|---|"]
for fmt, entry in manifest["formats"].items():
    status = entry.get("status", "?")
    if status != "ok":
        lines.append(f"| {fmt} | {status}: {entry.get('reason', '')} | | |")
        continue
    if "variants" in entry:
        for variant, info in entry["variants"].items():
            lines.append(f"| {fmt} | ok | `{info['file']}` | {files[info['file']]['bytes'] / 1024:,.0f} KiB |")
    else:
        path = entry.get("path", fmt)
        lines.append(f"| {fmt} | ok | `{path}/` | {size_of(path) / 1024:,.0f} KiB |")
display(Markdown("\\n".join(lines)))
print("input contract:", json.dumps(manifest["input_contract"]["input"], indent=None))
print("normalisation: ", manifest["input_contract"]["intensity_normalisation"]["forward"])
print(f"{len(files)} files, sha256 of each in the manifest")
'''),
        md('''
## Parity

Every artifact was run on real MR slices and compared with the Keras model: float formats must
match it to round-off, quantised ones must stay within a bound on their difference from it and
within a PSNR margin of it, either way. This is
`parity.md` of the bundle:
'''),
        code('''
display(Markdown((BUNDLE / "parity.md").read_text()))
print("every format within its tolerance:", manifest["parity_ok"])
'''),
        md('''
## Latency

Each artifact is loaded with its own runtime — the code a deployment would run — and timed on a
real 128 × 128 LR slice (→ 256 × 256): median of several runs after one warm-up, 2 CPU threads,
on this machine (other work on it makes the numbers noisy). The Keras model is the reference.
'''),
        code('''
import tensorflow as tf

from keras_seran.data import bicubic_downscale, crop_to_multiple, load_volume, normalize
from keras_seran.pretrained import load_model

slab, _ = normalize(load_volume(samples.T1_AXIAL_SLAB).data)
lr = bicubic_downscale(np.ascontiguousarray(crop_to_multiple(slab[:, 8, :], SCALE)), SCALE)
top, left = (lr.shape[0] - 128) // 2, (lr.shape[1] - 128) // 2
x = np.ascontiguousarray(lr[top:top + 128, left:left + 128])[None, ..., None].astype(np.float32)
REPEATS = 3 if SMALL else 20


def timed(run):
    y = run(x)                                            # warm-up (and the output)
    times = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times)), np.asarray(y, np.float32).reshape(-1)


def keras_runner(spec):
    model = load_model(spec)
    return lambda a: model.predict_on_batch(a)


def savedmodel_runner(path):
    fn = tf.saved_model.load(str(path)).signatures["serving_default"]
    return lambda a: list(fn(tf.constant(a)).values())[0].numpy()


def litert_runner(path):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        Interpreter = tf.lite.Interpreter
    interp = Interpreter(model_path=str(path), num_threads=2)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    interp.resize_tensor_input(inp["index"], x.shape)
    interp.allocate_tensors()

    def run(a):
        if inp["dtype"] != np.float32:                     # int8 input/output (--int8-io)
            scale_, zero = inp["quantization"]
            a = np.clip(np.round(a / scale_ + zero), -128, 127).astype(inp["dtype"])
        interp.set_tensor(inp["index"], a)
        interp.invoke()
        y = interp.get_tensor(out["index"])
        if out["dtype"] != np.float32:
            scale_, zero = out["quantization"]
            y = (y.astype(np.float32) - zero) * scale_
        return y
    return run


def onnx_runner(path):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda a: sess.run(None, {name: a})[0]


artifacts = {"keras (reference)": (lambda: keras_runner(MODEL), None)}
for fmt, entry in manifest["formats"].items():
    if entry.get("status") != "ok":
        continue
    if fmt == "savedmodel":
        artifacts["savedmodel"] = (lambda p=BUNDLE / entry["path"]: savedmodel_runner(p), size_of(entry["path"]))
    for variant, info in entry.get("variants", {}).items():
        path = BUNDLE / info["file"]
        if fmt == "tflite":
            artifacts[info["file"]] = (lambda p=path: litert_runner(p), files[info["file"]]["bytes"])
        elif fmt == "onnx":
            artifacts[info["file"]] = (lambda p=path: onnx_runner(p), files[info["file"]]["bytes"])

lines = ["| artifact | size | median latency (ms) | max abs diff to Keras |", "|---|---:|---:|---:|"]
reference = None
for name, (make, nbytes) in artifacts.items():
    try:
        ms, y = timed(make())
    except Exception as exc:                              # a runtime missing here, say
        lines.append(f"| `{name}` | | not run: {type(exc).__name__}: {str(exc)[:80]} | |")
        continue
    reference = y if reference is None else reference
    size = "" if nbytes is None else f"{nbytes / 1024:,.0f} KiB"
    lines.append(f"| `{name}` | {size} | {ms:.1f} | {np.abs(y - reference).max():.4f} |")
display(Markdown("\\n".join(lines)))
print(f"input {x.shape}, median of {REPEATS} runs each; notebook ran in {time.perf_counter() - T0:.0f} s")
'''),
        md('''
## Deploying

* **LiteRT (TFLite)** on an ARM console or a phone: `tflite/*_float32.tflite` or `*_float16.tflite`
  for accuracy, `*_int8.tflite` for an NPU/DSP; builtin ops only, so the stock interpreter runs
  them (resize the input tensor to the slice size first).
* **ONNX** with onnxruntime (CPU, CUDA, OpenVINO, …): `onnx/*_float32.onnx`, or the int8 QDQ model.
* **TensorRT** on a Jetson: copy the bundle and run its `build_engines.sh` there (it calls
  `trtexec` with the optimisation profiles recorded in the manifest); engines are specific to the
  GPU and TensorRT version that built them, so they are built on the target.
* **TensorFlow / TF Serving** on a server: the `savedmodel/` folder, signature `serving_default`.

The input contract is the same for every format (`manifest["input_contract"]`): one LR slice
`(1, H, W, 1)` float32, normalised by the volume's 0.5–99.5 percentiles (tissue in [0, 1]) and
clipped to [-0.5, 1.5]; the output is `(1, H·s, W·s, 1)` in the same units. Where TensorFlow runs on the target, `keras-seran predict`
does the normalisation, tiling and NIfTI geometry for whole volumes.
'''),
    ]
    return cells


BUILDERS = {"01_explore_sera.ipynb": notebook_01,
            "02_train_and_evaluate.ipynb": notebook_02,
            "03_export_and_deploy.ipynb": notebook_03}


def build(name: str) -> nbformat.NotebookNode:
    nb = new_notebook(cells=BUILDERS[name]())
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for i, cell in enumerate(nb.cells):          # stable ids: no diff noise between rebuilds
        cell["id"] = f"{name[:2]}-{i:02d}"
    nbformat.validate(nb)
    return nb


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true",
                   help="do not write; exit 1 when a notebook differs from what this script builds")
    args = p.parse_args(argv)
    NOTEBOOKS.mkdir(exist_ok=True)
    stale = []
    for name in BUILDERS:
        text = nbformat.writes(build(name)) + "\n"
        path = NOTEBOOKS / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(REPO)}")
    if stale:
        print("out of date (run python scripts/build_notebooks.py): " + ", ".join(stale),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
