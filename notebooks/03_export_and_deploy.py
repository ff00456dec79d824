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

# %% [markdown]
# ## Which model, which formats
#
# The bundled SERAN-small ×2 (CLI name `x2`) when the package ships it; otherwise a `.keras` file of
# an untrained `tiny` network (the line below says which). A format is requested when its toolchain
# imports here; TensorRT is always requested — the bundle records why it was skipped on a machine
# without TensorRT or a GPU, and ships `build_engines.sh` to build the engines on the target.

# %%
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
# `manifest.json` records the model, the input contract (normalisation, shapes, dynamic sizes), every
# format with its status and files, the parity report, and the size and sha256 of every file.

# %%
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

# %%
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
display(Markdown("\n".join(lines)))
print(f"input {x.shape}, median of {REPEATS} runs each; notebook ran in {time.perf_counter() - T0:.0f} s")

# %% [markdown]
# ## Deploying
#
# * **LiteRT (TFLite)** on an ARM console or a phone: `tflite/*_float32.tflite` or `*_float16.tflite`
#   for accuracy, `*_int8.tflite` for an NPU/DSP; builtin ops only, so the stock interpreter runs
#   them (resize the input tensor to the slice size first).
# * **ONNX** with onnxruntime (CPU, CUDA, OpenVINO, …): `onnx/*_float32.onnx`, or the int8 QDQ model.
# * **TensorRT** on a Jetson: copy the bundle and run its `build_engines.sh` there (it calls
#   `trtexec` with the optimisation profiles recorded in the manifest); engines are specific to the
#   GPU and TensorRT version that built them, so they are built on the target.
# * **TensorFlow / TF Serving** on a server: the `savedmodel/` folder, signature `serving_default`.
#
# The input contract is the same for every format (`manifest["input_contract"]`): one LR slice
# `(1, H, W, 1)` float32, normalised by the volume's 0.5–99.5 percentiles (tissue in [0, 1]) and
# clipped to [-0.5, 1.5]; the output is `(1, H·s, W·s, 1)` in the same units. Where TensorFlow runs on the target, `keras-seran predict`
# does the normalisation, tiling and NIfTI geometry for whole volumes.
