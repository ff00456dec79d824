"""A deployment bundle: every requested format, verified against Keras, described by manifest.json.

Layout of ``out_dir``::

    manifest.json        scale, input contract, versions, sha256 of every file, parity per format
    parity.md            the parity report as a table
    build_engines.sh     trtexec lines to build the TensorRT engines on the target (tensorrt)
    savedmodel/          SavedModel, signature serving_default: lr -> sr, dynamic B, H, W
    tflite/<name>_{float32,float16,dynamic_int8,int8}.tflite   builtin ops only
    onnx/<name>_float32.onnx, onnx/<name>_int8_qdq.onnx        opset 17-18, dynamic H, W
    engines/<name>_{fp16,int8}.engine                          only where TensorRT + a GPU exist

The bundle is built in a hidden temporary folder beside ``out_dir`` and renamed into place at the
end, so a failure never leaves a partial bundle; a non-empty ``out_dir`` is refused unless
``overwrite=True`` and it is an earlier bundle (it holds ``manifest.json``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import sys
import uuid
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from keras_seran import config
from keras_seran.config import EXPORT_FORMAT_ALIASES as ALIASES  # noqa: F401  (public name)
from keras_seran.config import EXPORT_FORMATS as FORMATS
from keras_seran.config import ExportConfig, needs_calibration
from keras_seran.contract import (DEFAULT_PERCENTILES, INPUT_NAME, NETWORK_RANGE, OUTPUT_NAME,
                                  SIGNATURE, infer_scale)
from keras_seran.errors import ExportCheckError, OutputPathError, UsageError
from keras_seran.export import litert, onnx_export, parity, tensorrt_engine
from keras_seran.export.savedmodel import SavedModelRunner, export_savedmodel
from keras_seran.files import ensure_writable_dir

MANIFEST = "manifest.json"
PARITY_MD = "parity.md"
BUILD_SCRIPT = "build_engines.sh"
MANIFEST_VERSION = 1


def parse_formats(formats: str | Iterable[str]) -> list[str]:
    """``"savedmodel,tflite"`` or a list -> canonical format names in bundle order.

    Raises :class:`UsageError` naming an unknown format and the valid ones.
    """
    return list(config.parse_formats(formats))


# Python modules each format needs here (TensorRT itself is optional: without it the engine
# build is skipped and left to the target, see tensorrt_engine).
REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "savedmodel": ("tensorflow",),
    "tflite": ("tensorflow", "ai_edge_litert"),
    "onnx": ("tensorflow", "tf2onnx", "onnx", "onnxruntime"),
    "tensorrt": ("tensorflow", "tf2onnx", "onnx", "onnxruntime"),
}


def check_requirements(formats: Iterable[str]) -> None:
    """UsageError before any work when the backend is not TensorFlow or a module that one of
    ``formats`` needs is not installed (the install command is named)."""
    import importlib.util

    from keras_seran.devices import backend

    if backend() != "tensorflow":
        raise UsageError("export converts through TensorFlow and needs the tensorflow "
                         f"backend (this is {backend()}): run it with "
                         "KERAS_BACKEND=tensorflow")
    missing = sorted({m for f in formats for m in REQUIREMENTS[f]
                      if importlib.util.find_spec(m) is None})
    if missing:
        raise UsageError(f"export to {', '.join(formats)} needs {', '.join(missing)} "
                         "(not installed): pip install 'keras-seran[tf,export]'")


def check_out_dir(out_dir: str | Path, overwrite: bool = False,
                  inputs: Iterable[str | Path] = ()) -> Path:
    """Check ``out_dir`` before anything is exported; returns it as an absolute path.

    Refused: a file; a non-empty folder without ``overwrite``, and with it one that is not a
    bundle (no ``manifest.json``: a mistyped ``--out ~/data`` must not wipe that folder); the
    current folder or one that contains it (replacing it would pull the ground from under the
    caller); a folder that contains one of ``inputs`` (e.g. the model file: replacing the folder
    would delete it); a place whose nearest existing parent is not a writable folder. Creates
    nothing: the missing parents are made when the export starts (the bundle is built beside
    ``out_dir``) and removed again if it fails.
    """
    out = Path(out_dir).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise OutputPathError(out_dir, "exists and is not a folder")
    if Path.cwd().resolve().is_relative_to(out):
        raise OutputPathError(out_dir, "is the current folder or contains it; give the bundle a "
                                       "folder of its own (e.g. --out bundle)")
    for item in inputs:
        item = Path(item).expanduser()
        if item.exists() and item.resolve().is_relative_to(out):
            raise OutputPathError(out_dir, f"contains the input {item}; exporting would replace "
                                           "it; choose another --out folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise OutputPathError(out_dir, "folder exists and is not empty; pass --overwrite to "
                                           "replace it")
        if not (out / MANIFEST).is_file():
            raise OutputPathError(out_dir, f"folder is not empty and holds no {MANIFEST}, so it is "
                                           "not an export bundle; --overwrite only replaces a "
                                           "bundle: choose another --out folder")
    ensure_writable_dir(out.parent, create=False)   # (or its nearest existing parent)
    return out


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_hashes(root: str | Path, exclude: Sequence[str] = (MANIFEST,)) -> dict[str, dict]:
    """``{relative posix path: {"sha256", "bytes"}}`` of every file under ``root``."""
    root = Path(root)
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and rel not in exclude:
            out[rel] = {"sha256": sha256(p), "bytes": p.stat().st_size}
    return out


def verify_hashes(bundle_dir: str | Path) -> list[str]:
    """Files of a bundle whose sha256 differs from its manifest, or that are missing/unlisted."""
    root = Path(bundle_dir)
    manifest = json.loads((root / MANIFEST).read_text())
    listed = manifest["files"]
    actual = file_hashes(root)
    bad = [f"{k}: hash mismatch" for k, v in listed.items()
           if k in actual and actual[k]["sha256"] != v["sha256"]]
    bad += [f"{k}: missing" for k in listed if k not in actual]
    bad += [f"{k}: not in the manifest" for k in actual if k not in listed]
    return bad


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

    return {"keras_seran": __version__, "keras": keras.__version__,
            "tensorflow": tf.__version__, "onnx": v("onnx"), "onnxruntime": v("onnxruntime"),
            "tf2onnx": v("tf2onnx"), "ai_edge_litert": v("ai-edge-litert"),
            "tensorrt": v("tensorrt", "tensorrt-cu12", "tensorrt-cu11"), "numpy": np.__version__,
            "python": sys.version.split()[0]}


def input_contract(model, scale: int, input_size: tuple[int, int] | None,
                   int8_io: dict | None = None) -> dict:
    channels = int(model.inputs[0].shape[-1])
    h, w = input_size if input_size is not None else ("H", "W")
    out_h = h * scale if isinstance(h, int) else f"H*{scale}"
    out_w = w * scale if isinstance(w, int) else f"W*{scale}"
    lo, hi = DEFAULT_PERCENTILES
    a, b = NETWORK_RANGE
    contract = {
        "input": {"name": INPUT_NAME, "shape": [1, h, w, channels], "dtype": "float32",
                  "layout": "NHWC", "range": [float(a), float(b)],
                  "dynamic_hw": input_size is None,
                  "note": "SavedModel and ONNX also take any batch size and any H, W; the LiteRT "
                          "files take batch 1 and " + ("any H, W (resize the input tensor)"
                                                       if input_size is None else
                                                       f"exactly {h}x{w}")},
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
            "int8_note": "int8 models were calibrated on real MR slices normalised this way (bright "
                         "structures above 1 included), so they cover the range real volumes "
                         "reach; a value far beyond it saturates",
            "inverse": f"x = x_norm * (p{hi:g} - p{lo:g}) + p{lo:g}",
        },
        "output": {"name": OUTPUT_NAME, "shape": [1, out_h, out_w, channels], "dtype": "float32",
                   "layout": "NHWC", "range": [float(a), float(b)],
                   "note": "same normalised units as the input: apply the inverse normalisation "
                           "with the input volume's percentiles, then clip to the volume's "
                           "intensity range (as SuperResolver does)"},
        "scale": int(scale),
    }
    if int8_io:
        contract["int8_io"] = int8_io
    return contract


def _model_info(model, scale: int, source: str | None) -> dict:
    info = {"name": model.name, "source": source, "scale": int(scale),
            "parameters": int(model.count_params())}
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


def _keras_runner(model):
    def run(x):
        return np.asarray(model(np.asarray(x, np.float32), training=False))
    return run


def _commit(tmp: Path, out: Path) -> None:
    """Move the finished bundle ``tmp`` to ``out`` (replacing ``out`` when it exists)."""
    old = None
    if out.exists():
        if out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        else:
            old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
            out.rename(old)
    try:
        tmp.rename(out)
    except OSError:
        if old is not None:
            old.rename(out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def export_bundle(model, out_dir: str | Path, formats: str | Iterable[str] = FORMATS, *,
                  scale: int | None = None,
                  calibration: Sequence[np.ndarray] | None = None,
                  parity_pairs: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
                  input_size: tuple[int, int] | None = None, int8_io: bool = False,
                  tflite_variants: Iterable[str] = litert.VARIANTS,
                  onnx_variants: Iterable[str] = onnx_export.VARIANTS,
                  opset: int = onnx_export.DEFAULT_OPSET,
                  trt_profiles: Sequence[tensorrt_engine.Profile] | None = None,
                  overwrite: bool = False, strict: bool = ExportConfig.strict,
                  num_threads: int = ExportConfig.threads,
                  model_source: str | None = None, calibration_source: str | None = None,
                  log: Callable[[str], None] | None = None) -> dict:
    """Export ``model`` to every format in ``formats``, check each against Keras, write a bundle.

    Args:
        model: a Keras SR model (B, H, W, 1) -> (B, H*s, W*s, 1), e.g. ``seran(2, "small")``.
        out_dir: the bundle folder (must be absent or empty unless ``overwrite``).
        formats: any of "savedmodel", "tflite" (= "litert"), "onnx", "tensorrt" (the latter
            also exports the ONNX files it is built from).
        scale: SR factor (inferred from the model when None).
        calibration: LR slices (1, h, w, 1), normalised as the input contract says, for int8
            calibration; default the first 12 slices of the bundled real T1 slab
            (:func:`parity.calibration_inputs`).
        parity_pairs: (LR, HR) pairs for the parity report; default the slab's 4 last slices
            (never used for calibration), sized to ``input_size`` when it is given.
        input_size: LR (H, W) of fixed-size LiteRT models (dynamic when None); also the default
            TensorRT profile (min = opt = max).
        int8_io: full-int8 LiteRT with an int8 input/output interface (default float32).
        tflite_variants / onnx_variants: which precisions to write.
        trt_profiles: (min_hw, opt_hw, max_hw) LR sizes for TensorRT.
        strict: raise :class:`ExportCheckError` (and write nothing) when a format misses its
            parity tolerance; otherwise the failure is recorded in the manifest.
        num_threads: CPU threads of the LiteRT/onnxruntime runners used for parity.
        model_source: where the model came from (recorded in the manifest).
        calibration_source: where ``calibration`` came from (recorded in the manifest).
        log: progress messages (e.g. ``print``); silent when None.

    Returns the manifest (also written to ``out_dir/manifest.json``).
    """
    say = log or (lambda msg: None)
    fmts = parse_formats(formats)
    out = check_out_dir(out_dir, overwrite,
                        inputs=[model_source] if model_source else ())
    tflite_variants = litert.check_variants(tflite_variants)
    onnx_variants = onnx_export.check_variants(onnx_variants)
    if "tensorrt" in fmts and "float32" not in onnx_variants:
        onnx_variants = ["float32", *onnx_variants]
    if "onnx" in fmts or "tensorrt" in fmts:
        opset = onnx_export.check_opset(opset)   # before the SavedModel and LiteRT conversions
    scale = int(scale or infer_scale(model))
    if input_size is not None:
        input_size = (int(input_size[0]), int(input_size[1]))
    if trt_profiles:
        trt_profiles = tensorrt_engine.check_profiles(trt_profiles)
    elif input_size is not None:
        trt_profiles = [(input_size, input_size, input_size)]
    else:
        trt_profiles = list(tensorrt_engine.DEFAULT_PROFILES)

    calibration_info = None
    if needs_calibration(fmts, tflite_variants, onnx_variants):
        if not calibration:
            calibration = parity.calibration_inputs(scale)
            calibration_source = (f"bundled real T1 slab, slices {parity.CALIBRATION_SLICES[0]}-"
                                  f"{parity.CALIBRATION_SLICES[-1]} along axis "
                                  f"{parity.SLAB_SLICE_AXIS}")
        calibration_info = {
            "source": calibration_source, "slices": len(calibration),
            "lr_range": [float(min(np.min(c) for c in calibration)),
                         float(max(np.max(c) for c in calibration))],
            "method": "min/max of every activation over the calibration slices (LiteRT "
                      "full int8; ONNX QDQ: MinMax, symmetric)"}
    if parity_pairs is None:
        parity_pairs = parity.parity_pairs(scale, lr_size=input_size)
    stem = model.name

    made = [d for d in out.parents if not d.exists()]     # parents this export creates
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputPathError(out_dir, f"cannot create the parent folder ({exc})") from exc
    tmp = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        entries: dict[str, dict] = {}
        runners: dict[str, parity.Runner] = {}
        precisions: dict[str, str] = {}

        if "savedmodel" in fmts:
            say("savedmodel: writing")
            info = export_savedmodel(model, tmp / "savedmodel", scale=scale)
            entries["savedmodel"] = {"status": "ok", "path": "savedmodel", **info}
            runners["savedmodel"] = SavedModelRunner(tmp / "savedmodel")
            precisions["savedmodel"] = "float32"

        int8_io_info = None
        if "tflite" in fmts:
            say(f"tflite: converting {', '.join(tflite_variants)} (builtin ops only)")
            infos = litert.export_tflite(model, tmp / "tflite", tflite_variants,
                                         representative=calibration, input_size=input_size,
                                         int8_io=int8_io, basename=stem)
            for variant, info in infos.items():
                info["file"] = f"tflite/{info['file']}"
                name = f"tflite/{variant}"
                runners[name] = litert.LiteRTRunner(tmp / info["file"], num_threads=num_threads)
                precisions[name] = litert.PRECISION[variant]
                if info.get("int8_io"):
                    int8_io_info = {"file": info["file"], "input": info["input"]["quantization"],
                                    "output": info["output"]["quantization"],
                                    "note": "q = clip(round(x / scale + zero_point), -128, 127); "
                                            "x = (q - zero_point) * scale"}
            entries["tflite"] = {"status": "ok", "builtin_ops_only": True,
                                 "input_size": list(input_size) if input_size else None,
                                 "variants": infos}

        onnx_files: dict[str, str] = {}
        if "onnx" in fmts or "tensorrt" in fmts:
            (tmp / "onnx").mkdir()
            variants: dict[str, dict] = {}
            fp32 = tmp / "onnx" / f"{stem}_float32.onnx"
            say(f"onnx: converting (opset {opset})")
            variants["float32"] = onnx_export.export_onnx(model, fp32, opset=opset)
            if "int8" in onnx_variants:
                say("onnx: int8 QDQ calibration on MR slices")
                variants["int8"] = onnx_export.quantize_qdq(
                    fp32, tmp / "onnx" / f"{stem}_int8_qdq.onnx", calibration)
            if "float32" not in onnx_variants:
                fp32.unlink()
                del variants["float32"]
            for variant, info in variants.items():
                info["file"] = f"onnx/{info['file']}"
                name = f"onnx/{variant}"
                runners[name] = onnx_export.OnnxRunner(tmp / info["file"], num_threads=num_threads)
                precisions[name] = onnx_export.PRECISION[variant]
                onnx_files[{"float32": "fp16", "int8": "int8"}[variant]] = info["file"]
            entries["onnx"] = {"status": "ok", "requested": "onnx" in fmts, "opset": int(opset),
                               "tensorrt_ops_checked": True, "variants": variants}

        if "tensorrt" in fmts:
            requires = onnx_export.tensorrt_requirement(opset)
            if opset > onnx_export.TENSORRT8_MAX_OPSET:
                say(f"tensorrt: note: ONNX opset {opset} needs {requires}")
            script = tensorrt_engine.build_engines_script(
                onnx_files, trt_profiles, stem=stem, channels=int(model.inputs[0].shape[-1]),
                requires=requires)
            (tmp / BUILD_SCRIPT).write_text(script)
            os.chmod(tmp / BUILD_SCRIPT, 0o755)
            profiles_json = [[list(a), list(b), list(c)] for a, b, c in trt_profiles]
            ok, reason = tensorrt_engine.tensorrt_status()
            entry = {"build_script": BUILD_SCRIPT, "profiles_lr_hw": profiles_json,
                     "requires": requires, "engines": {}}
            if not ok:
                say(f"tensorrt: skipped ({reason})")
                entry.update(status="skipped", reason=reason)
            else:
                say("tensorrt: building engines")
                (tmp / "engines").mkdir()
                entry.update(status="ok", reason=reason,
                             note="engines are specific to this GPU and TensorRT version; "
                                  "rebuild on the target with build_engines.sh")
                lr_hw = tuple(parity_pairs[0][0].shape[1:3])
                for precision, onnx_file in onnx_files.items():
                    engine = tmp / "engines" / tensorrt_engine.engine_name(stem, precision,
                                                                           trt_profiles[0], 1)
                    info = tensorrt_engine.build_engine(
                        tmp / onnx_file, engine, fp16=True, int8=precision == "int8",
                        profiles=trt_profiles, channels=int(model.inputs[0].shape[-1]))
                    info["file"] = f"engines/{engine.name}"
                    entry["engines"][precision] = info
                    name = f"tensorrt/{precision}"
                    if not tensorrt_engine.profiles_cover(trt_profiles, lr_hw):
                        info["parity"] = (f"not measured: parity LR size {lr_hw} is outside "
                                          "the profiles")
                        continue
                    try:
                        runners[name] = tensorrt_engine.TensorRTRunner(engine)
                        precisions[name] = "float16_compute" if precision == "fp16" else "int8"
                    except tensorrt_engine.TensorRTUnavailable as exc:
                        info["parity"] = f"not measured: {exc}"
            entries["tensorrt"] = entry

        say(f"parity: {len(runners)} artifact(s) on {len(parity_pairs)} real MR slices")
        report = parity.parity_report(_keras_runner(model), runners, parity_pairs, scale,
                                      precisions)
        runners.clear()
        table = parity.parity_markdown(report)
        (tmp / PARITY_MD).write_text(table)
        failed = [k for k, v in report["formats"].items() if not v["ok"]]
        if strict and failed:
            raise ExportCheckError(f"parity outside tolerance for {', '.join(failed)}:\n{table}")

        manifest = {
            "manifest_version": MANIFEST_VERSION,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "model": _model_info(model, scale, model_source),
            "scale": scale,
            "input_contract": input_contract(model, scale, input_size, int8_io_info),
            "calibration": calibration_info,
            "signature": {"name": SIGNATURE, "input": INPUT_NAME, "output": OUTPUT_NAME},
            "formats_requested": fmts,
            "formats": entries,
            "parity": report,
            "parity_ok": not failed,
            "versions": versions(),
        }
        manifest["files"] = file_hashes(tmp)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=_json_default) + "\n")
        _commit(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for d in made:                                   # innermost first; only if still empty
            try:
                d.rmdir()
            except OSError:
                break
        raise
    say(f"bundle written to {out}")
    return manifest


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def load_manifest(bundle_dir: str | Path) -> dict:
    return json.loads((Path(bundle_dir) / MANIFEST).read_text())
