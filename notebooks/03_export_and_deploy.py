# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · Export and deploy
#
# `keras-seran export MODEL --out DIR --formats ...` writes a **deployment bundle**: every requested
# format (TensorFlow SavedModel, LiteRT/TFLite in several precisions, ONNX float32 and int8 QDQ,
# TensorRT engines where TensorRT and a GPU exist), each run on real MR slices and compared with the
# Keras model (the *parity* report), all described by `manifest.json` with a sha256 per file.
#
# This notebook exports to every format this machine can build, shows the parity table and measures
# the latency of each artifact with its own runtime (TensorFlow, LiteRT, onnxruntime).
#
# *Quick mode* (`KERAS_SERAN_SMALL=1`): two LiteRT precisions (float32, int8) instead of four, ONNX
# float32 only (no int8 calibration) and fewer timing repeats. Without bundled weights, an untrained
# `tiny` network is exported (parity does not need a trained one).

# %%
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before keras loads TensorFlow

import keras
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

# %% [markdown]
# ## Which model, which formats
#
# The bundled SERAN-small ×2 (CLI name `x2`) when the package ships it; otherwise a `.keras` file of
# an untrained `tiny` network (the line below says which). A format is requested when its toolchain
# imports here; TensorRT is always requested — the bundle records why it was skipped on a machine
# without TensorRT or a GPU, and ships `build_engines.sh` to build the engines on the target.

# %%
import functools
import importlib.util
import json
from pathlib import Path

from keras_seran import cli

WORK = Path("runs") / time.strftime("nb03_export_%Y%m%d_%H%M%S")  # under the working directory
WORK.mkdir(parents=True)
if f"x{SCALE}" in registry.available():
    MODEL = f"x{SCALE}"
    display(Markdown(f"Exporting the **bundled pretrained SERAN-small ×{SCALE}** (`{MODEL}`)."))
else:
    from keras_seran.models import seran

    MODEL = str(WORK / f"seran_tiny_x{SCALE}.keras")
    seran(SCALE, "tiny").save(MODEL)
    display(
        Markdown(
            f"**No bundled weights in this installation**: exporting an *untrained* "
            f"SERAN-tiny ×{SCALE}. Formats, parity and latency are measured the same way; "
            "its PSNR against HR is meaningless."
        )
    )


def have(module):
    return importlib.util.find_spec(module) is not None


# format -> the modules its toolchain needs; TensorRT is always requested (see above)
TOOLCHAINS = {
    "savedmodel": ["tensorflow"],
    "tflite": ["tensorflow"],
    "onnx": ["tf2onnx", "onnx", "onnxruntime"],
    "tensorrt": [],
}
FORMATS = [fmt for fmt, modules in TOOLCHAINS.items() if all(map(have, modules))]
print("model:", MODEL)
print("formats requested:", ",".join(FORMATS))

# %% [markdown]
# ## Export through the command line
#
# The same as `keras-seran export MODEL --out DIR --formats ...` in a shell: `keras_seran.cli.main`
# takes the argument list and returns the exit code. It prints its progress and the parity table.

# %%
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

# %% [markdown]
# ## The bundle
#
# `manifest.json` records the model, the input contract (normalisation, shapes, dynamic sizes),
# every format with its status and files, the parity report, and the size and sha256 of every file.

# %%
manifest = json.loads((BUNDLE / "manifest.json").read_text())
files = manifest["files"]


def size_of(prefix):
    return sum(v["bytes"] for k, v in files.items() if k == prefix or k.startswith(prefix + "/"))


def artifacts_of(entry):
    """Path in the bundle -> size in bytes of each artifact of one format's manifest entry."""
    if "path" in entry:  # a folder: the SavedModel
        return {entry["path"]: size_of(entry["path"])}
    infos = {**entry.get("variants", {}), **entry.get("engines", {})}
    return {info["file"]: files[info["file"]]["bytes"] for info in infos.values()}


