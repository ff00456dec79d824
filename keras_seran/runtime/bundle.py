"""Read an export bundle (``keras-seran export``) and open one of its artifacts in its runtime.

The bundle's ``manifest.json`` (written by :mod:`keras_seran.export.manifest`) says which
artifact each runtime runs, at which precision, which files take one LR size only
(``fixed_size``) and the sha256 of every file. :func:`open_artifact` picks the artifact for a
runtime and precision (or the first installed default, :data:`DEFAULT_ORDER`), checks its
hash, and returns a :class:`BundleArtifact`: the runner (:mod:`.runners`) with the scale, the
fixed input size if any, and a one-line description. numpy only: no TensorFlow, Keras or JAX.

Every problem is a one-line :class:`~keras_seran.errors.InputDataError` naming the file
(missing manifest or artifact, hash mismatch, no artifact for that runtime) or a
:class:`~keras_seran.errors.UsageError` (a scale other than the bundle's;
:class:`~keras_seran.errors.RuntimeUnavailable` when the runtime is not installed).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from keras_seran.config import RUNTIMES
from keras_seran.errors import InputDataError, UsageError
from keras_seran.runtime import runners

MANIFEST = "manifest.json"

#: The default choice, first installed and present wins, a file that takes any size before a
#: fixed-size one (whose tiles and padding change SERA's global attention): a TensorRT engine
#: where one was built (a Jetson), then the float32 models: LiteRT (on the CPU as fast as
#: onnxruntime or faster, in a third of the memory: docs/benchmarks.md), then onnxruntime.
DEFAULT_ORDER: tuple[tuple[str, str], ...] = (
    ("tensorrt", "fp16"),
    ("litert", "float32"),
    ("onnxruntime", "float32"),
)


def sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def is_bundle(path: Any) -> bool:
    """Whether ``path`` is a folder holding a ``manifest.json`` (an export bundle)."""
    return path is not None and (Path(path).expanduser() / MANIFEST).is_file()


def read_manifest(bundle_dir: str | Path) -> dict:
    """The bundle's manifest; InputDataError naming the file when absent or unreadable."""
    root = Path(bundle_dir).expanduser()
    path = root / MANIFEST
    if not root.is_dir():
        raise InputDataError(
            root, "no such bundle folder; give the folder written by keras-seran export"
        )
    if not path.is_file():
        raise InputDataError(path, "missing: not an export bundle (keras-seran export writes it)")
    try:
        manifest = json.loads(path.read_text())
        int(manifest["scale"]), manifest["formats"], manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputDataError(path, f"unreadable manifest ({type(exc).__name__}: {exc})") from None
    return manifest


def artifacts(manifest: dict, bundle_dir: str | Path | None = None) -> dict[tuple[str, str], str]:
    """``{(runtime, precision): file}`` of the bundle's models, in the manifest's order; with
    ``bundle_dir``, also the TensorRT engines that ``build_engines.sh`` built there on the
    target (the manifest's ``target_engines``), where the export built none."""
    formats = manifest["formats"]
    out: dict[tuple[str, str], str] = {}
    for fmt, runtime in (("tflite", "litert"), ("onnx", "onnxruntime")):
        for precision, info in formats.get(fmt, {}).get("variants", {}).items():
            out[runtime, precision] = info["file"]
    trt = formats.get("tensorrt", {})
    for precision, info in trt.get("engines", {}).items():
        if "file" in info:
            out["tensorrt", precision] = info["file"]
    if bundle_dir is not None:
        root = Path(bundle_dir).expanduser()
        for file, info in trt.get("target_engines", {}).items():
            key = ("tensorrt", info["precision"])
            if key not in out and (root / file).is_file():
                out[key] = file
    return out


def target_engine(manifest: dict, file: str) -> dict | None:
    """The manifest's entry of an engine that build_engines.sh makes on the target, if ``file``
    is one."""
    return manifest["formats"].get("tensorrt", {}).get("target_engines", {}).get(file)


def fixed_input_size(manifest: dict, file: str) -> tuple[int, int] | None:
    """The LR (H, W) a fixed-size file takes, None when it takes any size (an engine: any size
    within its profile)."""
    engine = target_engine(manifest, file)
    if engine is not None:
        mn, _, mx = engine["profile_lr_hw"]
        return (int(mn[0]), int(mn[1])) if list(mn) == list(mx) else None
    shape = manifest.get("fixed_size", {}).get("files", {}).get(file)
    return None if shape is None else (int(shape[1]), int(shape[2]))


