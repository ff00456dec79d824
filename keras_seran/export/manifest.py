"""``manifest.json``: what a bundle holds and how it was checked, and the checks of its files.

Keys, in the order written: ``manifest_version``, ``created`` (UTC), ``model`` (name, source,
scale, parameters, SERAN config, GFLOPs), ``scale``, ``input_contract`` (tensor names, shapes,
range, the intensity normalisation and its inverse, int8 I/O quantisation when asked),
``calibration`` (int8 calibration slices, or None), ``signature``, ``formats_requested``,
``formats`` (one entry per exported format), ``parity`` (:func:`~keras_seran.export.parity.
parity_report`), ``parity_ok``, ``versions`` and ``files`` (sha256 and size of every other file
of the bundle).
"""

from __future__ import annotations

import datetime as _dt
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from keras_seran.contract import (
    DEFAULT_PERCENTILES,
    INPUT_NAME,
    NETWORK_RANGE,
    OUTPUT_NAME,
    SIGNATURE,
)
from keras_seran.runtime.bundle import MANIFEST, sha256

MANIFEST_VERSION = 1
#: the bundle's own README: its files, which input its weights suit, how to build engines
README = "README.md"


# --------------------------------------------------------------------------------------------
# files


def file_hashes(root: str | Path, exclude: Sequence[str] = (MANIFEST,)) -> dict[str, dict]:
    """``{relative posix path: {"sha256", "bytes"}}`` of every file under ``root``."""
    root = Path(root)
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and rel not in exclude:
            out[rel] = {"sha256": sha256(p), "bytes": p.stat().st_size}
    return out


def load_manifest(bundle_dir: str | Path) -> dict:
    return json.loads((Path(bundle_dir) / MANIFEST).read_text())


def verify_hashes(bundle_dir: str | Path) -> list[str]:
    """Files of a bundle whose sha256 differs from its manifest, or that are missing/unlisted."""
    root = Path(bundle_dir)
    listed = load_manifest(root)["files"]
    actual = file_hashes(root)
    bad = [
        f"{k}: hash mismatch"
        for k, v in listed.items()
        if k in actual and actual[k]["sha256"] != v["sha256"]
    ]
    bad += [f"{k}: missing" for k in listed if k not in actual]
    bad += [f"{k}: not in the manifest" for k in actual if k not in listed]
    return bad


# --------------------------------------------------------------------------------------------
# content


def versions() -> dict[str, str | None]:
    """Versions of everything that made or runs the bundle."""
    from importlib import metadata

    def v(*names):
        for n in names:
            try:
                return metadata.version(n)
            except metadata.PackageNotFoundError:
                continue
        return None

    import keras
    import tensorflow as tf

    from keras_seran import __version__

    return {
        "keras_seran": __version__,
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        "onnx": v("onnx"),
        "onnxruntime": v("onnxruntime"),
        "tf2onnx": v("tf2onnx"),
        "ai_edge_litert": v("ai-edge-litert"),
        "tensorrt": v("tensorrt", "tensorrt-cu12", "tensorrt-cu11"),
        "numpy": np.__version__,
        "python": sys.version.split()[0],
    }


def input_contract(
    model, scale: int, input_size: tuple[int, int] | None, int8_io: dict | None = None
) -> dict:
    """The ``input_contract`` entry: what a runtime feeds the exported network and how to read
    its output (``input_size``: the LR size of fixed-size LiteRT files, None when dynamic;
    ``int8_io``: the int8 interface's quantisation, when one was exported)."""
    channels = int(model.inputs[0].shape[-1])
    h, w = input_size if input_size is not None else ("H", "W")
    out_h = h * scale if isinstance(h, int) else f"H*{scale}"
    out_w = w * scale if isinstance(w, int) else f"W*{scale}"
    lo, hi = DEFAULT_PERCENTILES
    a, b = NETWORK_RANGE

    def tensor(name: str, height, width) -> dict:
        return {
            "name": name,
            "shape": [1, height, width, channels],
            "dtype": "float32",
            "layout": "NHWC",
            "range": [float(a), float(b)],
        }

    contract = {
        "input": {
            **tensor(INPUT_NAME, h, w),
            "dynamic_hw": input_size is None,
            "note": "SavedModel and ONNX also take any batch size and any H, W; the LiteRT "
            "files take batch 1 and "
            + ("any H, W (resize the input tensor)" if input_size is None else f"exactly {h}x{w}"),
        },
        "intensity_normalisation": {
            "method": "robust percentile, per volume",
            "percentiles": [lo, hi],
            "forward": f"x_norm = clip((x - p{lo:g}) / (p{hi:g} - p{lo:g}), {a:g}, {b:g}) with p "
            "the percentiles of the whole volume's intensities (tissue lies in [0, 1]; "
            "the margin keeps bright structures, the clip keeps a hot pixel from "
            "disturbing the whole slice through the global attention)",
            "percentile_method": "numpy.percentile over every voxel of the volume (linear "
            "interpolation); if the two percentiles coincide (a volume "
            "almost all background), the volume's min and max instead",
            "beyond_range": "keras_seran's SuperResolver adds the clipped-off part back, "
            "upscaled bicubically (optional)",
            "int8_note": "int8 models were calibrated on real MR slices normalised this way "
            "(bright structures above 1 included), so they cover the range real "
            "volumes reach; a value far beyond it saturates",
            "inverse": f"x = x_norm * (p{hi:g} - p{lo:g}) + p{lo:g}",
        },
        "output": {
            **tensor(OUTPUT_NAME, out_h, out_w),
            "note": "same normalised units as the input: apply the inverse normalisation "
            "with the input volume's percentiles, then clip to the volume's "
            "intensity range (as SuperResolver does)",
        },
        "scale": int(scale),
    }
    if int8_io:
        contract["int8_io"] = int8_io
    return contract


