"""The bundle's formats: one exporter per format behind a registry (:data:`FORMAT_REGISTRY`).

An exporter takes the :class:`BundleJob` (the model, the bundle's temporary folder, the settings),
writes its files, registers a parity runner for every model it wrote (:meth:`BundleJob.verify`;
parity with Keras on real MR slices is measured once all formats are written) and returns its
``formats`` entry of the manifest. The driver is :func:`keras_seran.export.bundle.export_bundle`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from keras_seran.errors import RuntimeUnavailable
from keras_seran.export import litert, onnx_export, parity, tensorrt_engine
from keras_seran.export.savedmodel import SavedModelRunner, export_savedmodel

BUILD_SCRIPT = "build_engines.sh"


@dataclass
class BundleJob:
    """One bundle being written: what every exporter reads, and what they leave for the driver.

    ``runners`` / ``precisions``: name (``"tflite/int8"``) -> parity runner / precision class
    (a key of :data:`keras_seran.export.parity.TOLERANCES`) of every model written;
    ``onnx_files``: ONNX variant ("float32", "float16", "int8") -> its file (the TensorRT
    engines are built from them, :func:`keras_seran.export.tensorrt_engine.build_plan`); ``int8_io``: the quantisation of a LiteRT int8 interface (for the input contract).
    """

    model: Any
    tmp: Path
    requested: list[str]
    scale: int
    input_size: tuple[int, int] | None
    int8_io: bool
    tflite_variants: list[str]
    onnx_variants: list[str]
    opset: int
    trt_profiles: list
    calibration: Sequence[np.ndarray] | None
    parity_pairs: Sequence[tuple[np.ndarray, np.ndarray]]
    num_threads: int
    say: Callable[[str], None]
    runners: dict[str, parity.Runner] = field(default_factory=dict)
    precisions: dict[str, str] = field(default_factory=dict)
    onnx_files: dict[str, str] = field(default_factory=dict)
    int8_io_info: dict | None = None

    @property
    def stem(self) -> str:
        """File name stem of every model file (the Keras model's name)."""
        return self.model.name

    @property
    def channels(self) -> int:
        return int(self.model.inputs[0].shape[-1])

    def verify(self, name: str, runner: parity.Runner, precision: str) -> None:
        """Check the model ``name`` against Keras with ``runner`` at ``precision``'s tolerance."""
        self.runners[name] = runner
        self.precisions[name] = precision

    def verify_files(self, folder: str, infos: dict[str, dict], runner, precisions) -> None:
        """Check each variant file of ``folder`` (``infos``: variant -> info with its ``file``,
        made relative to the bundle here) with ``runner(path, num_threads=...)``."""
        for variant, info in infos.items():
            info["file"] = f"{folder}/{info['file']}"
            self.verify(
                f"{folder}/{variant}",
                runner(self.tmp / info["file"], num_threads=self.num_threads),
                precisions[variant],
            )


def export_savedmodel_format(job: BundleJob) -> dict:
    job.say("savedmodel: writing")
    info = export_savedmodel(job.model, job.tmp / "savedmodel", scale=job.scale)
    job.verify("savedmodel", SavedModelRunner(job.tmp / "savedmodel"), "float32")
    return {"status": "ok", "path": "savedmodel", **info}


def export_tflite_format(job: BundleJob) -> dict:
    job.say(f"tflite: converting {', '.join(job.tflite_variants)} (builtin ops only)")
    infos = litert.export_tflite(
        job.model,
        job.tmp / "tflite",
        job.tflite_variants,
        representative=job.calibration,
        input_size=job.input_size,
        int8_io=job.int8_io,
        basename=job.stem,
    )
    job.verify_files("tflite", infos, litert.LiteRTRunner, litert.PRECISION)
    for info in infos.values():
        if info.get("int8_io"):
            job.int8_io_info = {
                "file": info["file"],
                "input": info["input"]["quantization"],
                "output": info["output"]["quantization"],
                "note": "q = clip(round(x / scale + zero_point), -128, 127); "
                "x = (q - zero_point) * scale",
            }
    return {
        "status": "ok",
        "builtin_ops_only": True,
        "input_size": list(job.input_size) if job.input_size else None,
        "variants": infos,
    }


def export_onnx_format(job: BundleJob) -> dict:
    (job.tmp / "onnx").mkdir()
    variants: dict[str, dict] = {}
    fp32 = job.tmp / "onnx" / f"{job.stem}_float32.onnx"
    job.say(f"onnx: converting (opset {job.opset})")
    variants["float32"] = onnx_export.export_onnx(job.model, fp32, opset=job.opset)
    if "float16" in job.onnx_variants:
        variants["float16"] = onnx_export.export_float16(
            fp32, job.tmp / "onnx" / f"{job.stem}_float16.onnx"
        )
    if "int8" in job.onnx_variants:
        job.say("onnx: int8 QDQ calibration on MR slices (TensorRT's Q/DQ placement)")
        variants["int8"] = onnx_export.quantize_qdq(
            fp32, job.tmp / "onnx" / f"{job.stem}_int8_qdq.onnx", job.calibration
        )
    if "float32" not in job.onnx_variants:
        fp32.unlink()
        del variants["float32"]
    job.verify_files("onnx", variants, onnx_export.OnnxRunner, onnx_export.PRECISION)
    job.onnx_files.update({variant: info["file"] for variant, info in variants.items()})
    return {
        "status": "ok",
        "requested": "onnx" in job.requested,
        "opset": int(job.opset),
        "tensorrt_ops_checked": True,
        "variants": variants,
    }


def export_tensorrt_format(job: BundleJob) -> dict:
    requires = onnx_export.tensorrt_requirement(job.opset)
    if job.opset > onnx_export.TENSORRT8_MAX_OPSET:
        job.say(f"tensorrt: note: ONNX opset {job.opset} needs {requires}")
    script = tensorrt_engine.build_engines_script(
        job.onnx_files,
        job.trt_profiles,
        stem=job.stem,
        channels=job.channels,
        requires=requires,
        opset=job.opset,
    )
    (job.tmp / BUILD_SCRIPT).write_text(script)
    os.chmod(job.tmp / BUILD_SCRIPT, 0o755)
    profiles_json = [[list(a), list(b), list(c)] for a, b, c in job.trt_profiles]
    ok, reason = tensorrt_engine.tensorrt_status()
    entry = {
        "build_script": BUILD_SCRIPT,
        "profiles_lr_hw": profiles_json,
        "requires": requires,
        "engines": {},
        # what build_engines.sh writes on the target: keras-seran predict --model finds them there
        "target_engines": {
            "engines/"
            + tensorrt_engine.engine_name(job.stem, precision, profile, len(job.trt_profiles)): {
                "precision": precision,
                "profile_lr_hw": [list(hw) for hw in profile],
            }
            for precision in tensorrt_engine.PRECISIONS
            for profile in job.trt_profiles
        },
    }
    if not ok:
        job.say(f"tensorrt: skipped ({reason})")
        entry.update(status="skipped", reason=reason)
        return entry
    job.say("tensorrt: building engines")
    (job.tmp / "engines").mkdir()
    entry.update(
        status="ok",
        reason=reason,
        note="engines are specific to this GPU and TensorRT version; "
        "rebuild on the target with build_engines.sh",
    )
    lr_hw = tuple(job.parity_pairs[0][0].shape[1:3])
    import tensorrt

    for precision in tensorrt_engine.PRECISIONS:
        plan = tensorrt_engine.build_plan(tensorrt.__version__, precision)
        if plan.onnx not in job.onnx_files:
            continue
        onnx_file = job.onnx_files[plan.onnx]
        engine = (
            job.tmp
            / "engines"
            / tensorrt_engine.engine_name(job.stem, precision, job.trt_profiles[0], 1)
        )
        info = tensorrt_engine.build_engine(
            job.tmp / onnx_file,
            engine,
            fp16=True,
            int8=precision == "int8",
            profiles=job.trt_profiles,
            channels=job.channels,
        )
        info["file"] = f"engines/{engine.name}"
        entry["engines"][precision] = info
        if not tensorrt_engine.profiles_cover(job.trt_profiles, lr_hw):
            info["parity"] = f"not measured: parity LR size {lr_hw} is outside the profiles"
            continue
        try:
            job.verify(
                f"tensorrt/{precision}",
                tensorrt_engine.TensorRTRunner(engine),
                "float16_compute" if precision == "fp16" else "int8",
            )
        except (tensorrt_engine.TensorRTUnavailable, RuntimeUnavailable) as exc:
            info["parity"] = f"not measured: {exc}"
    return entry


@dataclass(frozen=True)
class Format:
    """One format of the bundle: its exporter, what it writes, how it is verified.

    ``requires``: the Python modules exporting it needs here; ``builds_on``: formats whose
    files it is made from (exported first even when not requested).
    """

    name: str
    export: Callable[[BundleJob], dict]
    writes: str
    verified: str
    requires: tuple[str, ...]
    builds_on: tuple[str, ...] = ()


#: what the ONNX (and so the TensorRT) export imports
ONNX_REQUIRES = ("tensorflow", "tf2onnx", "onnx", "onnxruntime", "onnxconverter_common")

#: The formats, in bundle order. TensorRT itself is optional: without it the engine build is
#: skipped and left to the target (``build_engines.sh``).
FORMAT_REGISTRY: dict[str, Format] = {
    f.name: f
    for f in (
        Format(
            "savedmodel",
            export_savedmodel_format,
            writes="savedmodel/: signature serving_default lr -> sr, dynamic B, H, W",
            verified="float32, against Keras",
            requires=("tensorflow",),
        ),
        Format(
            "tflite",
            export_tflite_format,
            writes="tflite/<name>_<variant>.tflite per requested precision, builtin ops only",
            verified="each variant at its precision's tolerance (LiteRT interpreter)",
            requires=("tensorflow", "ai_edge_litert"),
        ),
        Format(
            "onnx",
            export_onnx_format,
            writes="onnx/<name>_{float32,float16}.onnx, onnx/<name>_int8_qdq.onnx "
            "(TensorRT-compatible ops; TensorRT's Q/DQ placement)",
            verified="each variant at its precision's tolerance (onnxruntime)",
            requires=ONNX_REQUIRES,
        ),
        Format(
            "tensorrt",
            export_tensorrt_format,
            writes="build_engines.sh (trtexec lines); engines/<name>_{fp16,int8}.engine where "
            "TensorRT and a GPU exist",
            verified="each engine built here, when the parity size is within its profiles",
            requires=ONNX_REQUIRES,
            builds_on=("onnx",),
        ),
    )
}

FORMATS: tuple[str, ...] = tuple(FORMAT_REGISTRY)


def export_steps(requested: Sequence[str]) -> list[str]:
    """The formats to export, in bundle order: the requested ones and those they build on."""
    wanted = set(requested)
    for name in requested:
        wanted |= set(FORMAT_REGISTRY[name].builds_on)
    return [f for f in FORMATS if f in wanted]
