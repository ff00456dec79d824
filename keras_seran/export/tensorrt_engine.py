"""TensorRT engines from the exported ONNX (TF-TRT is gone: TensorRT goes through ONNX).

* :func:`build_engine` builds a serialized engine with the TensorRT Python API: fp16 from the
  float32 ONNX, int8 from the QDQ ONNX (explicit quantization), one optimization profile per
  (min, opt, max) LR slice size.
* :func:`trtexec_command` / :func:`build_engines_script` write the equivalent ``trtexec`` command
  lines (``build_engines.sh`` in the bundle) so the engines can be built on the Jetson itself:
  an engine is specific to the GPU and TensorRT version that built it.
* :func:`tensorrt_status` says whether this machine can build engines (the ``tensorrt`` package
  and a CUDA GPU); where it cannot, the bundle records the reason and skips the format.

This module imports ``tensorrt`` lazily; nothing here needs it to be installed except building and
running engines. It imports nothing else of the package at load time, so
``export/build_trt_engine.py`` can load it on a Jetson that has TensorRT but no TensorFlow.
"""

from __future__ import annotations

import re
import shlex
import time
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

HW = tuple[int, int]
Profile = tuple[HW, HW, HW]

#: Default optimization profile, LR (H, W): min, opt, max. x2 of 256 x 256 MR slices is opt.
DEFAULT_PROFILES: tuple[Profile, ...] = (((16, 16), (128, 128), (256, 256)),)
DEFAULT_WORKSPACE_MIB = 1024
INPUT_NAME = "lr"   # keras_seran.contract.INPUT_NAME, restated: this module loads standalone
PRECISIONS = ("fp16", "int8")


class TensorRTUnavailable(RuntimeError):
    """TensorRT cannot build or run engines here (no ``tensorrt`` package or no CUDA GPU).

    Not in :mod:`keras_seran.errors`: this module loads without the package (see above)."""


def _check_error(message: str) -> Exception:
    """:class:`keras_seran.errors.ExportCheckError`, or a RuntimeError when this module runs
    standalone (a Jetson with TensorRT but without TensorFlow/Keras)."""
    try:
        from keras_seran.errors import ExportCheckError
    except Exception:
        return RuntimeError(message)
    return ExportCheckError(message)


