#!/usr/bin/env python
"""Thin script: build a TensorRT engine from a bundle's ONNX file (on the Jetson / a GPU host).

    python export/build_trt_engine.py bundle/onnx/seran_x2_float32.onnx seran_x2_fp16.engine
    python export/build_trt_engine.py bundle/onnx/seran_x2_float16.onnx seran_x2_fp16.engine
    python export/build_trt_engine.py bundle/onnx/seran_x2_int8_qdq.onnx seran_x2_int8.engine --int8
        [--profile 16x16:128x128:256x256 ...] [--no-fp16] [--workspace-mib 1024]

Uses ``keras_seran.export.tensorrt_engine.build_engine`` (TensorRT Python API), which sets the
flags the installed TensorRT wants (``build_plan``): an fp16 engine comes from the float32 ONNX
on TensorRT 8.x/10.x and from the float16 ONNX on TensorRT 11 (no fp16 builder flag there).
That module needs only numpy and TensorRT, so on a Jetson this script runs from a checkout
without TensorFlow or Keras installed. Where TensorRT or a GPU is missing it prints why and the
equivalent ``trtexec`` command lines for TensorRT 8, 10 and 11, and exits with 3.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

MODULE = Path(__file__).resolve().parents[1] / "keras_seran" / "export" / "tensorrt_engine.py"


def _tensorrt_engine():
    """The builder module, loaded from the checkout by path (no keras_seran/TensorFlow import),
    else from the installed package."""
    if MODULE.exists():
        spec = importlib.util.spec_from_file_location("keras_seran_tensorrt_engine", MODULE)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        return module
    from keras_seran.export import tensorrt_engine

    return tensorrt_engine


def main(argv: list[str] | None = None) -> int:
    trt_engine = _tensorrt_engine()
    p = argparse.ArgumentParser(prog="build_trt_engine.py", description=__doc__.splitlines()[0])
    p.add_argument(
        "onnx",
        help="ONNX file of the bundle (fp16: float32 on TensorRT 8/10, "
        "float16 on 11; int8: int8_qdq)",
    )
    p.add_argument("engine", help="engine file to write")
    p.add_argument("--int8", action="store_true", help="the ONNX is the int8 QDQ model")
    p.add_argument("--no-fp16", dest="fp16", action="store_false", help="disallow fp16 kernels")
    p.add_argument(
        "--profile",
        action="append",
        metavar="MIN:OPT:MAX",
        default=None,
        help="LR size profile, e.g. 16x16:128x128:256x256 (repeatable)",
    )
    p.add_argument("--workspace-mib", type=int, default=trt_engine.DEFAULT_WORKSPACE_MIB)
    args = p.parse_args(argv)
    if not Path(args.onnx).is_file():
        p.error(f"{args.onnx}: no such ONNX file")
    try:
        profiles = [trt_engine.parse_profile(t) for t in args.profile] if args.profile else None
    except ValueError as exc:
        p.error(str(exc))
    try:
        info = trt_engine.build_engine(
            args.onnx,
            args.engine,
            fp16=args.fp16,
            int8=args.int8,
            profiles=profiles,
            workspace_mib=args.workspace_mib,
        )
    except trt_engine.TensorRTUnavailable as exc:
        print(f"build_trt_engine.py: cannot build here: {exc}", file=sys.stderr)
        print("equivalent trtexec command(s), by TensorRT release:", file=sys.stderr)
        precision = "int8" if args.int8 else ("fp16" if args.fp16 else "fp32")
        for major in (8, 10, 11):
            plan = trt_engine.build_plan(major, precision)
            print(f"# TensorRT {major}: from the {plan.onnx} ONNX")
            for prof in profiles or trt_engine.DEFAULT_PROFILES:
                print(
                    trt_engine.trtexec_command(
                        args.onnx,
                        args.engine,
                        precision,
                        prof,
                        workspace_mib=args.workspace_mib,
                        tensorrt_version=major,
                    )
                )
        return 3
    print(json.dumps(info, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
