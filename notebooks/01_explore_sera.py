# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · Explore SERA: what the attention of SERAN looks at
#
# SERAN (Zhang et al., CVPR 2021) is an RCAN-style residual-in-residual network whose residual
# groups each end with a **SERA** module (squeeze-and-excitation *reasoning* attention):
#
# 1. **Squeeze** (second-order pooling): *n* attention maps **M** (softmax over the H·W positions)
#    pool the features into *n* global descriptors **V** (m × n), each an attention-weighted average
#    of the whole image;
# 2. **Reasoning**: a graph convolution over the *n* descriptors (the nodes) gives **V\***;
# 3. **Excitation**: every position picks a mixture **D** of the reasoned descriptors (softmax over
#    the *n* descriptors) and adds it back to its features.
#
# This notebook builds SERAN, tabulates parameters and FLOPs of every preset, runs it on a real MR
# slice (the bundled T1 slab) and looks at **M**, **V\*** and **D** through the public
# `keras_seran.models.attention_model` API.
#
# *Quick mode*: with `KERAS_SERAN_SMALL=1` the paper preset is not built (its parameter count comes
# from the closed form) and the fallback training (below) is shorter.

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


# %% [markdown]
# ## Presets: parameters and FLOPs
#
# `seran(scale, preset)` builds a functional `keras.Model` taking LR slices of any size
# `(B, H, W, 1)`. FLOPs (2 × multiply-adds, convolutions and the SERA matmuls) are counted by
# `count_flops` for one 128 × 128 LR input (→ 256 × 256 at ×2).

# %%
from keras_seran.config import PRESETS
from keras_seran.models import (
    attention_model,
    attention_use,
    count_flops,
    effective_support,
    seran,
    seran_param_count,
)

rows = []
for name, cfg in PRESETS.items():
    cfg = cfg.replace(scale=SCALE)
    closed_form = seran_param_count(cfg)
    if name == "paper" and SMALL:
        rows.append((name, cfg, closed_form, None, None))  # ~10-30 s to build: skipped
        continue
    t = time.perf_counter()
    net = seran(SCALE, name)
    built = time.perf_counter() - t
    assert net.count_params() == closed_form, (name, net.count_params(), closed_form)
    rows.append((name, cfg, net.count_params(), count_flops(net, (128, 128)) / 1e9, built))

table = [
    "| preset | C | G | B | m | n | parameters | GFLOPs (128×128 LR, ×2) | build (s) |",
    "|---|---|---|---|---|---|---|---|---|",
]
for name, cfg, params, gflops, built in rows:
    cost = "not built in quick mode | – |" if gflops is None else f"{gflops:.1f} | {built:.1f} |"
    table.append(
        f"| {name} | {cfg.channels} | {cfg.num_groups} | {cfg.blocks_per_group} | "
        f"{cfg.sera.feature_dim} | {cfg.sera.num_descriptors} | {params:,} | {cost}"
    )
display(Markdown("\n".join(table)))

# %% [markdown]
# ## The network we look at
#
# The bundled pretrained SERAN (`small` preset, trained on a real 1 mm T1 volume whose slices
# around the bundled slab were held out) is used when `keras_seran.registry.available()` lists
# ×2. When the package was installed without its weights, the next cell instead **trains the
# `tiny` preset briefly** on the other bundled real T1 volume (`samples.T1_LOWRES`, another subject
# and scanner) through the package's `train` — enough for the attention to become structured, not
# for a good reconstruction (the run goes to `runs/` of the working directory). The line printed
# below says which of the two happened.

# %%
from pathlib import Path

if f"x{SCALE}" in registry.available():
    model = registry.load_pretrained(SCALE)
    best = registry.card(SCALE).get("best_val_psnr_during_training")
    weights = registry.Bundled(scale=SCALE).weights_path.name
    during = f"; best validation PSNR during training {best:.2f} dB" if best else ""
    SOURCE = f"bundled pretrained SERAN-small ×{SCALE} (`{weights}`{during})"
