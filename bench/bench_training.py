"""Training throughput: step time and patches/s of ``model.fit`` steps, per preset and scale.

    python bench/bench_training.py                 # small and paper presets, x2 and x4
    python bench/bench_training.py --steps 5 --presets small --scales 2
    python bench/bench_training.py --precisions float32 bfloat16   # mixed precision on CPU (AMX)

Runs real ``train_on_batch`` steps (L1 loss, Adam, the package's compile) on batches from the
package's data pipeline over the bundled real T1 slab (tf.data on the TensorFlow backend, the
numpy PyDataset on JAX / PyTorch), after warm-up steps (tracing), and prints the median step
time. Batch 16 of 48x48 LR patches (the paper's setting) unless changed.

On a GPU machine without TensorFlow (JAX with CUDA):

    KERAS_BACKEND=jax python bench/bench_training.py --precisions float32 float16
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["small", "paper"])
    p.add_argument("--scales", type=int, nargs="+", default=[2, 4])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--patch", type=int, default=48)
    p.add_argument(
        "--precisions",
        nargs="+",
        default=["float32", "bfloat16"],
        choices=["float32", "bfloat16", "float16"],
        help="float32, or mixed precision with this compute type (float16: GPU)",
    )
    args = p.parse_args()

    import keras

    from keras_seran import devices, samples
    from keras_seran.config import DataConfig, TrainConfig
    from keras_seran.training import build_model, compile_model
    from keras_seran.training.trainer import mixed_policy

    backend = keras.backend.backend()
    print(f"keras {keras.__version__}, {devices.describe()}, {platform.machine()}")
    print(
        f"batch {args.batch} of {args.patch}x{args.patch} LR patches; median of {args.steps} "
        f"steps after {args.warmup} warm-up\n"
    )
    print("| preset | scale | precision | parameters | step (s) | patches/s |")
    print("|---|---|---|---|---|---|")
    for preset, scale, precision in (
        (p, s, q) for p in args.presets for s in args.scales for q in args.precisions
    ):
        keras.mixed_precision.set_global_policy(
            "float32" if precision == "float32" else mixed_policy(precision)
        )
        cfg = DataConfig(
            patch_size=args.patch,
            batch_size=args.batch,
            slice_axis=1,
            val_fraction=0.0,
            min_foreground=0.05,
        )
        if backend == "tensorflow":  # the pipelines train() feeds on each backend
            from keras_seran.data import make_datasets

            train_ds, _ = make_datasets(str(samples.T1_AXIAL_SLAB), scale, cfg)
        else:
            from keras_seran.data import make_pydatasets

            train_ds, _ = make_pydatasets(
                str(samples.T1_AXIAL_SLAB), scale, cfg, steps_per_epoch=args.warmup + args.steps
            )
        batches = iter(train_ds)
        model = compile_model(build_model("seran", scale, preset), TrainConfig(), scale)
        for _ in range(args.warmup):
            model.train_on_batch(*next(batches))
        times = []
        for _ in range(args.steps):
            lr, hr = next(batches)
            t0 = time.perf_counter()
            model.train_on_batch(lr, hr)
            times.append(time.perf_counter() - t0)
        step = statistics.median(times)
        print(
            f"| {preset} | x{scale} | {precision} | {model.count_params():,} | {step:.3f} | "
            f"{args.batch / step:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