def choose(
    manifest: dict, bundle_dir: str | Path, runtime: str | None = None, precision: str | None = None
) -> tuple[str, str, str]:
    """(runtime, precision, file) for what was asked; the default is the first of
    :data:`DEFAULT_ORDER` installed and present, then any present artifact of an installed
    runtime, files of any size before fixed-size ones. InputDataError naming the bundle when it
    holds nothing that fits; RuntimeUnavailable when the asked runtime is not installed."""
    have = artifacts(manifest, bundle_dir)
    where = Path(bundle_dir).expanduser() / MANIFEST
    if runtime is not None and runtime not in RUNTIMES:
        raise UsageError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    if runtime is not None:
        runners.require(runtime)
        fits = [(r, p) for r, p in have if r == runtime and precision in (None, p)]
        if not fits:
            listed = ", ".join(p for r, p in have if r == runtime) or "none"
            raise InputDataError(
                where,
                f"no {runtime} artifact at precision {precision} (it has: {listed})"
                if precision
                else f"no {runtime} artifact (export it with --formats "
                f"{'litert' if runtime == 'litert' else 'onnx'}, or build "
                "engines with build_engines.sh)",
            )
        pick = next((k for k in DEFAULT_ORDER if k in fits), fits[0])
        return (*pick, have[pick])
    installed = [k for k in have if runners.is_installed(k[0])]
    if precision is not None:
        installed = [k for k in installed if k[1] == precision]
    ranked = sorted(
        installed,
        key=lambda k: (
            fixed_input_size(manifest, have[k]) is not None,
            DEFAULT_ORDER.index(k) if k in DEFAULT_ORDER else len(DEFAULT_ORDER),
        ),
    )
    pick = ranked[0] if ranked else None
    if pick is None:
        present = ", ".join(f"{r}/{p}" for r, p in have) or "none"
        missing = sorted({r for r, _ in have if not runners.is_installed(r)})
        hint = f"; install {', '.join(missing)} (keras-seran[runtime])" if missing else ""
        raise InputDataError(
            where,
            "no artifact this machine can run"
            + (f" at precision {precision}" if precision else "")
            + f" (it has: {present}){hint}",
        )
    return (*pick, have[pick])


def verify_file(bundle_dir: str | Path, manifest: dict, file: str) -> Path:
    """The artifact's path, checked against the manifest's sha256; InputDataError naming it
    when missing, unlisted or changed."""
    path = Path(bundle_dir).expanduser() / file
    if not path.is_file():
        raise InputDataError(path, "missing from the bundle (listed in its manifest.json)")
    listed = manifest["files"].get(file)
    if listed is None and target_engine(manifest, file) is not None:
        if path.stat().st_size == 0:
            raise InputDataError(path, "empty engine file; rebuild it with build_engines.sh")
        return path  # built on the target after the export: no hash to check it against
    if listed is None:
        raise InputDataError(
            path,
            "not listed in the bundle's manifest.json, so it cannot be "
            "verified; re-export the bundle",
        )
    if sha256(path) != listed["sha256"]:
        raise InputDataError(
            path,
            "sha256 differs from the bundle's manifest.json (a changed "
            "or damaged file); re-export or re-copy the bundle",
        )
    return path


@dataclass(frozen=True)
class BundleArtifact:
    """One artifact of a bundle, opened.

    Attributes:
        run: (B, h, w, 1) float32 -> (B, h*s, w*s, 1) float32 (:mod:`.runners`).
        scale: the bundle's SR factor.
        runtime, precision, file: what runs (file relative to the bundle).
        input_size: the LR (H, W) a fixed-size file takes (the caller tiles and pads to it),
            None for any size.
        tolerance: the parity tolerance the export checked this artifact against (the
            manifest's parity entry), e.g. ``{"max_abs_diff": 1e-4}``.
        bundle: the bundle folder.
    """

    run: Callable[[np.ndarray], np.ndarray]
    scale: int
    runtime: str
    precision: str
    file: str
    input_size: tuple[int, int] | None
    tolerance: dict
    bundle: Path

    @property
    def description(self) -> str:
        size = (
            f", fixed LR size {self.input_size[0]}x{self.input_size[1]}" if self.input_size else ""
        )
        return f"{self.runtime} {self.precision} ({self.file}{size})"


PARITY_NAME = {"litert": "tflite", "onnxruntime": "onnx", "tensorrt": "tensorrt"}


def open_artifact(
    bundle_dir: str | Path,
    runtime: str | None = None,
    precision: str | None = None,
    scale: int | None = None,
    num_threads: int | None = None,
) -> BundleArtifact:
    """Read and check the bundle, pick the artifact and open it in its runtime.

    Args:
        bundle_dir: the folder written by ``keras-seran export``.
        runtime: "litert", "onnxruntime" or "tensorrt"; None: :func:`choose`'s default.
        precision: the variant (float32, float16, dynamic_int8, int8; fp16/int8 engines);
            None: float32 where present.
        scale: the factor the caller expects (UsageError when the bundle's differs).
        num_threads: CPU threads (LiteRT, onnxruntime); None: :func:`runners.default_threads`.

    Raises InputDataError / UsageError / RuntimeUnavailable (see the module docstring).
    """
    root = Path(bundle_dir).expanduser()
    manifest = read_manifest(root)
    bundle_scale = int(manifest["scale"])
    if scale is not None and int(scale) != bundle_scale:
        raise UsageError(
            f"{root}: the bundle upscales by {bundle_scale}, not by the requested "
            f"--scale {scale}; drop --scale or give an x{scale} bundle"
        )
    runtime, precision, file = choose(manifest, root, runtime, precision)
    path = verify_file(root, manifest, file)
    threads = num_threads or runners.default_threads()
    if runtime == "tensorrt":
        run = runners.TensorRTRunner(path)
    else:
        run = runners.RUNNERS[runtime](path, num_threads=threads)
    entry = (
        manifest.get("parity", {}).get("formats", {}).get(f"{PARITY_NAME[runtime]}/{precision}", {})
    )
    return BundleArtifact(
        run,
        bundle_scale,
        runtime,
        precision,
        file,
        fixed_input_size(manifest, file),
        dict(entry.get("tolerance", {})),
        root,
    )
