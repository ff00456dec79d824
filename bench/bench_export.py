#!/usr/bin/env python
"""CPU benchmark of every exported format: latency per 256x256 output slice, size, GFLOP/s.

    python bench/bench_export.py [--preset small] [--scale 2] [--threads 2] [--repeats 10]
                                 [--keep DIR]
    python bench/bench_export.py --int8 x2 [--modelopt-python PY]     (int8 placements)

For each format of a bundle made by ``keras_seran.export.export_bundle`` (SavedModel, LiteRT
float32/float16/dynamic_int8/int8, ONNX float32/int8 QDQ on onnxruntime) plus the Keras model:

* latency: median wall time of ``--repeats`` runs (after 2 warm-up runs) on one real MR slice
  whose output is 256 x 256 (LR 128 x 128 for x2), batch 1, ``--threads`` CPU threads;
* size on disk (SavedModel: the whole folder; Keras: the .keras file);
* achieved GFLOP/s = FLOPs of one forward pass (``keras_seran.models.count_flops``) / latency,
  and the ratio to this machine's measured float32 matmul rate (numpy, 2048 x 2048, same threads).

Weights are random (latency does not depend on them); int8 is calibrated on real MR slices all
the same. The small preset finishes in a few minutes on 2 cores.

``--int8 MODEL`` (a bundled name such as ``x2`` or a .keras file) compares int8 models of trained
weights instead: the ONNX Q/DQ placements (``nvidia``: TensorRT's recommendations, the export's
default; ``onnxruntime``: quantize_static's default, the previous one; with ``--modelopt-python``
also NVIDIA Model Optimizer's ONNX PTQ run by that interpreter, e.g. a venv with
``nvidia-modelopt[onnx]``, which brings torch and onnxruntime-gpu and so stays out of this
environment) and the LiteRT full-int8 model. Per model: Q/DQ counts, Q/DQ before a softmax and on
scalars, PSNR drop vs Keras on the held-out slices of the bundled slab (onnxruntime with all its
graph optimizations, and without its int8 kernel fusions, i.e. the exact Q/DQ arithmetic TensorRT
follows), and CPU latency for the LR slice.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


def _set_threads(n: int) -> None:
    for var in (
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "TF_NUM_INTRAOP_THREADS",
    ):
        os.environ[var] = str(n)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def matmul_gflops(threads: int, n: int = 2048, repeats: int = 5) -> float:
    """Best-of float32 numpy matmul rate (GFLOP/s) for n x n @ n x n."""
    import numpy as np

    # threads: OMP/OPENBLAS/MKL_NUM_THREADS are set before numpy is first imported (main)
    rng = np.random.default_rng(0)
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def median_latency(fn, x, repeats: int) -> float:
    import numpy as np

    for _ in range(2):
        fn(x)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def dir_size(path: Path) -> int:
    return (
        sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())
        if Path(path).is_dir()
        else Path(path).stat().st_size
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="small", choices=["tiny", "small", "paper"])
    ap.add_argument("--scale", type=int, default=2, choices=[2, 3, 4])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--output-size", type=int, default=256, help="output slice side (default 256)")
    ap.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="keep the bundle in this folder (must be absent or empty)",
    )
    ap.add_argument(
        "--int8",
        metavar="MODEL",
        default=None,
        help="compare int8 placements of a trained model (bundled name or .keras)",
    )
    ap.add_argument(
        "--modelopt-python",
        default=None,
        metavar="PY",
        help="with --int8: a Python that has nvidia-modelopt[onnx] installed",
    )
    args = ap.parse_args(argv)
    if args.int8 is not None:
        _set_threads(args.threads)
        return int8_table(args.int8, args.threads, args.repeats, args.modelopt_python)
    if args.keep is not None:  # pathlib only: nothing may import numpy/TF before _set_threads
        if args.keep.exists() and not args.keep.is_dir():
            ap.error(f"--keep {args.keep}: is a file, not a folder")
        if args.keep.is_dir() and any(args.keep.iterdir()):
            ap.error(f"--keep {args.keep}: folder is not empty (the bench never replaces one)")
    _set_threads(args.threads)

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras

    from keras_seran.export import export_bundle, parity
    from keras_seran.export.litert import LiteRTRunner
    from keras_seran.export.onnx_export import OnnxRunner
    from keras_seran.export.savedmodel import SavedModelRunner, serving_fn
    from keras_seran.models import count_flops, seran

    peak = matmul_gflops(args.threads)
    keras.utils.set_random_seed(0)
    model = seran(args.scale, args.preset)
    lr_side = args.output_size // args.scale
    out_side = lr_side * args.scale  # 255 for --output-size 256 at x3
    flops = count_flops(model, (lr_side, lr_side))
    ((x, _),) = parity.parity_pairs(
        args.scale, indices=[parity.PARITY_SLICES[0]], lr_size=(lr_side, lr_side)
    )

    tmp = tempfile.TemporaryDirectory(prefix="bench_export_")
    root = Path(tmp.name)
    out = args.keep or root / "bundle"
    t0 = time.perf_counter()
    manifest = export_bundle(
        model,
        out,
        "savedmodel,tflite,onnx",
        scale=args.scale,
        num_threads=args.threads,
        parity_pairs=[parity.parity_pairs(args.scale, indices=[12])[0]],
    )
    export_s = time.perf_counter() - t0
    keras_file = root / "model.keras"
    model.save(keras_file)

    fn = tf.function(
        serving_fn(model), input_signature=[tf.TensorSpec([1, None, None, 1], tf.float32)]
    )
    rows = [("keras (tf.function)", keras_file, lambda a: fn(tf.constant(a))["sr"].numpy())]
    rows.append(("savedmodel", out / "savedmodel", SavedModelRunner(out / "savedmodel")))
    for variant, info in manifest["formats"]["tflite"]["variants"].items():
        rows.append(
            (
                f"tflite/{variant}",
                out / info["file"],
                LiteRTRunner(out / info["file"], num_threads=args.threads),
            )
        )
    for variant, info in manifest["formats"]["onnx"]["variants"].items():
        rows.append(
            (
                f"onnx/{variant} (ort)",
                out / info["file"],
                OnnxRunner(out / info["file"], num_threads=args.threads),
            )
        )

    print(
        f"\nSERAN {args.preset} x{args.scale}: {model.count_params():,} parameters, "
        f"{flops / 1e9:.2f} GFLOP per {out_side}x{out_side} output slice "
        f"(LR {lr_side}x{lr_side}); bundle exported in {export_s:.0f} s"
    )
    print(f"CPU: {args.threads} threads; numpy float32 matmul 2048^2: {peak:.1f} GFLOP/s\n")
    header = (
        f"| {'format':<24} | {'size (MB)':>9} | {'latency (ms)':>12} | {'GFLOP/s':>8} | "
        f"{'% of matmul':>11} |"
    )
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for name, path, run in rows:
        lat = median_latency(run, x, args.repeats)
        gf = flops / lat / 1e9
        print(
            f"| {name:<24} | {dir_size(path) / 1e6:>9.3f} | {lat * 1e3:>12.1f} | {gf:>8.2f} | "
            f"{100 * gf / peak:>10.1f}% |"
        )
    print(
        "\nlatency: median of %d runs after 2 warm-ups, batch 1, output %dx%d; int8 GFLOP/s "
        "counts the same FLOPs as float." % (args.repeats, out_side, out_side)
    )
    del rows
    tmp.cleanup()
    return 0


def _psnr_drop(run, keras_outs, pairs, scale: int) -> tuple[float, float]:
    """(PSNR drop vs Keras in dB, mean |difference|) of ``run`` on ``pairs``."""
    import numpy as np

    from keras_seran.export.parity import _psnr

    outs = [run(lr) for lr, _ in pairs]
    drop = float(
        np.mean(
            [
                _psnr(k, hr, scale) - _psnr(o, hr, scale)
                for o, k, (_, hr) in zip(outs, keras_outs, pairs)
            ]
        )
    )
    return drop, float(np.mean([np.abs(o - k).mean() for o, k in zip(outs, keras_outs)]))


def _ort_runner(path: Path, threads: int, fused: bool):
    """onnxruntime CPU session: all graph optimizations, or without the int8 kernel fusions
    (QDQSelectorActionTransformer, QDQS8ToU8Transformer): plain Q/DQ arithmetic."""
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    opts.log_severity_level = 3
    off = [] if fused else ["QDQSelectorActionTransformer", "QDQS8ToU8Transformer"]
    sess = ort.InferenceSession(
        str(path), opts, providers=["CPUExecutionProvider"], disabled_optimizers=off
    )
    return lambda x: sess.run(None, {"lr": np.asarray(x, np.float32)})[0]


def int8_table(model_spec: str, threads: int, repeats: int, modelopt_python: str | None) -> int:
    import subprocess

    import numpy as np

    from keras_seran.contract import infer_scale
    from keras_seran.export import litert, onnx_export, parity
    from keras_seran.export.qdq import qdq_structure
    from keras_seran.registry import load_model

    model = load_model(model_spec)
    scale = infer_scale(model)
    pairs = parity.parity_pairs(scale)
    cal = parity.calibration_inputs(scale)
    keras_outs = [np.asarray(model(lr)) for lr, _ in pairs]
    tmp = tempfile.TemporaryDirectory(prefix="bench_int8_")
    root = Path(tmp.name)
    fp32 = root / "float32.onnx"
    onnx_export.export_onnx(model, fp32)
    files = {"float32": fp32}
    for placement in onnx_export.PLACEMENTS:
        files[placement] = root / f"int8_{placement}.onnx"
        onnx_export.quantize_qdq(fp32, files[placement], cal, placement=placement)
    if modelopt_python:
        np.savez(root / "calib.npz", lr=np.concatenate(cal))
        mo = root / "int8_modelopt.onnx"
        res = subprocess.run(
            [
                modelopt_python,
                "-m",
                "modelopt.onnx.quantization",
                "--onnx_path",
                str(fp32),
                "--quantize_mode",
                "int8",
                "--calibration_method",
                "max",
                "--calibration_data_path",
                str(root / "calib.npz"),
                "--calibration_eps",
                "cpu",
                "--high_precision_dtype",
                "fp32",
                "--output_path",
                str(mo),
            ],
            capture_output=True,
            text=True,
        )
        if res.returncode == 0 and mo.exists():
            files["modelopt (max, fp32)"] = mo
        else:
            print(f"modelopt failed: {res.stderr[-800:]}")
    tfl = litert.export_tflite(model, root / "tflite", ["int8"], representative=cal)
    x = pairs[0][0]
    print(
        f"\nint8 on {len(pairs)} held-out slices of the bundled slab ({model_spec}, "
        f"x{scale}, LR {x.shape[1]}x{x.shape[2]}); Keras PSNR "
        f"{np.mean([parity._psnr(k, hr, scale) for k, (_, hr) in zip(keras_outs, pairs)]):.3f}"
        f" dB; CPU {threads} threads\n"
    )
    print(
        "| model | Q | DQ | Q/DQ before softmax | Q/DQ on scalars | drop, ort (dB) | "
        "drop, exact Q/DQ (dB) | mean abs diff | latency, ort (ms) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, path in files.items():
        fused = _ort_runner(path, threads, fused=True)
        drop, diff = _psnr_drop(fused, keras_outs, pairs, scale)
        exact, _ = _psnr_drop(_ort_runner(path, threads, fused=False), keras_outs, pairs, scale)
        lat = median_latency(fused, x, repeats)
        s = qdq_structure(path)
        print(
            f"| onnx {name} | {s['quantize_linear']} | {s['dequantize_linear']} | "
            f"{len(s['softmax_with_quantized_input'])} | {len(s['scalar_qdq'])} | "
            f"{drop:+.3f} | {exact:+.3f} | {diff:.2e} | {lat * 1e3:.1f} |"
        )
    run = litert.LiteRTRunner(root / "tflite" / tfl["int8"]["file"], num_threads=threads)
    drop, diff = _psnr_drop(run, keras_outs, pairs, scale)
    print(
        f"| litert int8 (full integer) | | | all int8 | | {drop:+.3f} | | {diff:.2e} | "
        f"{median_latency(run, x, repeats) * 1e3:.1f} |"
    )
    print(
        "\ndrop, ort: onnxruntime CPU with every graph optimization (on x86 without VNNI its "
        "u8s8 int8 kernels can saturate); exact Q/DQ: without the int8 kernel fusions, the "
        "arithmetic the Q/DQ graph defines (TensorRT accumulates int8 products in int32)."
    )
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
