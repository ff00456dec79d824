"""``keras-seran export MODEL --out DIR --formats savedmodel,tflite,onnx,tensorrt``.

MODEL is a ``.keras`` file or a bundled name such as ``x2``. Writes a verified deployment bundle
(see :mod:`keras_seran.export.bundle`) and prints its parity table. TensorFlow, ONNX and TensorRT
are imported inside :func:`run` only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_FORMATS = "savedmodel,tflite,onnx,tensorrt"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a .keras model file or a bundled name such as x2")
    parser.add_argument("--out", required=True, type=Path,
                        help="bundle folder to create (absent or empty, or with --overwrite an "
                             "earlier bundle; not the current folder or one holding the model)")
    parser.add_argument("--formats", default=DEFAULT_FORMATS,
                        help=f"comma-separated: savedmodel, tflite (= litert), onnx, tensorrt "
                             f"(default {DEFAULT_FORMATS})")
    parser.add_argument("--input-size", metavar="HxW", default=None,
                        help="fixed LR input size of the LiteRT models (default: dynamic H, W); "
                             "also the default TensorRT profile (min = opt = max); the manifest's "
                             "fixed_size lists the fixed-size files")
    parser.add_argument("--int8-io", action="store_true",
                        help="full-int8 LiteRT model with int8 input/output (default float32; "
                             "the manifest gives the int8 scale and zero point)")
    parser.add_argument("--tflite-variants", default="float32,float16,dynamic_int8,int8",
                        help="LiteRT precisions (default all four)")
    parser.add_argument("--onnx-variants", default="float32,float16,int8",
                        help="ONNX precisions: float32, float16 (fp16 inside, float32 "
                             "interface), int8 (QDQ) (default all three)")
    parser.add_argument("--opset", type=int, default=17,
                        help="ONNX opset, 17 or 18 (default 17; TensorRT 8.x, JetPack 5/6.0, "
                             "reads up to 17)")
    parser.add_argument("--trt-profile", action="append", metavar="MIN:OPT:MAX", default=None,
                        help="TensorRT optimization profile of LR sizes, e.g. "
                             "64x64:128x128:256x256 (repeatable; default 16x16:128x128:256x256)")
    parser.add_argument("--calibration", type=Path, default=None, metavar="NIFTI",
                        help="MR volume (.nii/.nii.gz, DICOM folder) or 2D slice (PNG, .npy) "
                             "whose slices calibrate int8 (default: the bundled real T1 slab)")
    parser.add_argument("--calibration-axis", type=int, default=2,
                        help="slice axis of --calibration (default 2)")
    parser.add_argument("--scale", type=int, default=None,
                        help="expected SR factor: an error unless the model's (inferred from it)")
    parser.add_argument("--threads", type=int, default=2,
                        help="CPU threads for the parity runs (default 2)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing bundle in --out (a folder with manifest.json; "
                             "any other non-empty folder is refused)")
    parser.add_argument("--strict", action="store_true",
                        help="fail (exit 1, no bundle) when a format misses its parity tolerance")
    parser.add_argument("--quiet", action="store_true", help="print only the parity table")


def _size(text: str | None):
    from keras_seran.errors import UsageError
    from keras_seran.export.tensorrt_engine import parse_hw

    if text is None:
        return None
    try:
        return parse_hw(text)
    except ValueError as exc:
        raise UsageError(f"--input-size: {exc}") from exc


def run(args: argparse.Namespace) -> int:
    from keras_seran.errors import ExportCheckError, InputDataError, UsageError
    from keras_seran.export import litert, onnx_export
    from keras_seran.export.bundle import (check_out_dir, check_requirements, needs_calibration,
                                           parse_formats)
    from keras_seran.export.tensorrt_engine import check_profiles, parse_profile

    # Everything that can be checked without TensorFlow is checked first: a bad argument never
    # costs a model load, and nothing is written.
    formats = parse_formats(args.formats)
    input_size = _size(args.input_size)
    try:
        tflite_variants = litert.check_variants(args.tflite_variants.split(","))
        onnx_variants = onnx_export.check_variants(args.onnx_variants.split(","))
        profiles = (check_profiles(parse_profile(p) for p in args.trt_profile)
                    if args.trt_profile else None)
        try:
            onnx_export.check_opset(args.opset)
        except ValueError as exc:
            raise ValueError(f"--{exc}") from exc          # "--opset must be between ..."
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        if args.scale is not None and args.scale < 1:
            raise ValueError(f"--scale must be >= 1, got {args.scale}")
        if args.int8_io and not ("tflite" in formats and "int8" in tflite_variants):
            raise ValueError("--int8-io applies to the full-int8 LiteRT model: it needs tflite "
                             "in --formats and int8 in --tflite-variants")
        if args.calibration is not None and not needs_calibration(formats, tflite_variants,
                                                                  onnx_variants):
            raise ValueError("--calibration calibrates the int8 models and none is requested: "
                             "add int8 to --tflite-variants (with tflite) or --onnx-variants "
                             "(with onnx or tensorrt)")
        if args.trt_profile and "tensorrt" not in formats:
            raise ValueError("--trt-profile shapes the TensorRT engines: add tensorrt to "
                             "--formats")
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    check_requirements(formats)
    check_out_dir(args.out, args.overwrite, inputs=[args.model, *([args.calibration] if
                                                                  args.calibration else [])])
    if args.calibration is not None and not Path(args.calibration).exists():
        raise InputDataError(args.calibration, "no such calibration volume")

    from keras_seran.contract import infer_scale
    from keras_seran.export.bundle import export_bundle
    from keras_seran.export.parity import calibration_inputs
    from keras_seran.registry import load_model

    say = (lambda msg: None) if args.quiet else (lambda msg: print(f"[export] {msg}", flush=True))
    model = load_model(args.model)
    try:
        scale = infer_scale(model)
    except Exception as exc:
        raise InputDataError(args.model, f"not a super-resolution model (B, H, W, 1) -> "
                                         f"(B, H*s, W*s, 1): {exc}") from None
    if args.scale is not None and args.scale != scale:
        raise InputDataError(args.model, f"--scale {args.scale} does not match the model, which "
                                         f"upscales x{scale}")
    calibration = None
    if args.calibration is not None:
        calibration = calibration_inputs(scale, source=args.calibration,
                                         axis=args.calibration_axis)
    try:
        manifest = export_bundle(
            model, args.out, formats, scale=scale, calibration=calibration,
            input_size=input_size, int8_io=args.int8_io, tflite_variants=tflite_variants,
            onnx_variants=onnx_variants, opset=args.opset, trt_profiles=profiles,
            overwrite=args.overwrite, strict=args.strict, num_threads=args.threads,
            model_source=str(args.model),
            calibration_source=(f"{args.calibration} (axis {args.calibration_axis})"
                                if args.calibration is not None else None), log=say)
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
