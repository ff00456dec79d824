"""TensorRT engines from the exported ONNX (TF-TRT is gone: TensorRT goes through ONNX).

* :func:`build_plan` says what each TensorRT release wants (from NVIDIA's trtexec
  ``sampleOptions.cpp`` and Python bindings at v8.6.1, v10.3.0 and v11.0): 8.x is weakly typed
  (``--fp16``, ``--int8 --fp16``), 10.x keeps ``--fp16`` but builds Q/DQ models strongly typed,
  11 has no precision flags at all (fp16 comes from the float16 ONNX).
* :func:`build_engine` builds a serialized engine with the TensorRT Python API as the installed
  release's plan says (``tensorrt.__version__``), one optimization profile per (min, opt, max)
  LR slice size; int8 from the Q/DQ ONNX (explicit quantization, no calibrator).
* :func:`trtexec_command` / :func:`build_engines_script` write the equivalent ``trtexec`` command
  lines (``build_engines.sh`` in the bundle, which asks trtexec its version first) so the
  engines can be built on the Jetson itself: an engine is specific to the GPU and TensorRT
  version that built it.
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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

HW = tuple[int, int]
Profile = tuple[HW, HW, HW]

#: Default optimization profile, LR (H, W): min, opt, max. x2 of 256 x 256 MR slices is opt.
DEFAULT_PROFILES: tuple[Profile, ...] = (((16, 16), (128, 128), (256, 256)),)
DEFAULT_WORKSPACE_MIB = 1024
INPUT_NAME = "lr"  # keras_seran.contract.INPUT_NAME, restated: this module loads standalone
PRECISIONS = ("fp16", "int8")
#: The newest ONNX opset the parser of TensorRT 8.x reads (onnx-tensorrt's operator table:
#: "TensorRT 8.6 supports operators up to Opset 17"); JetPack 5 ships TensorRT 8.5 / 8.6.
TENSORRT8_MAX_OPSET = 17  # keras_seran.config.TENSORRT8_MAX_OPSET, restated (standalone module)


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
        raise ValueError(
            f"expected a profile MIN:OPT:MAX such as 64x64:128x128:256x256, got {text!r}"
        )
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
        raise ValueError(
            f"profiles share the opt size {', '.join(twice)}: with several profiles "
            "each engine is named by its opt size, so give each a different one"
        )
    return out


def _shape(hw: HW, channels: int = 1) -> str:
    return f"1x{hw[0]}x{hw[1]}x{channels}"


def tensorrt_status() -> tuple[bool, str]:
    """(True, "TensorRT x.y") when engines can be built here; else (False, the reason)."""
    try:
        import tensorrt as trt
    except Exception as exc:  # ImportError, or a broken CUDA library underneath
        return False, (
            "the `tensorrt` Python package is not importable here "
            f"({type(exc).__name__}: {exc}); build the engines on the target with "
            "build_engines.sh (trtexec)"
        )
    try:
        builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
        if builder is None:
            raise RuntimeError("trt.Builder returned None")
    except Exception as exc:
        return False, (
            f"TensorRT {trt.__version__} is installed but no usable CUDA GPU was found "
            f"({type(exc).__name__}: {exc}); build on the target with build_engines.sh"
        )
    return True, f"TensorRT {trt.__version__}"


# --------------------------------------------------------------------------------------------
# what each TensorRT release wants (NVIDIA's trtexec sampleOptions.cpp at v8.6.1, v10.3.0, v11.0
# and the Python bindings of the same tags)


@dataclass(frozen=True)
class BuildPlan:
    """How one TensorRT release builds an engine of one precision.

    ``onnx``: the bundle's ONNX variant to build from ("float32", "float16", "int8").
    ``strongly_typed``: NetworkDefinitionCreationFlag.STRONGLY_TYPED / ``--stronglyTyped``
    (types, so precision, come from the ONNX). ``builder_flags``: names of ``trt.BuilderFlag``
    set on the config. ``explicit_batch``: the EXPLICIT_BATCH network flag (needed before 10,
    gone in 11). ``trtexec_flags``: the trtexec precision options.
    """

    major: int
    precision: str
    onnx: str
    strongly_typed: bool
    builder_flags: tuple[str, ...]
    explicit_batch: bool
    trtexec_flags: tuple[str, ...]


def parse_major(version: str | int) -> int:
    """Major version of ``tensorrt.__version__`` ("8.6.1.6", "10.3.0") or of trtexec's
    ``[TensorRT vNNNN]`` number (8601 = 8.6.1 up to 9.x; 100300 = 10.3.0 from 10 on)."""
    text = str(version).strip().lstrip("v")
    m = re.match(r"(\d+)(?:\.|$)", text)
    if not m:
        raise ValueError(f"not a TensorRT version: {version!r}")
    if "." not in text and len(text) >= 4:  # trtexec's packed number
        n = int(text)
        return n // 10000 if n >= 10000 else n // 1000
    return int(m.group(1))


def build_plan(tensorrt_version: str | int, precision: str) -> BuildPlan:
    """The flags one TensorRT release needs for ``precision`` ("fp32", "fp16", "int8").

    * 8.x (JetPack 5; 8.6 reads ONNX opset <= 17): weakly typed; fp16 with ``--fp16`` /
      BuilderFlag.FP16 from the float32 ONNX; int8 from the Q/DQ ONNX with ``--int8 --fp16``
      (explicit quantization needs the INT8 flag there; FP16 lets the float layers run in fp16).
    * 9.x and 10.x (JetPack 6: 10.3): fp16 still through the flag; the Q/DQ ONNX strongly typed
      (``--stronglyTyped``, no precision flags: NVIDIA's recommended mode for Q/DQ models).
    * 11 and later: no ``--fp16``/``--int8`` and no BuilderFlag.FP16/INT8; networks are strongly
      typed (``--stronglyTyped`` is a deprecated no-op, so it is not passed): fp16 comes from the
      float16 ONNX, int8 from the Q/DQ ONNX.
    """
    if precision not in ("fp32", *PRECISIONS):
        raise ValueError(f"precision must be fp32 or one of {PRECISIONS}, got {precision!r}")
    major = parse_major(tensorrt_version)
    onnx = {"fp32": "float32", "fp16": "float32", "int8": "int8"}[precision]
    if major < 9:
        flags = {"fp32": (), "fp16": ("FP16",), "int8": ("INT8", "FP16")}[precision]
        return BuildPlan(
            major, precision, onnx, False, flags, True, tuple(f"--{f.lower()}" for f in flags)
        )
    if major < 11:
        if precision == "int8":
            return BuildPlan(major, precision, onnx, True, (), major < 10, ("--stronglyTyped",))
        flags = ("FP16",) if precision == "fp16" else ()
        return BuildPlan(
            major, precision, onnx, False, flags, major < 10, tuple(f"--{f.lower()}" for f in flags)
        )
    if precision == "fp16":
        onnx = "float16"
    return BuildPlan(major, precision, onnx, True, (), False, ())


def build_engine(
    onnx_path: str | Path,
    engine_path: str | Path,
    fp16: bool = True,
    int8: bool = False,
    profiles: Sequence[Profile] | None = None,
    workspace_mib: int = DEFAULT_WORKSPACE_MIB,
    input_name: str = INPUT_NAME,
    channels: int = 1,
) -> dict:
    """Build a serialized TensorRT engine from an ONNX file and write it to ``engine_path``.

    The flags follow the installed TensorRT (:func:`build_plan`, from ``tensorrt.__version__``).

    Args:
        onnx_path: the ONNX variant :func:`build_plan` names: float32 (fp32; fp16 before 11),
            float16 (fp16 on TensorRT 11+), the int8 Q/DQ model (int8: explicit quantization,
            no calibrator).
        fp16: an fp16 engine (else fp32); ignored with ``int8``.
        int8: the ONNX carries Q/DQ pairs.
        profiles: (min_hw, opt_hw, max_hw) LR sizes, one optimization profile each; default
            :data:`DEFAULT_PROFILES`.

    Returns a description (precision, plan, profiles, TensorRT version, build seconds, size).
    Raises :class:`TensorRTUnavailable` where TensorRT or a GPU is missing, and
    ``ExportCheckError`` when the ONNX does not parse, does not fit the plan (a float32 ONNX for
    an fp16 engine on a strongly typed TensorRT) or the build fails.
    """
    ok, reason = tensorrt_status()
    if not ok:
        raise TensorRTUnavailable(reason)
    import tensorrt as trt

    precision = "int8" if int8 else ("fp16" if fp16 else "fp32")
    plan = build_plan(trt.__version__, precision)
    profiles = [check_profile(p) for p in (profiles or DEFAULT_PROFILES)]
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network_flags = trt.NetworkDefinitionCreationFlag
    flags = 0
    if plan.explicit_batch:
        flags |= 1 << int(network_flags.EXPLICIT_BATCH)
    if plan.strongly_typed and hasattr(network_flags, "STRONGLY_TYPED"):
        flags |= 1 << int(network_flags.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise _check_error(f"{onnx_path}: TensorRT could not parse the ONNX: {'; '.join(errors)}")
    if plan.strongly_typed and precision == "fp16" and not _has_half(trt, network):
        raise _check_error(
            f"{onnx_path}: no float16 tensor in this ONNX; TensorRT "
            f"{trt.__version__} takes the precision from the ONNX types: build "
            "the fp16 engine from the bundle's *_float16.onnx"
        )
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mib) << 20)
    for name in plan.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, name))
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
    return {
        "file": engine_path.name,
        "onnx": Path(onnx_path).name,
        "precision": precision,
        "strongly_typed": plan.strongly_typed,
        "builder_flags": list(plan.builder_flags),
        "profiles": [[list(mn), list(opt), list(mx)] for mn, opt, mx in profiles],
        "tensorrt": trt.__version__,
        "build_seconds": round(time.perf_counter() - t0, 2),
        "bytes": engine_path.stat().st_size,
    }


def _has_half(trt, network) -> bool:
    """Whether any layer of the parsed network produces a float16 tensor."""
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        for j in range(layer.num_outputs):
            if layer.get_output(j).dtype == trt.float16:
                return True
    return False


# --------------------------------------------------------------------------------------------
# trtexec


def trtexec_command(
    onnx_file: str,
    engine_file: str,
    precision: str,
    profile: Profile,
    input_name: str = INPUT_NAME,
    channels: int = 1,
    workspace_mib: int = DEFAULT_WORKSPACE_MIB,
    trtexec: str = "trtexec",
    tensorrt_version: str | int = 10,
    precision_flags: str | None = None,
) -> str:
    """The ``trtexec`` command line equivalent to :func:`build_engine` for one profile.

    The precision options are those :func:`build_plan` gives ``tensorrt_version``, or
    ``precision_flags`` verbatim (the generated script passes a shell variable).
    """
    if precision not in ("fp32", *PRECISIONS):
        raise ValueError(f"precision must be fp32 or one of {PRECISIONS}, got {precision!r}")
    mn, opt, mx = check_profile(profile)
    if precision_flags is None:
        precision_flags = " ".join(build_plan(tensorrt_version, precision).trtexec_flags)
    parts = [
        trtexec,
        f"--onnx={shlex.quote(onnx_file)}",
        f"--saveEngine={shlex.quote(engine_file)}",
        f"--minShapes={input_name}:{_shape(mn, channels)}",
        f"--optShapes={input_name}:{_shape(opt, channels)}",
        f"--maxShapes={input_name}:{_shape(mx, channels)}",
        f"--memPoolSize=workspace:{int(workspace_mib)}",
    ]
    if precision_flags:
        parts.append(precision_flags)
    return " ".join(parts)


def engine_name(stem: str, precision: str, profile: Profile, n_profiles: int) -> str:
    if n_profiles == 1:
        return f"{stem}_{precision}.engine"
    opt = profile[1]
    return f"{stem}_{precision}_{opt[0]}x{opt[1]}.engine"


#: Shell: which TensorRT the trtexec is. The help text is captured into a variable first and then
#: matched with bash patterns: ``trtexec --help | grep -q`` under ``set -o pipefail`` races (grep
#: exits at the first match, trtexec dies of SIGPIPE, the pipeline fails).
_DETECT_TENSORRT = r"""
if ! command -v "$TRTEXEC" >/dev/null 2>&1; then
  echo "trtexec not found ($TRTEXEC): install TensorRT (JetPack) or set TRTEXEC=" >&2; exit 2
fi
TRT_HELP="$("$TRTEXEC" --help 2>&1 || true)"
if [[ -z "${TRT_MAJOR:-}" ]]; then
  if [[ $TRT_HELP =~ \[TensorRT\ v([0-9]+)\] ]]; then
    TRT_NUMBER="${BASH_REMATCH[1]}"            # 8601 = 8.6.1; 100300 = 10.3.0 (from 10 on)
    if (( TRT_NUMBER >= 10000 )); then TRT_MAJOR=$(( TRT_NUMBER / 10000 ));
    else TRT_MAJOR=$(( TRT_NUMBER / 1000 )); fi
  elif [[ $TRT_HELP == *"--fp16 "* && $TRT_HELP == *"--stronglyTyped"* ]]; then TRT_MAJOR=10
  elif [[ $TRT_HELP == *"--fp16 "* ]]; then TRT_MAJOR=8
  elif [[ $TRT_HELP == *"--stronglyTyped"* ]]; then TRT_MAJOR=11
  else echo "cannot tell the TensorRT version of $TRTEXEC (set TRT_MAJOR=8, 10 or 11)" >&2; exit 2
  fi
fi
""".strip("\n")


def _precision_case(onnx_files: dict[str, str], opset: int | None) -> list[str]:
    """The shell ``case`` choosing each precision's ONNX file and flags by ``$TRT_MAJOR``."""
    lines = ['case "$TRT_MAJOR" in']
    for label, version in (("[0-8])", 8), ("9|10)", 10), ("*)", 11)):
        lines.append(f"  {label}")
        if version == 8 and opset is not None and opset > TENSORRT8_MAX_OPSET:
            lines.append(
                f'    echo "TensorRT $TRT_MAJOR parses ONNX opsets up to '
                f"{TENSORRT8_MAX_OPSET}; this bundle is opset {opset}: re-export with "
                f'--opset {TENSORRT8_MAX_OPSET}" >&2; exit 2;;'
            )
            continue
        for precision in PRECISIONS:
            plan = build_plan(version, precision)
            var = precision.upper()
            onnx_file = onnx_files.get(plan.onnx, "")
            lines.append(
                f"    {var}_ONNX={shlex.quote(onnx_file)}; "
                f'{var}_FLAGS="{" ".join(plan.trtexec_flags)}"'
            )
        lines[-1] += ";;"
    lines.append("esac")
    return lines


def build_engines_script(
    onnx_files: dict[str, str],
    profiles: Sequence[Profile] | None = None,
    stem: str = "model",
    channels: int = 1,
    workspace_mib: int = DEFAULT_WORKSPACE_MIB,
    requires: str | None = None,
    opset: int | None = None,
    precisions: Sequence[str] = PRECISIONS,
) -> str:
    """``build_engines.sh``: trtexec lines building every engine of a bundle on the target.

    ``onnx_files`` maps an ONNX variant ("float32", "float16", "int8") to its file (relative to
    the bundle). The script asks trtexec which TensorRT it is (``[TensorRT vNNNN]`` in its help
    text, else which options it lists; ``TRT_MAJOR=..`` overrides) and builds each of
    ``precisions`` as :func:`build_plan` says for it; a precision whose ONNX the bundle lacks on
    that release is skipped with a message. One engine per precision and profile, written to
    ``engines/``: ``<stem>_<precision>.engine`` with one profile,
    ``<stem>_<precision>_<optH>x<optW>.engine`` with several. ``requires`` (which TensorRT parses
    the ONNX opset) goes into the header; with ``opset`` the TensorRT 8 branch refuses an opset
    it cannot parse.
    """
    profiles = check_profiles(profiles or DEFAULT_PROFILES)
    lines = [
        "#!/usr/bin/env bash",
        "# Build the TensorRT engines of this bundle on the target device (e.g. a Jetson):",
        "# an engine only runs on the GPU model and TensorRT version that built it.",
        "#   ./build_engines.sh            (TRTEXEC=/path/to/trtexec, TRT_MAJOR=8|10|11 override)",
        *([f"# Needs {requires}."] if requires else []),
        "# Shapes are NHWC LR slices: input 'lr' (1, H, W, 1) float32, normalised as the",
        "# manifest's input_contract says (range [-0.5, 1.5]).",
        "# TensorRT 8.x: --fp16 / --int8 --fp16 (weakly typed). 9-10: --fp16 for fp16, the Q/DQ",
        "# model --stronglyTyped without precision flags. 11+: strongly typed only: fp16 from the",
        "# float16 ONNX, int8 from the Q/DQ ONNX, no precision flags.",
        "set -euo pipefail",
        'cd "$(dirname "$0")"',
        'TRTEXEC="${TRTEXEC:-$(command -v trtexec || echo /usr/src/tensorrt/bin/trtexec)}"',
        *_DETECT_TENSORRT.splitlines(),
        'echo "TensorRT major version $TRT_MAJOR ($TRTEXEC)"',
        *_precision_case(onnx_files, opset),
        "mkdir -p engines",
    ]
    for precision in precisions:
        var = precision.upper()
        lines.append(
            f'if [[ -z "${var}_ONNX" ]]; then echo "skipping {precision}: this bundle '
            f'has no ONNX file for it on TensorRT $TRT_MAJOR" >&2; else'
        )
        for profile in profiles:
            engine = f"engines/{engine_name(stem, precision, profile, len(profiles))}"
            lines.append(f'  echo "building {engine}"')
            cmd = trtexec_command(
                "@ONNX@",
                engine,
                precision,
                profile,
                channels=channels,
                workspace_mib=workspace_mib,
                trtexec='"$TRTEXEC"',
                precision_flags=f"${var}_FLAGS",
            )
            lines.append("  " + cmd.replace("--onnx=@ONNX@", f'--onnx="${var}_ONNX"'))
        lines.append("fi")
    lines.append('echo "done: engines/"')
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# running an engine: keras_seran.runtime.runners.TensorRTRunner (loaded on first use, so this
# module still loads standalone)


def __getattr__(name):
    if name == "TensorRTRunner":
        from keras_seran.runtime.runners import TensorRTRunner

        return TensorRTRunner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def profiles_cover(profiles: Iterable[Profile], hw: HW) -> bool:
    """Whether some profile accepts an LR input of size ``hw``."""
    return any(all(a <= s <= b for a, s, b in zip(mn, hw, mx)) for mn, _, mx in profiles)
