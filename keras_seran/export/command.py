"""``keras-seran export MODEL --out DIR --formats savedmodel,tflite,onnx,tensorrt``.

MODEL is a ``.keras`` file or a bundled name such as ``x2``. Writes a verified deployment bundle
(see :mod:`keras_seran.export.bundle`) and prints its parity table. TensorFlow, ONNX and TensorRT
are imported inside :func:`run` only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from keras_seran.config import ExportConfig, add_config_arguments, config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a .keras model file or a bundled name such as x2")
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        help="bundle folder to create (absent or empty, or with --overwrite an "
        "earlier bundle; not the current folder or one holding the model)",
    )
    add_config_arguments(parser, ExportConfig)
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing bundle in --out (a folder with manifest.json; "
        "any other non-empty folder is refused)",
    )
    parser.add_argument("--quiet", action="store_true", help="print only the parity table")


def export_config(args: argparse.Namespace) -> ExportConfig:
    """The ExportConfig of the flags; UsageError naming the flag for a bad value. Checks
    everything that needs no TensorFlow, so a bad argument never costs a model load."""
    from keras_seran.errors import UsageError
    from keras_seran.export.tensorrt_engine import check_profiles, parse_hw, parse_profile

    parsed = {}
    try:
        if args.input_size is not None:
            parsed["input_size"] = parse_hw(args.input_size)
        if args.trt_profile:
            parsed["trt_profiles"] = tuple(
                check_profiles(parse_profile(p) for p in args.trt_profile)
            )
    except ValueError as exc:
        flag = "--input-size" if "input_size" not in parsed else "--trt-profile"
        raise UsageError(f"{flag}: {exc}") from None
    cfg = config_from_args(ExportConfig, args, **parsed)
    if args.trt_profile and "tensorrt" not in cfg.formats:
        raise UsageError("--trt-profile shapes the TensorRT engines: add tensorrt to --formats")
    return cfg


def run(args: argparse.Namespace) -> int:
    from keras_seran.errors import ExportCheckError, InputDataError
    from keras_seran.export.bundle import check_out_dir, check_requirements

    # Everything that can be checked without TensorFlow is checked first: a bad argument never
    # costs a model load, and nothing is written.
    cfg = export_config(args)
    formats = list(cfg.formats)
    check_requirements(formats)
    check_out_dir(
        args.out,
        args.overwrite,
        inputs=[args.model, *([cfg.calibration] if cfg.calibration else [])],
    )
    if cfg.calibration is not None and not Path(cfg.calibration).exists():
        raise InputDataError(cfg.calibration, "no such calibration volume")

    from keras_seran.contract import infer_scale
    from keras_seran.export.bundle import export_bundle
    from keras_seran.export.parity import calibration_inputs
    from keras_seran.registry import load_model

    say = (lambda msg: None) if args.quiet else (lambda msg: print(f"[export] {msg}", flush=True))
    model = load_model(args.model)
    try:
        scale = infer_scale(model)
    except Exception as exc:
        raise InputDataError(
            args.model, f"not a super-resolution model (B, H, W, 1) -> (B, H*s, W*s, 1): {exc}"
        ) from None
    if cfg.scale is not None and cfg.scale != scale:
        raise InputDataError(
            args.model, f"--scale {cfg.scale} does not match the model, which upscales x{scale}"
        )
    calibration = None
    if cfg.calibration is not None:
        calibration = calibration_inputs(scale, source=cfg.calibration, axis=cfg.calibration_axis)
    try:
        manifest = export_bundle(
            model,
            args.out,
            formats,
            scale=scale,
            calibration=calibration,
            input_size=cfg.input_size,
            int8_io=cfg.int8_io,
            tflite_variants=list(cfg.tflite_variants),
            onnx_variants=list(cfg.onnx_variants),
            opset=cfg.opset,
            trt_profiles=cfg.trt_profiles and list(cfg.trt_profiles),
            overwrite=args.overwrite,
            strict=cfg.strict,
            num_threads=cfg.threads,
            model_source=str(args.model),
            calibration_source=(
                f"{cfg.calibration} (axis {cfg.calibration_axis})"
                if cfg.calibration is not None
                else None
            ),
            log=say,
        )
    except ExportCheckError as exc:
        print(f"keras-seran export: check failed: {exc}")
        return 1
    from keras_seran.export.parity import parity_markdown

    print(parity_markdown(manifest["parity"]), end="")
    trt = manifest["formats"].get("tensorrt")
    if trt and trt.get("status") == "skipped":
        print(f"tensorrt: skipped: {trt['reason']}")
    print(f"bundle: {args.out} ({len(manifest['files'])} files, manifest.json)")
    if not manifest["parity_ok"]:
        bad = [k for k, v in manifest["parity"]["formats"].items() if not v["ok"]]
        print(f"warning: parity outside tolerance for {', '.join(bad)} (see parity.md)")
    return 0
