"""Input-pipeline throughput vs. one training step: is the data pipeline the bottleneck?

Prints, for scale 2/3/4 at the paper's setting (LR patches 48x48, batch 16, flips+rotations,
bicubic BI degradation made on the fly, or ``--degradation kspace --scanner-effects``: the
scanner-realistic LR of whole-slice k-space with a k-space filter, partial Fourier and noise
drawn per patch), the patches per second of
    * the tf.data pipeline (``make_datasets``),
    * the numpy ``PatchPyDataset`` (single worker, for the JAX/PyTorch backends),
    * a training step of SERAN "small" (or, if the model package is unavailable, a plain conv net
      of similar cost), L1 loss + Adam,
and the ratio pipeline / model (> 1: the model waits for nothing).

Data: ../shared/data/t1_head_256iso.nii.gz when present (or $KERAS_SERAN_SHARED_DATA), else the
bundled real T1 slab. Run: ``python bench/bench_pipeline.py [--quick]``; about 1-2 minutes on CPU.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402


def _data_source() -> tuple[Path, int]:
    env = os.environ.get("KERAS_SERAN_SHARED_DATA")
    shared = Path(env) if env else REPO.parent / "shared" / "data"
    big = shared / "t1_head_256iso.nii.gz"
    from keras_seran import samples

    return (big, 1) if big.exists() else (samples.T1_AXIAL_SLAB, 1)


def _time_iter(it, n: int, warmup: int) -> float:
    for _ in range(warmup):
        next(it)
    t0 = time.perf_counter()
    for _ in range(n):
        next(it)
    return time.perf_counter() - t0


def _model(scale: int):
    import keras

    try:
        from keras_seran.models import seran

        return seran(scale=scale, preset="small"), "SERAN small"
    except Exception as e:  # model package not there yet: a conv net of similar cost
        warnings.warn(f"SERAN unavailable ({e}); timing a 26-layer 32-channel conv net instead")
        inp = keras.Input((None, None, 1))
        x = keras.layers.Conv2D(32, 3, padding="same")(inp)
        for _ in range(24):
            x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
        x = keras.layers.UpSampling2D(scale)(x)
        return keras.Model(inp, keras.layers.Conv2D(1, 3, padding="same")(x)), "conv net (26x32ch)"


def _model_step_time(scale: int, lr: np.ndarray, hr: np.ndarray, steps: int) -> tuple[float, str]:
    import keras

    model, name = _model(scale)
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="mae")
    model.train_on_batch(lr, hr)  # traces and compiles the step
    t0 = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(lr, hr)
    return (time.perf_counter() - t0) / steps, name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer batches and steps")
    ap.add_argument("--no-model", action="store_true", help="time the pipeline only")
    ap.add_argument(
        "--contrast-augment",
        type=float,
        default=0.0,
        metavar="PROB",
        help="also remap HR intensities with this probability (DataConfig)",
    )
    ap.add_argument(
        "--degradation", default="bicubic", choices=["bicubic", "blur", "kspace", "blind"]
    )
    ap.add_argument(
        "--scanner-effects",
        action="store_true",
        help="draw a k-space filter, partial Fourier and noise per patch "
        "(AcquisitionConfig defaults; kspace or blind)",
    )
    args = ap.parse_args()
    n_batches, n_steps = (20, 1) if args.quick else (40, 2)

    import tensorflow as tf

    from keras_seran.config import AcquisitionConfig, DataConfig
    from keras_seran.data import load_slice_sets
    from keras_seran.data.pipeline import train_dataset
    from keras_seran.data.pydataset import PatchPyDataset

    src, axis = _data_source()
    print(
        f"data: {src.name} (axis {axis}); TF {tf.__version__}; devices: "
        f"{[d.device_type for d in tf.config.list_physical_devices()]}; "
        f"CPU cores: {os.cpu_count()}"
    )
    cfg = DataConfig(
        slice_axis=axis,
        patch_size=48,
        batch_size=16,
        augment=True,
        seed=0,
        contrast_augment=args.contrast_augment,
        degradation=args.degradation,
        acquisition=AcquisitionConfig() if args.scanner_effects else None,
    )
    rows = []
    t0 = time.perf_counter()
    train, _ = load_slice_sets(src, 4, cfg)  # slices big enough for every scale's HR patch
    t_load = time.perf_counter() - t0
    print(f"loaded, normalised and sliced in {t_load:.1f} s: {len(train)} training slices")
    for scale in (2, 3, 4):
        ds = train_dataset(train, scale, cfg)
        it = iter(ds)
        t_tf = _time_iter(it, n_batches, warmup=5)
        tf_pps = n_batches * cfg.batch_size / t_tf
        pyds = PatchPyDataset(train, scale, cfg, steps_per_epoch=10_000)
        n_py = max(5, n_batches // 3)
        t0 = time.perf_counter()
        for i in range(n_py):
            pyds[i]
        py_pps = n_py * cfg.batch_size / (time.perf_counter() - t0)
        if args.no_model:
            step, name = float("nan"), "-"
        else:
            lr, hr = next(it)
            step, name = _model_step_time(scale, lr.numpy(), hr.numpy(), n_steps)
        model_pps = cfg.batch_size / step
        rows.append((scale, tf_pps, py_pps, name, step, model_pps))

    print()
    made = "whole-slice k-space" if cfg.degradation in ("kspace", "blind") else "on the fly"
    effects = ", scanner effects drawn per patch" if cfg.acquisition else ""
    print(
        f"LR patch {cfg.patch_size}x{cfg.patch_size}, batch {cfg.batch_size}, degradation "
        f"{cfg.degradation} ({made}{effects}), flips+rot90, contrast_augment "
        f"{cfg.contrast_augment}"
    )
    head = (
        "scale",
        "tf.data patch/s",
        "PyDataset patch/s (1 worker)",
        "model",
        "train step ms",
        "model patch/s",
        "tf.data / model",
    )
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    for scale, tfp, pyp, name, step, mp in rows:
        ratio = tfp / mp if np.isfinite(mp) else float("nan")
        print(
            f"| x{scale} | {tfp:,.0f} | {pyp:,.0f} | {name} | {step * 1e3:,.0f} | {mp:,.1f} | "
            f"{ratio:,.0f}x |"
        )
    print()
    if args.no_model:
        print("training step not timed (--no-model): no verdict on the bottleneck")
        return
    ok = all(r[1] > r[5] for r in rows)
    print("input pipeline faster than the training step at every scale: " + ("yes" if ok else "NO"))


if __name__ == "__main__":
    main()