else:
    from keras_seran.config import DataConfig, TrainConfig
    from keras_seran.training import train

    epochs, steps = (3, 15) if SMALL else (8, 100)
    run_dir = Path("runs") / time.strftime(f"nb01_seran_tiny_x{SCALE}_%Y%m%d_%H%M%S")
    t = time.perf_counter()
    history = train(
        samples.T1_LOWRES,
        SCALE,
        run_dir,
        preset="tiny",
        data=DataConfig(patch_size=24, batch_size=8, slice_axis=2),
        train_cfg=TrainConfig(epochs=epochs, steps_per_epoch=steps, learning_rate=1e-3),
        tensorboard=False,
        verbose=0,
    )
    model = keras.saving.load_model(run_dir / "best.keras", compile=False)
    SOURCE = (
        f"**no bundled weights for ×{SCALE}**: the `tiny` preset trained here for "
        f"{epochs}×{steps} steps ({time.perf_counter() - t:.0f} s) on `T1_LOWRES`; "
        f"final validation PSNR {history.history['val_psnr'][-1]:.2f} dB. Expect rough maps."
    )
display(Markdown(f"**Weights used below:** {SOURCE}"))
model.summary(line_length=110)

# %% [markdown]
# ## A real MR slice through SERAN, with its attention
#
# `attention_model(model)` returns a copy of the network (same weights) whose output is a dict:
# `"sr"` plus, for every SERA module `groupK_sera`, its `attention_maps` **M** (B, H, W, n),
# `descriptors` **V** (B, m, n), `reasoned_descriptors` **V\*** (B, m, n) and `excitation` **D**
# (B, H, W, n). The input is axial slice 8 of the bundled real T1 slab, normalised to [0, 1], and
# its MATLAB-bicubic ×2 downscaled version (the paper's BI degradation).

# %%
from keras_seran.data import (
    bicubic_downscale,
    bicubic_upscale,
    crop_to_multiple,
    load_volume,
    normalize,
)
from keras_seran.metrics import psnr

slab, _ = normalize(load_volume(samples.T1_AXIAL_SLAB).data)  # (256, 16, 256), slice axis 1
hr = np.ascontiguousarray(crop_to_multiple(slab[:, 8, :], SCALE))
lr = bicubic_downscale(hr, SCALE)

explainer = attention_model(model)
out = {
    k: keras.ops.convert_to_numpy(v)
    for k, v in explainer(lr[None, ..., None], training=False).items()
}
sr = np.clip(out["sr"][0, ..., 0], 0, 1)
direct = keras.ops.convert_to_numpy(model(lr[None, ..., None], training=False))[0, ..., 0]
print("same output as the plain model:", np.allclose(np.clip(direct, 0, 1), sr, atol=1e-5))
groups = sorted({k.split("/")[0] for k in out if "/" in k})
print("SERA modules:", groups)
for k in sorted(out):
    print(f"  {k:40s} {out[k].shape}")

bic = bicubic_upscale(lr, SCALE)
fig, axes = plt.subplots(1, 4, figsize=(14, 4))
panels = {
    f"LR {lr.shape[0]}×{lr.shape[1]}": lr,
    f"bicubic {psnr(bic, hr, 1.0, SCALE):.2f} dB": bic,
    f"SERAN {psnr(sr, hr, 1.0, SCALE):.2f} dB": sr,
    "HR (reference)": hr,
}
for ax, (title, img) in zip(axes, panels.items(), strict=True):
    ax.imshow(view(img), cmap="gray", vmin=0, vmax=1)
    ax.set_title(title)
    ax.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Squeeze: the attention maps M
#
# Each of the *n* maps is a probability distribution over the LR positions; descriptor *j* is the
# feature average under map *j*. Shown for the last SERA module as log₂ of the map relative to a
# uniform one (red: the descriptor pools from here more than an even average would; blue: less),
# with the brain outline. The title gives the map's **effective support**: exp(entropy) as a
# fraction of the image (100 % = uniform average over the whole slice, like plain global pooling).