def parse_hw(text: str) -> HW:
    """``"256x192"`` -> (256, 192) (H x W); a single number means a square."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:[xX,]\s*(\d+))?\s*", str(text))
    if not m:
        raise ValueError(f"expected a size HxW such as 256x256, got {text!r}")
    h = int(m.group(1))
    w = int(m.group(2) or h)
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive, got {text!r}")
    return h, w


def parse_profile(text: str) -> Profile:
    """``"64x64:128x128:256x256"`` (min:opt:max LR sizes) or ``"128x128"`` (min = opt = max)."""
    parts = str(text).split(":")
    if len(parts) == 1:
        hw = parse_hw(parts[0])
        return check_profile((hw, hw, hw))
    if len(parts) != 3:
        raise ValueError("expected a profile MIN:OPT:MAX such as 64x64:128x128:256x256, "
                         f"got {text!r}")
    return check_profile(tuple(parse_hw(p) for p in parts))  # type: ignore[arg-type]


def check_profile(profile: Sequence[Sequence[int]]) -> Profile:
    mn, opt, mx = (tuple(int(v) for v in hw) for hw in profile)
    if not all(a <= b <= c for a, b, c in zip(mn, opt, mx)):
        raise ValueError(f"profile needs min <= opt <= max in H and W, got {mn}, {opt}, {mx}")
    return mn, opt, mx  # type: ignore[return-value]


def check_profiles(profiles: Iterable[Sequence[Sequence[int]]]) -> list[Profile]:
    """Checked profiles; with several, each needs its own opt size (it names the engine)."""
    out = [check_profile(p) for p in profiles]
    opts = [p[1] for p in out]
    twice = sorted({f"{h}x{w}" for h, w in opts if opts.count((h, w)) > 1})
    if len(out) > 1 and twice:
        raise ValueError(f"profiles share the opt size {', '.join(twice)}: with several profiles "
                         "each engine is named by its opt size, so give each a different one")
    return out


def _shape(hw: HW, channels: int = 1) -> str:
    return f"1x{hw[0]}x{hw[1]}x{channels}"


def tensorrt_status() -> tuple[bool, str]:
    """(True, "TensorRT x.y") when engines can be built here; else (False, the reason)."""
    try:
        import tensorrt as trt
    except Exception as exc:  # ImportError, or a broken CUDA library underneath
        return False, ("the `tensorrt` Python package is not importable here "
                       f"({type(exc).__name__}: {exc}); build the engines on the target with "
                       "build_engines.sh (trtexec)")
    try:
        builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
        if builder is None:
            raise RuntimeError("trt.Builder returned None")
    except Exception as exc:
        return False, (f"TensorRT {trt.__version__} is installed but no usable CUDA GPU was found "
                       f"({type(exc).__name__}: {exc}); build on the target with build_engines.sh")
    return True, f"TensorRT {trt.__version__}"


def _major(trt) -> int:
    try:
        return int(str(trt.__version__).split(".")[0])
    except ValueError:  # pragma: no cover
        return 10


def build_engine(onnx_path: str | Path, engine_path: str | Path, fp16: bool = True,
                 int8: bool = False, profiles: Sequence[Profile] | None = None,
                 workspace_mib: int = DEFAULT_WORKSPACE_MIB, input_name: str = INPUT_NAME,
                 channels: int = 1, strongly_typed: bool | None = None) -> dict:
    """Build a serialized TensorRT engine from an ONNX file and write it to ``engine_path``.

    Args:
        onnx_path: the float32 ONNX (fp16 engine) or the int8 QDQ ONNX (int8 engine).
        fp16: allow fp16 kernels.
        int8: the ONNX carries Q/DQ pairs (explicit quantization); no calibrator is used.
        profiles: (min_hw, opt_hw, max_hw) LR sizes, one optimization profile each; default
            :data:`DEFAULT_PROFILES`.
        strongly_typed: build a strongly typed network (TensorRT's recommended mode for Q/DQ
            models; types come from the ONNX, so fp16/int8 flags are not set). Default: only for
            int8 on a TensorRT without the weakly-typed ``BuilderFlag.INT8``.

    Returns a description (precision, profiles, TensorRT version, build seconds, file size).
    Raises :class:`TensorRTUnavailable` where TensorRT or a GPU is missing, and
    ``ExportCheckError`` when the ONNX does not parse or the build fails.
    """
    ok, reason = tensorrt_status()
    if not ok:
        raise TensorRTUnavailable(reason)
    import tensorrt as trt

    profiles = [check_profile(p) for p in (profiles or DEFAULT_PROFILES)]
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flag_enum = trt.NetworkDefinitionCreationFlag
    if strongly_typed is None:
        strongly_typed = bool(int8 and not hasattr(trt.BuilderFlag, "INT8")
                              and hasattr(flag_enum, "STRONGLY_TYPED"))
    flags = 0
    if _major(trt) < 10 and hasattr(flag_enum, "EXPLICIT_BATCH"):
        flags |= 1 << int(flag_enum.EXPLICIT_BATCH)
    if strongly_typed:
        flags |= 1 << int(flag_enum.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise _check_error(f"{onnx_path}: TensorRT could not parse the ONNX: {'; '.join(errors)}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mib) << 20)
    if not strongly_typed:
        if fp16:
            config.set_flag(trt.BuilderFlag.FP16)
        if int8:
            config.set_flag(trt.BuilderFlag.INT8)
    for mn, opt, mx in profiles:
        profile = builder.create_optimization_profile()
        profile.set_shape(input_name, (1, *mn, channels), (1, *opt, channels), (1, *mx, channels))
        config.add_optimization_profile(profile)
    t0 = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise _check_error(f"{onnx_path}: TensorRT engine build failed (see the log above)")
    engine_path = Path(engine_path)
    engine_path.write_bytes(bytes(serialized))
    return {"file": engine_path.name, "onnx": Path(onnx_path).name,
            "precision": "int8" if int8 else ("fp16" if fp16 else "fp32"),
            "strongly_typed": bool(strongly_typed),
            "profiles": [[list(mn), list(opt), list(mx)] for mn, opt, mx in profiles],
            "tensorrt": trt.__version__, "build_seconds": round(time.perf_counter() - t0, 2),
            "bytes": engine_path.stat().st_size}


# --------------------------------------------------------------------------------------------
# trtexec


def trtexec_command(onnx_file: str, engine_file: str, precision: str, profile: Profile,
                    input_name: str = INPUT_NAME, channels: int = 1,
                    workspace_mib: int = DEFAULT_WORKSPACE_MIB, trtexec: str = "trtexec",
                    int8_flags: str = "--int8 --fp16") -> str:
    """The ``trtexec`` command line equivalent to :func:`build_engine` for one profile."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    mn, opt, mx = check_profile(profile)
    parts = [trtexec, f"--onnx={shlex.quote(onnx_file)}",
             f"--saveEngine={shlex.quote(engine_file)}",
             f"--minShapes={input_name}:{_shape(mn, channels)}",
             f"--optShapes={input_name}:{_shape(opt, channels)}",
             f"--maxShapes={input_name}:{_shape(mx, channels)}",
             f"--memPoolSize=workspace:{int(workspace_mib)}"]
    parts.append("--fp16" if precision == "fp16" else int8_flags)
    return " ".join(parts)


def engine_name(stem: str, precision: str, profile: Profile, n_profiles: int) -> str:
    if n_profiles == 1:
        return f"{stem}_{precision}.engine"
    opt = profile[1]
    return f"{stem}_{precision}_{opt[0]}x{opt[1]}.engine"