lines = ["| format | status | artifacts | size |", "|---|---|---|---|"]
for fmt, entry in manifest["formats"].items():
    status = entry.get("status", "?")
    if status != "ok":
        lines.append(f"| {fmt} | {status}: {entry.get('reason', '')} | | |")
        continue
    for path, nbytes in artifacts_of(entry).items():
        shown = f"{path}/" if path == entry.get("path") else path
        lines.append(f"| {fmt} | ok | `{shown}` | {nbytes / 1024:,.0f} KiB |")
display(Markdown("\n".join(lines)))
print("input contract:", json.dumps(manifest["input_contract"]["input"], indent=None))
print("normalisation: ", manifest["input_contract"]["intensity_normalisation"]["forward"])
print(f"{len(files)} files, sha256 of each in the manifest")

# %% [markdown]
# ## Parity
#
# Every artifact was run on real MR slices and compared with the Keras model: float formats must
# match it to round-off, quantised ones must stay within a bound on their difference from it and
# within a PSNR margin of it, either way. This is
# `parity.md` of the bundle:

# %%
display(Markdown((BUNDLE / "parity.md").read_text()))
print("every format within its tolerance:", manifest["parity_ok"])

# %% [markdown]
# ## Latency
#
# Each artifact is loaded with its own runtime — the code a deployment would run — and timed on a
# real 128 × 128 LR slice (→ 256 × 256): median of several runs after one warm-up, 2 CPU threads,
# on this machine (other work on it makes the numbers noisy). The Keras model is the reference.
# The runners are the package's own, the ones the bundle's parity check used:
# `keras_seran.export.SavedModelRunner` (TensorFlow), `LiteRTRunner` (LiteRT interpreter; it
# quantises an int8 interface), `OnnxRunner` (onnxruntime, CPU) and `TensorRTRunner` (an engine on
# the GPU). Each takes a `(1, h, w, 1)` float32 LR slice and returns the SR slice.

# %%
from keras_seran.data import bicubic_downscale, crop_to_multiple, load_volume, normalize
from keras_seran.export import LiteRTRunner, OnnxRunner, SavedModelRunner, TensorRTRunner
from keras_seran.registry import load_model

slab, _ = normalize(load_volume(samples.T1_AXIAL_SLAB).data)
lr = bicubic_downscale(np.ascontiguousarray(crop_to_multiple(slab[:, 8, :], SCALE)), SCALE)
top, left = (lr.shape[0] - 128) // 2, (lr.shape[1] - 128) // 2
x = np.ascontiguousarray(lr[top : top + 128, left : left + 128])[None, ..., None].astype(np.float32)
REPEATS = 3 if SMALL else 20
RUNNERS = {
    "savedmodel": SavedModelRunner,
    "tflite": LiteRTRunner,
    "onnx": OnnxRunner,
    "tensorrt": TensorRTRunner,
}


def timed(run):
    y = run(x)  # warm-up (and the output)
    times = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times)), np.asarray(y, np.float32).reshape(-1)


# name -> (make its runner, size in bytes); a runner is made (and its runtime imported) when timed
artifacts = {"keras (reference)": (lambda: load_model(MODEL).predict_on_batch, None)}
for fmt, entry in manifest["formats"].items():
    if entry.get("status") == "ok":
        for path, nbytes in artifacts_of(entry).items():
            artifacts[path] = (functools.partial(RUNNERS[fmt], BUNDLE / path), nbytes)

lines = [
    "| artifact | size | median latency (ms) | max abs diff to Keras |",
    "|---|---:|---:|---:|",
]
reference = None
for name, (make, nbytes) in artifacts.items():
    try:
        ms, y = timed(make())
    except (ImportError, OSError, RuntimeError, ValueError) as exc:  # runtime missing or failing
        lines.append(f"| `{name}` | | not run: {type(exc).__name__}: {str(exc)[:80]} | |")
        continue
    reference = y if reference is None else reference
    size = "" if nbytes is None else f"{nbytes / 1024:,.0f} KiB"
    lines.append(f"| `{name}` | {size} | {ms:.1f} | {np.abs(y - reference).max():.4f} |")
display(Markdown("\n".join(lines)))
print(
    f"input {x.shape}, median of {REPEATS} runs each; "
    f"notebook ran in {time.perf_counter() - T0:.0f} s"
)