# %%
GROUP = groups[-1]
M = out[f"{GROUP}/attention_maps"][0]  # (H, W, n), each map sums to 1
n = M.shape[-1]
support = effective_support(M)  # (n,): 1.0 = uniform over the slice

relative = np.log2(M * M[..., 0].size + 1e-12)  # 0 = uniform weight
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


# %% [markdown]
# ## Reasoning: the descriptor graph
#
# The *n* descriptors are the nodes of a graph; the reasoning step (a GloRe graph convolution)
# mixes them into V\*. Below: the n × n cosine similarity of the columns of V\* as they are;
# the same for V and V\* after removing the component all descriptors share (their mean column —
# an image-wide average, which otherwise makes every pair look alike); and V\* drawn as a graph,
# each node joined to its two most similar neighbours (centred similarity), node size proportional
# to how much of the image draws on that descriptor in the excitation (mean of D over positions).


# %%
def cosine(mat, centred=False):  # (m, n) -> (n, n), over the columns
    if centred:
        mat = mat - mat.mean(axis=1, keepdims=True)
    cols = mat / (np.linalg.norm(mat, axis=0, keepdims=True) + 1e-12)
    return cols.T @ cols


V = out[f"{GROUP}/descriptors"][0]
Vr = out[f"{GROUP}/reasoned_descriptors"][0]
D = out[f"{GROUP}/excitation"][0]  # (H, W, n), softmax over descriptors
usage = D.reshape(-1, n).mean(0)
sim = cosine(Vr, centred=True)
iu = np.triu_indices(n, 1)