def model_info(model, scale: int, source: str | None) -> dict:
    """The ``model`` entry: name, source, scale, parameters; the SERAN config and GFLOPs per
    256x256 output where they can be read."""
    info = {
        "name": model.name,
        "source": source,
        "scale": int(scale),
        "parameters": int(model.count_params()),
    }
    try:
        from keras_seran.config import to_dict
        from keras_seran.models.seran import config_from_model

        info["config"] = to_dict(config_from_model(model))
    except Exception:  # not a SERAN model: baselines export too
        pass
    try:
        from keras_seran.models import count_flops

        info["gflops_per_256x256_output"] = count_flops(model, (256 // scale, 256 // scale)) / 1e9
    except Exception:  # pragma: no cover - FLOP counting is informative only
        pass
    return info


def build_manifest(
    model,
    scale: int,
    *,
    model_source: str | None,
    input_size: tuple[int, int] | None,
    int8_io: dict | None,
    calibration: dict | None,
    requested: list[str],
    formats: dict[str, dict],
    parity: dict,
    parity_ok: bool,
    trt_profiles: Sequence = (),
) -> dict:
    """The manifest of a bundle, without ``files`` (:func:`write_manifest` adds them)."""
    return {
        "manifest_version": MANIFEST_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "model": {**model_info(model, scale, model_source), **weights_guidance(model_source)},
        "scale": scale,
        "input_contract": input_contract(model, scale, input_size, int8_io),
        "calibration": calibration,
        "signature": {"name": SIGNATURE, "input": INPUT_NAME, "output": OUTPUT_NAME},
        "formats_requested": requested,
        "formats": formats,
        "fixed_size": fixed_size_files(formats, input_size, trt_profiles),
        "parity": parity,
        "parity_ok": parity_ok,
        "versions": versions(),
    }


def write_manifest(root: Path, manifest: dict) -> dict:
    """Write the bundle's README (:func:`bundle_readme`), add the hashes of every file under
    ``root`` to ``manifest`` and write it there; returns it."""
    (root / README).write_text(bundle_readme(manifest))
    manifest["files"] = file_hashes(root)
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2, default=_json_default) + "\n")
    return manifest


# --------------------------------------------------------------------------------------------
# which input the weights suit, which files are fixed-size; the bundle's README


#: Which input each degradation's weights are for (keras_seran.registry.DEGRADATIONS), and the
#: through-plane network.
SUITED_INPUT = {
    "bicubic": "the paper's protocol: LR made by bicubic downscaling of an image (downscaled "
    "pictures, benchmarks); not a scanner's own low-resolution acquisition",
    "kspace": "scanner images from k-space truncated acquisitions (a smaller acquisition matrix "
    "reconstructed at its own size): what a console acquires at low resolution",
    "throughplane": "reformats of thick-slice stacks interpolated along their slice axis",
}