# %% [markdown]
# ## A whole volume from the bundle, without TensorFlow
#
# On the console the bundle runs in its own runtime: `keras-seran predict IN OUT --model BUNDLE
# --runtime litert|onnxruntime|tensorrt`, or `SuperResolver.from_bundle(BUNDLE, runtime)` in
# Python (numpy, nibabel and the runtime: `pip install "keras-seran[runtime]"`, no TensorFlow,
# Keras or JAX). The same normalisation, tiling and NIfTI geometry as the Keras path; here the
# bundled real 2×2×3 mm T1 through each runtime installed, against the Keras model, with the
# difference map of one slice.

# %%
import matplotlib.pyplot as plt
import nibabel as nib

from keras_seran import SuperResolver
from keras_seran.runtime import runners

keras_vol = np.asarray(
    SuperResolver(load_model(MODEL)).predict_volume(samples.T1_LOWRES).dataobj, np.float32
)
lo, hi = np.percentile(np.asarray(nib.load(samples.T1_LOWRES).dataobj), (0.5, 99.5))
shown = {}
for runtime in ("litert", "onnxruntime"):
    if not runners.is_installed(runtime):
        print(f"{runtime}: not installed here")
        continue
    resolver = SuperResolver.from_bundle(BUNDLE, runtime)
    t = time.perf_counter()
    vol = np.asarray(resolver.predict_volume(samples.T1_LOWRES).dataobj, np.float32)
    diff = np.abs(vol - keras_vol) / (hi - lo)  # in the network's normalised units
    print(
        f"{resolver.network.name}: {time.perf_counter() - t:.1f} s, "
        f"max |diff| to Keras {diff.max():.1e}, mean {diff.mean():.1e} (normalised units)"
    )
    shown[runtime] = (vol, diff)

k = keras_vol.shape[2] // 2
fig, axes = plt.subplots(1, 1 + 2 * len(shown), figsize=(3.2 * (1 + 2 * len(shown)), 3.4))
axes = np.atleast_1d(axes)
axes[0].imshow(np.rot90(keras_vol[:, :, k]), cmap="gray", vmin=lo, vmax=hi)
axes[0].set_title("Keras")
for i, (runtime, (vol, diff)) in enumerate(shown.items()):
    axes[1 + 2 * i].imshow(np.rot90(vol[:, :, k]), cmap="gray", vmin=lo, vmax=hi)
    axes[1 + 2 * i].set_title(runtime)
    im = axes[2 + 2 * i].imshow(np.rot90(diff[:, :, k]), cmap="magma")
    axes[2 + 2 * i].set_title(f"|{runtime} − Keras|")
    fig.colorbar(im, ax=axes[2 + 2 * i], fraction=0.046)
for ax in axes:
    ax.axis("off")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Deploying
#
# * **LiteRT (TFLite)** on an ARM console or a phone: `tflite/*_float32.tflite` or
#   `*_float16.tflite` for accuracy, `*_int8.tflite` for an NPU/DSP; builtin ops only, so the stock
#   interpreter runs them (resize the input tensor to the slice size first).
# * **ONNX** with onnxruntime (CPU, CUDA, OpenVINO, …): `onnx/*_float32.onnx`, or the int8 QDQ
#   model.
# * **TensorRT** on a Jetson: copy the bundle and run its `build_engines.sh` there (it calls
#   `trtexec` with the optimisation profiles recorded in the manifest); engines are specific to the
#   GPU and TensorRT version that built them, so they are built on the target, where
#   `keras-seran predict --model BUNDLE --runtime tensorrt` finds them.
# * **TensorFlow / TF Serving** on a server: the `savedmodel/` folder, signature `serving_default`.
#
# The input contract is the same for every format (`manifest["input_contract"]`): one LR slice
# `(1, H, W, 1)` float32, normalised by the volume's 0.5–99.5 percentiles (tissue in [0, 1]) and
# clipped to [-0.5, 1.5]; the output is `(1, H·s, W·s, 1)` in the same units. `keras-seran predict
# --model BUNDLE` does the normalisation, tiling and NIfTI geometry for whole volumes, with or
# without TensorFlow on the target.