fig, axes = plt.subplots(1, 4, figsize=(19, 4.5))
similarities = {
    "cos(V*) as is": cosine(Vr),
    "cos(V), shared part removed": cosine(V, centred=True),
    "cos(V*), shared part removed": sim,
}
for ax, (title, c) in zip(axes[:3], similarities.items(), strict=True):
    im = ax.imshow(c, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_title(title)
    ax.set_xlabel("descriptor")
    ax.set_ylabel("descriptor")
    fig.colorbar(im, ax=ax, fraction=0.046)

ax = axes[3]
angle = 2 * np.pi * np.arange(n) / n
xy = np.stack([np.cos(angle), np.sin(angle)], 1)
off = sim - 2 * np.eye(n)  # ignore self-similarity
for i in range(n):
    for j in np.argsort(off[i])[-2:]:
        ax.plot(
            *xy[[i, j]].T,
            color=plt.cm.RdBu_r((off[i, j] + 1) / 2),
            lw=0.5 + 3 * max(off[i, j], 0),
            zorder=1,
        )
ax.scatter(
    *xy.T,
    s=900 * usage / usage.max() + 60,
    c=[plt.get_cmap("tab20", n)(i) for i in range(n)],
    edgecolors="k",
    zorder=2,
)
for i in range(n):
    ax.annotate(str(i), xy[i] * 1.25, ha="center", va="center", fontsize=9)
ax.set_title("V* graph: 2 nearest neighbours per node\n(node size: share of excitation D)")
ax.set_xlim(-1.4, 1.4)
ax.set_ylim(-1.4, 1.4)
ax.set_aspect("equal")
ax.axis("off")
plt.tight_layout()
plt.show()
shared = np.linalg.norm(V.mean(1)) * np.sqrt(n) / np.linalg.norm(V)
print(f"share of V that is common to all descriptors: {100 * shared**2:.1f}% of its energy")
print(
    f"mean |cos| between descriptors, as is: V {np.abs(cosine(V)[iu]).mean():.3f}, "
    f"V* {np.abs(cosine(Vr)[iu]).mean():.3f}; shared part removed: "
    f"V {np.abs(cosine(V, True)[iu]).mean():.3f}, V* {np.abs(sim[iu]).mean():.3f}"
)

# %% [markdown]
# ## Excitation: which descriptor each region draws on
#
# **D** gives every LR position a mixture of the *n* reasoned descriptors. The left map colours
# each position by its dominant descriptor (arg max of D), the middle one shows how dominant it is
# (max of D; 1/n would be an even mix) and the bar chart counts the brain positions per dominant
# descriptor.

# %%
dominant = D.argmax(-1)
confidence = D.max(-1)
brain = lr > 0.05

fig, axes = plt.subplots(1, 3, figsize=(15, 4.4), gridspec_kw={"width_ratios": [1, 1, 1.2]})
cmap = plt.get_cmap("tab20", n)
im = axes[0].imshow(
    view(np.where(brain, dominant, np.nan)),
    cmap=cmap,
    vmin=-0.5,
    vmax=n - 0.5,
    interpolation="nearest",
)
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

# %% [markdown]
# ## Every SERA module at a glance
#
# One line per residual group: how spread the attention maps are, how peaked the excitation is, how
# many descriptors are the dominant one somewhere in the brain, and the module's residual scale *s*
# (`out = E + s·Z`, a learnable scalar read from the layer's weights; |s|·Z small means the module
# barely changes the features).

# %%
uses = {u.name: u for u in attention_use(model, lr)}  # s, median support of M, peak of D
lines = [
    (
        "| module | n | median support of M | mean max D | descriptors dominant somewhere | "
        "mean centred cos(V*) | s |"
    ),
    "|---|---|---|---|---|---|---|",
]
supports, scales = [], []
for g in groups:
    supports.append(uses[g].support)
    scales.append(uses[g].residual_scale)
    used = len(np.unique(out[f"{g}/excitation"][0].argmax(-1)[brain]))
    c = cosine(out[f"{g}/reasoned_descriptors"][0], centred=True)
    lines.append(
        f"| {g} | {n} | {100 * supports[-1]:.1f}% | {uses[g].excitation_peak:.3f} | "
        f"{used} | {c[iu].mean():+.2f} | {scales[-1]:+.4f} |"
    )
display(Markdown("\n".join(lines)))

verdict = []
if min(supports) > 0.9:
    verdict.append(
        f"The attention maps of this network are **close to uniform** (median support "
        f"{100 * min(supports):.1f}–{100 * max(supports):.1f}% of the slice): its descriptors "
        "are mostly image-wide averages, like the global pooling of plain channel attention, "
        "with a mild preference for some tissues (the red/blue pattern of M above)."
    )
else:
    verdict.append(
        f"Some attention maps are **local** (median support down to {100 * min(supports):.0f}% "
        "of the slice): those descriptors summarise particular regions or tissues."
    )
if max(abs(x) for x in scales) < 0.01:
    verdict.append(
        f"The residual scales are small (max |s| = {max(abs(x) for x in scales):.4f}): the "
        "SERA modules change the features only slightly and the trunk's residual blocks "
        "do most of the work — worth watching when training longer or at the paper's size."
    )
display(Markdown(" ".join(verdict)))
print(f"notebook ran in {time.perf_counter() - T0:.0f} s")

# %% [markdown]
# **Reading the pictures.** Maps M with a small support are *local* descriptors (they pool a
# particular tissue or region: skull, ventricles, cortical rim); maps near 100 % behave like the
# global average pooling of squeeze-and-excitation. Reasoning makes related descriptors similar
# (blocks in the centred similarity of V\*), and when the excitation is peaked, the arg-max map
# shows which regions draw on which descriptor — the point of SERA over a single channel-attention
# vector.
# The paragraph printed above describes what *this* network does; the briefly trained fallback
# network, the bundled `small` weights and a paper-size network trained for days all differ here.
#
# Next: `02_train_and_evaluate.ipynb` trains a network and compares it with bicubic and EDSR.