def weights_guidance(model_source: str | None) -> dict:
    """``{"degradation", "suited_input"}`` for a bundled model name (``x2``, ``x2-kspace``);
    for a model file, that the degradation is whatever it was trained on."""
    from keras_seran import registry

    named = registry.parse(model_source) if model_source else None
    if named is None or (model_source and Path(model_source).exists()):
        return {
            "degradation": None,
            "suited_input": "not recorded: a model file; it suits the degradation it was "
            "trained on (bundled weights: "
            + "; ".join(f"{k}: {SUITED_INPUT[k]}" for k in registry.DEGRADATIONS)
            + ")",
        }
    degradation = getattr(named, "degradation", None)  # (none for the through-plane net)
    return {"degradation": degradation, "suited_input": SUITED_INPUT[degradation or named.name]}


def fixed_size_files(
    entries: dict, input_size: tuple[int, int] | None, trt_profiles: Sequence
) -> dict:
    """Which of the bundle's models take one LR size only (GPU delegates, NPUs and DLA want
    that): ``{"files": {path: [1, H, W, C]}, "engines": {...}, "dynamic": [...]}``."""
    files, dynamic = {}, []
    for info in entries.get("tflite", {}).get("variants", {}).values():
        shape = info["input"]["shape"]
        if -1 in shape:
            dynamic.append(info["file"])
        else:
            files[info["file"]] = shape
    dynamic += [info["file"] for info in entries.get("onnx", {}).get("variants", {}).values()]
    out = {
        "input_size": list(input_size) if input_size else None,
        "files": files,
        "dynamic": dynamic,
    }
    if "tensorrt" in entries:
        fixed = [list(p[0]) for p in trt_profiles if p[0] == p[1] == p[2]]
        out["engines"] = {
            "fixed_lr_hw": fixed,
            "note": "engines whose profile has min = opt = "
            "max take that LR size only (build_engines.sh)",
        }
    return out


def bundle_readme(manifest: dict) -> str:
    """README.md of a bundle: its files, which input the weights suit, how to build engines."""
    m, fixed = manifest["model"], manifest["fixed_size"]
    c = manifest["input_contract"]
    lines = [
        f"# {m['name']} x{manifest['scale']} export bundle",
        "",
        f"Model: {m['name']} (source: {m.get('source') or 'unknown'}), "
        f"{m['parameters']} parameters.",
        "",
        "## Which input these weights suit",
        "",
        f"Degradation trained on: {m.get('degradation') or 'not recorded'}. "
        f"Suited input: {m['suited_input']}.",
        "",
        "## Interface",
        "",
        f"Input `{c['input']['name']}` {c['input']['shape']} float32 NHWC, normalised per "
        f"volume to [0, 1] (percentiles {c['intensity_normalisation']['percentiles']}) and "
        f"clipped to {c['input']['range']}; output `{c['output']['name']}` "
        f"{c['output']['shape']} in the same units (manifest.json: input_contract).",
        "",
        "## Files",
        "",
    ]
    for name in manifest["formats"]:
        lines.append(
            f"- {name}: "
            + (
                "ok"
                if manifest["formats"][name]["status"] == "ok"
                else f"skipped ({manifest['formats'][name].get('reason')})"
            )
        )
    if fixed["files"]:
        lines += [
            "",
            "Fixed-size files (one LR size only): "
            + ", ".join(f"`{f}` {s}" for f, s in fixed["files"].items())
            + ".",
        ]
    if fixed["dynamic"]:
        lines += ["", "Dynamic H, W: " + ", ".join(f"`{f}`" for f in fixed["dynamic"]) + "."]
    onnx = manifest["formats"].get("onnx", {}).get("variants", {})
    if "int8" in onnx:
        q = onnx["int8"]["quantization"]
        lines += ["", f"int8 Q/DQ placement: {q['placement']}: {q['rules']}."]
    if "tensorrt" in manifest["formats"]:
        lines += [
            "",
            "## TensorRT engines",
            "",
            "Build them on the target (an engine is tied to its GPU and TensorRT version): "
            "`./build_engines.sh`. The script asks trtexec its version: TensorRT 8.x builds "
            "fp16 from the float32 ONNX with `--fp16` and int8 from the Q/DQ ONNX with "
            "`--int8 --fp16`; 10.x builds fp16 with `--fp16` and the Q/DQ ONNX with "
            "`--stronglyTyped`; 11 builds fp16 from the float16 ONNX and int8 from the Q/DQ "
            "ONNX, strongly typed, without precision flags.",
            f"Needs {manifest['formats']['tensorrt']['requires']}.",
        ]
    lines += [
        "",
        "Parity with Keras on held-out real MR slices: parity.md. File hashes: manifest.json.",
        "",
    ]
    return "\n".join(lines)


def _json_default(o: Any):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