def build_engines_script(onnx_files: dict[str, str], profiles: Sequence[Profile] | None = None,
                         stem: str = "model", channels: int = 1,
                         workspace_mib: int = DEFAULT_WORKSPACE_MIB,
                         requires: str | None = None) -> str:
    """``build_engines.sh``: trtexec lines building every engine of a bundle on the target.

    ``onnx_files`` maps a precision ("fp16", "int8") to the ONNX file (path relative to the bundle)
    it is built from. One engine per precision and profile, written to ``engines/``:
    ``<stem>_<precision>.engine`` with one profile, ``<stem>_<precision>_<optH>x<optW>.engine``
    with several. ``requires`` (which TensorRT parses the ONNX opset) goes into the header.
    """
    profiles = check_profiles(profiles or DEFAULT_PROFILES)
    lines = [
        "#!/usr/bin/env bash",
        "# Build the TensorRT engines of this bundle on the target device (e.g. a Jetson):",
        "# an engine only runs on the GPU model and TensorRT version that built it.",
        "#   ./build_engines.sh            (TRTEXEC=/path/to/trtexec to override)",
        *([f"# Needs {requires}."] if requires else []),
        "# Shapes are NHWC LR slices: input 'lr' (1, H, W, 1) float32, normalised as the",
        "# manifest's input_contract says (range [-0.5, 1.5]).",
        "set -euo pipefail",
        'cd "$(dirname "$0")"',
        'TRTEXEC="${TRTEXEC:-$(command -v trtexec || echo /usr/src/tensorrt/bin/trtexec)}"',
        "# int8 QDQ models: explicit quantization. TensorRT releases that dropped the weakly typed",
        "# --int8/--fp16 flags take the Q/DQ types as they are with --stronglyTyped.",
        'if "$TRTEXEC" --help 2>&1 | grep -q -- "--int8"; then INT8_FLAGS="--int8 --fp16"; '
        'else INT8_FLAGS="--stronglyTyped"; fi',
        "mkdir -p engines",
    ]
    for precision, onnx_file in onnx_files.items():
        for profile in profiles:
            engine = f"engines/{engine_name(stem, precision, profile, len(profiles))}"
            lines.append(f'echo "building {engine}"')
            lines.append(trtexec_command(onnx_file, engine, precision, profile, channels=channels,
                                         workspace_mib=workspace_mib, trtexec='"$TRTEXEC"',
                                         int8_flags="$INT8_FLAGS"))
    lines.append('echo "done: engines/"')
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# running an engine (needs a GPU, TensorRT >= 10 and torch or cupy for device buffers)


class TensorRTRunner:
    """Run a serialized engine on (1, h, w, 1) float32 inputs; picks a profile that fits."""

    def __init__(self, engine_path: str | Path):
        ok, reason = tensorrt_status()
        if not ok:
            raise TensorRTUnavailable(reason)
        import tensorrt as trt

        try:
            import torch
        except ImportError as exc:
            raise TensorRTUnavailable("running an engine from Python needs torch (CUDA) for "
                                      "device buffers; use trtexec --loadEngine instead") from exc
        self._trt, self._torch = trt, torch
        self.logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(self.logger)
        self.engine = runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
        if self.engine is None:
            raise _check_error(f"{engine_path}: could not deserialize the engine")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input_name = next(n for n in names
                               if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
        self.output_name = next(n for n in names
                                if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT)
        self.stream = torch.cuda.Stream()
        self._profile = None

    def _pick_profile(self, shape) -> int:
        for i in range(self.engine.num_optimization_profiles):
            mn, _, mx = self.engine.get_tensor_profile_shape(self.input_name, i)
            if all(a <= s <= b for a, s, b in zip(mn, shape, mx)):
                return i
        raise ValueError(f"input shape {tuple(shape)} fits none of the engine's profiles")

    def __call__(self, lr: np.ndarray) -> np.ndarray:
        torch = self._torch
        x = np.ascontiguousarray(lr, dtype=np.float32)
        idx = self._pick_profile(x.shape)
        if idx != self._profile:
            self.context.set_optimization_profile_async(idx, self.stream.cuda_stream)
            self._profile = idx
        self.context.set_input_shape(self.input_name, tuple(x.shape))
        out_shape = tuple(self.context.get_tensor_shape(self.output_name))
        with torch.cuda.stream(self.stream):  # copies, allocation and the engine on one stream
            xin = torch.from_numpy(x).cuda(non_blocking=False)
            yout = torch.empty(out_shape, dtype=torch.float32, device="cuda")
            self.context.set_tensor_address(self.input_name, xin.data_ptr())
            self.context.set_tensor_address(self.output_name, yout.data_ptr())
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError("TensorRT execution failed")
        self.stream.synchronize()
        return yout.cpu().numpy()


def profiles_cover(profiles: Iterable[Profile], hw: HW) -> bool:
    """Whether some profile accepts an LR input of size ``hw``."""
    return any(all(a <= s <= b for a, s, b in zip(mn, hw, mx)) for mn, _, mx in profiles)
