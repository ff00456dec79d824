"""A deployment bundle: every requested format, verified against Keras, described by manifest.json.

Layout of ``out_dir``::

    manifest.json        scale, input contract, versions, sha256 of every file, parity per format
    parity.md            the parity report as a table
    build_engines.sh     trtexec lines to build the TensorRT engines on the target (tensorrt)
    savedmodel/          SavedModel, signature serving_default: lr -> sr, dynamic B, H, W
    tflite/<name>_{float32,float16,dynamic_int8,int8}.tflite   builtin ops only
    onnx/<name>_{float32,float16}.onnx, onnx/<name>_int8_qdq.onnx   opset 17-18, dynamic H, W
    engines/<name>_{fp16,int8}.engine                          only where TensorRT + a GPU exist
    README.md            what the bundle holds, which input its weights suit, how to build engines

Each format is exported by its function in :mod:`.formats` (the registry), the manifest is
written by :mod:`.manifest`; :func:`export_bundle` checks the arguments, runs the exporters,
measures parity and commits the bundle. The bundle is built in a hidden temporary folder beside
``out_dir`` and renamed into place at the end, so a failure never leaves a partial bundle; a
non-empty ``out_dir`` is refused unless ``overwrite=True`` and it is an earlier bundle (it holds
``manifest.json``).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from keras_seran import config
from keras_seran.config import EXPORT_FORMAT_ALIASES as ALIASES  # noqa: F401  (public name)
from keras_seran.config import ExportConfig, needs_calibration
from keras_seran.contract import infer_scale
from keras_seran.errors import ExportCheckError, OutputPathError, UsageError
from keras_seran.export import litert, onnx_export, parity, tensorrt_engine
from keras_seran.export.formats import FORMAT_REGISTRY, FORMATS, BundleJob, export_steps
from keras_seran.export.manifest import MANIFEST, build_manifest, write_manifest
from keras_seran.files import ensure_writable_dir

PARITY_MD = "parity.md"


def parse_formats(formats: str | Iterable[str]) -> list[str]:
    """``"savedmodel,tflite"`` or a list -> canonical format names in bundle order.

    Raises :class:`UsageError` naming an unknown format and the valid ones.
    """
    return list(config.parse_formats(formats))


def check_requirements(formats: Iterable[str]) -> None:
    """UsageError before any work when the backend is not TensorFlow or a module that one of
    ``formats`` needs is not installed (the install command is named)."""
    import importlib.util

    from keras_seran.devices import backend

    if backend() != "tensorflow":
        raise UsageError(
            "export converts through TensorFlow and needs the tensorflow "
            f"backend (this is {backend()}): run it with "
            "KERAS_BACKEND=tensorflow"
        )
    missing = sorted(
        {
            m
            for f in formats
            for m in FORMAT_REGISTRY[f].requires
            if importlib.util.find_spec(m) is None
        }
    )
    if missing:
        raise UsageError(
            f"export to {', '.join(formats)} needs {', '.join(missing)} "
            "(not installed): pip install 'keras-seran[tf,export]'"
        )


def check_out_dir(
    out_dir: str | Path, overwrite: bool = False, inputs: Iterable[str | Path] = ()
) -> Path:
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
        raise OutputPathError(
            out_dir,
            "is the current folder or contains it; give the bundle a "
            "folder of its own (e.g. --out bundle)",
        )
    for item in inputs:
        item = Path(item).expanduser()
        if item.exists() and item.resolve().is_relative_to(out):
            raise OutputPathError(
                out_dir,
                f"contains the input {item}; exporting would replace "
                "it; choose another --out folder",
            )
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise OutputPathError(
                out_dir, "folder exists and is not empty; pass --overwrite to replace it"
            )
        if not (out / MANIFEST).is_file():
            raise OutputPathError(
                out_dir,
                f"folder is not empty and holds no {MANIFEST}, so it is "
                "not an export bundle; --overwrite only replaces a "
                "bundle: choose another --out folder",
            )
    ensure_writable_dir(out.parent, create=False)  # (or its nearest existing parent)
    return out


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


def export_bundle(
    model,
    out_dir: str | Path,
    formats: str | Iterable[str] = FORMATS,
    *,
    scale: int | None = None,
    calibration: Sequence[np.ndarray] | None = None,
    parity_pairs: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
    input_size: tuple[int, int] | None = None,
    int8_io: bool = False,
    tflite_variants: Iterable[str] = litert.VARIANTS,
    onnx_variants: Iterable[str] = onnx_export.VARIANTS,
    opset: int = onnx_export.DEFAULT_OPSET,
    trt_profiles: Sequence[tensorrt_engine.Profile] | None = None,
    overwrite: bool = False,
    strict: bool = ExportConfig.strict,
    num_threads: int = ExportConfig.threads,
    model_source: str | None = None,
    calibration_source: str | None = None,
    log: Callable[[str], None] | None = None,
) -> dict:
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
    out = check_out_dir(out_dir, overwrite, inputs=[model_source] if model_source else ())
    tflite_variants = litert.check_variants(tflite_variants)
    onnx_variants = onnx_export.check_variants(onnx_variants)
    if "tensorrt" in fmts:  # fp16 engines: float32 ONNX (TensorRT 8/10), float16 ONNX (11)
        onnx_variants = [
            v for v in onnx_export.VARIANTS if v in {*onnx_variants, "float32", "float16"}
        ]
    if "onnx" in fmts or "tensorrt" in fmts:
        opset = onnx_export.check_opset(opset)  # before the SavedModel and LiteRT conversions
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
        calibration, calibration_info = _calibration(scale, calibration, calibration_source)
    if parity_pairs is None:
        parity_pairs = parity.parity_pairs(scale, lr_size=input_size)

    tmp, made = _partial_folder(out, out_dir)
    try:
        job = BundleJob(
            model,
            tmp,
            fmts,
            scale,
            input_size,
            int8_io,
            tflite_variants,
            onnx_variants,
            opset,
            trt_profiles,
            calibration,
            parity_pairs,
            num_threads,
            say,
        )
        entries = {name: FORMAT_REGISTRY[name].export(job) for name in export_steps(fmts)}
        report = _parity(job, strict)
        manifest = write_manifest(
            tmp,
            build_manifest(
                model,
                scale,
                model_source=model_source,
                input_size=input_size,
                int8_io=job.int8_io_info,
                calibration=calibration_info,
                requested=fmts,
                formats=entries,
                parity=report,
                parity_ok=all(v["ok"] for v in report["formats"].values()),
                trt_profiles=trt_profiles,
            ),
        )
        _commit(tmp, out)
    except BaseException:
        _discard(tmp, made)
        raise
    say(f"bundle written to {out}")
    return manifest


def _parity(job: BundleJob, strict: bool) -> dict:
    """Every registered runner against Keras on the job's real MR slices; writes parity.md.
    ExportCheckError with the table when ``strict`` and a format misses its tolerance."""
    job.say(f"parity: {len(job.runners)} artifact(s) on {len(job.parity_pairs)} real MR slices")
    report = parity.parity_report(
        _keras_runner(job.model), job.runners, job.parity_pairs, job.scale, job.precisions
    )
    job.runners.clear()
    table = parity.parity_markdown(report)
    (job.tmp / PARITY_MD).write_text(table)
    failed = [k for k, v in report["formats"].items() if not v["ok"]]
    if strict and failed:
        raise ExportCheckError(f"parity outside tolerance for {', '.join(failed)}:\n{table}")
    return report


def _partial_folder(out: Path, out_dir: str | Path) -> tuple[Path, list[Path]]:
    """(the hidden folder beside ``out`` the bundle is built in, the parents of ``out`` created
    for it, innermost first); OutputPathError naming ``out_dir`` when they cannot be made."""
    made = [d for d in out.parents if not d.exists()]
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputPathError(out_dir, f"cannot create the parent folder ({exc})") from exc
    tmp = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    return tmp, made


def _discard(tmp: Path, made: list[Path]) -> None:
    """Remove a failed bundle's folder and the parents made for it (only those left empty)."""
    shutil.rmtree(tmp, ignore_errors=True)
    for d in made:  # innermost first; only if still empty
        try:
            d.rmdir()
        except OSError:
            break


def _calibration(
    scale: int, calibration: Sequence[np.ndarray] | None, source: str | None
) -> tuple[Sequence[np.ndarray], dict]:
    """The int8 calibration slices (default: the bundled real T1 slab's) and the manifest's
    ``calibration`` entry describing them."""
    if not calibration:
        calibration = parity.calibration_inputs(scale)
        source = (
            f"bundled real T1 slab, slices {parity.CALIBRATION_SLICES[0]}-"
            f"{parity.CALIBRATION_SLICES[-1]} along axis {parity.SLAB_SLICE_AXIS}"
        )
    return calibration, {
        "source": source,
        "slices": len(calibration),
        "lr_range": [
            float(min(np.min(c) for c in calibration)),
            float(max(np.max(c) for c in calibration)),
        ],
        "method": "min/max of every activation over the calibration slices (LiteRT "
        "full int8; ONNX QDQ: MinMax, symmetric)",
    }
