"""One GPU check of SERAN: speed, mixed-precision numerics and a time-budget training run.

    KERAS_BACKEND=jax python bench/gpu_check.py --out runs/gpu_check        # one GPU, ~5 min
    KERAS_BACKEND=jax JAX_PLATFORMS=cpu python bench/gpu_check.py --quick --out /tmp/gpu_check

Sections (each row measured in its own subprocess, so a crash, an out-of-memory or a backend
that does not run becomes a "failed: ..." row and the next row still runs; the first backend of
``--backends`` runs every section, the others only the speed sections):

1. ``train_speed``: training step time, patches/s and peak memory of ``train_on_batch`` (the
   package's compile: L1, Adam, PSNR/SSIM metrics) on batches of real MR patches from the numpy
   PyDataset (``make_pydatasets``), per preset and precision (float32, mixed bfloat16/float16);
   also how fast the data pipeline makes batches, and the first step's time (tracing, compile).
2. ``infer_speed``: slices/s of ``predict_on_batch`` on real MR slices resized to each LR size.
3. ``numerics``: every SERA module's intermediates (``keras_seran.models.attention_model``) on
   one real slice at ``--numerics-size`` (512: the softmax over positions sums 262,144 terms)
   under each mixed precision, against float32 with the same weights: whether the attention
   maps M stay finite and still sum to 1 over the positions, how far they move (total
   variation distance per map), the excitation D's sums, and the SR output's difference.
4. ``budget_train``: ``keras_seran.training.train`` of each preset for ``--budget`` seconds
   (the clock starts after the first step, i.e. after compiling) on ``--data``, then the PSNR
   on the held-out slices of the same split, next to bicubic's.

Writes ``gpu_check.json`` (every number, the settings, the device) and ``gpu_check.md`` (the
tables) to ``--out`` after every row, so a run stopped by a time limit keeps what it measured;
``--deadline`` skips the rows that would start after it. Workers' output goes to
``gpu_check.log``. Every size and budget is a flag; ``--quick`` picks tiny ones for a CPU.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import math
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SECTIONS = ("train_speed", "infer_speed", "numerics", "budget_train")
PRECISIONS = ("float32", "bfloat16", "float16")
#: defaults for one GPU, and --quick's for a CPU (explicit flags override either)
FULL = {
    "presets": ["small", "paper"],
    "precisions": list(PRECISIONS),
    "batch": 16,
    "patch": 48,
    "steps": 10,
    "warmup": 2,
    "infer_sizes": [256, 512],
    "infer_batch": 8,
    "infer_slices": 32,
    "numerics_size": 512,
    "numerics_precisions": ["bfloat16", "float16"],
    "budget": 30.0,
    "budget_precision": "bfloat16",
    "eval_slices": 16,
    "deadline": 250.0,
    "group_precisions": False,
}
QUICK = {
    "presets": ["tiny"],
    "precisions": list(PRECISIONS),
    "batch": 2,
    "patch": 16,
    "steps": 2,
    "warmup": 1,
    "infer_sizes": [32, 48],
    "infer_batch": 2,
    "infer_slices": 4,
    "numerics_size": 64,
    "numerics_precisions": ["bfloat16", "float16"],
    "budget": 3.0,
    "budget_precision": "float32",
    "eval_slices": 2,
    "deadline": 900.0,
    "group_precisions": True,
}
#: a mixed-precision SERA module passes the numerics check when, in every module: M and D are
#: finite, each map of M sums to 1 over the positions and each D to 1 over the descriptors
#: within SUM_TOL, and each map of M is within TV_TOL (total variation) of float32's
SUM_TOL, TV_TOL = 0.01, 0.05
#: seconds a time-budget run keeps before the --deadline to save, predict and score
SCORING_RESERVE_S = 40.0
ROOT = Path(__file__).resolve().parents[1]
SHARED_VOLUME = (
    Path(os.environ.get("KERAS_SERAN_SHARED_DATA") or ROOT.parent / "shared" / "data")
    / "t1_head_256iso.nii.gz"
)


# ------------------------------------------------------------------------------------------
# workers: one measurement each, in a fresh process of the given backend


def _keras(precision: str = "float32"):
    """Import Keras (the backend comes from KERAS_BACKEND) and set the dtype policy."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from keras_seran.training.trainer import mixed_policy

    keras.mixed_precision.set_global_policy(
        "float32" if precision == "float32" else mixed_policy(precision)
    )
    return keras


def _enable_jax_cache(cache_dir: str | None) -> None:
    """A persistent XLA cache: identical programs (the same preset, precision and shapes in two
    workers, or a rerun on the same machine) are compiled once."""
    if cache_dir and os.environ.get("KERAS_BACKEND") == "jax":
        import jax

        try:
            jax.config.update("jax_compilation_cache_dir", cache_dir)
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
        except (AttributeError, KeyError, ValueError) as exc:  # an optimisation only
            print(f"gpu_check: no persistent XLA cache ({exc})", file=sys.stderr)


def device_info() -> dict:
    """Backend, its version and the device it computes on (the first accelerator, else CPU)."""
    import keras

    backend = keras.backend.backend()
    info = {"backend": backend, "keras": keras.__version__}
    if backend == "jax":
        import jax

        d = jax.devices()[0]
        info.update(jax=jax.__version__, platform=d.platform, device=d.device_kind)
    elif backend == "torch":
        import torch

        gpu = torch.cuda.is_available()
        info.update(
            torch=torch.__version__,
            platform="gpu" if gpu else "cpu",
            device=torch.cuda.get_device_name(0) if gpu else platform.processor(),
        )
    elif backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        info.update(
            tensorflow=tf.__version__,
            platform="gpu" if gpus else "cpu",
            device=gpus[0].name if gpus else platform.processor(),
        )
    if info.get("platform") == "cpu":
        info["device"] = f"{info.get('device') or platform.machine()} ({os.cpu_count()} cores)"
    return info


def reset_peak_memory() -> None:
    """Start a new peak of device memory (torch); JAX has no reset: one worker per precision."""
    import keras

    if keras.backend.backend() == "torch":
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()


def peak_memory_mib() -> dict:
    """Peak device memory in use (GPU only; None on a CPU) and this process's peak RSS."""
    import keras

    device = None
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        d = jax.devices()[0]
        if d.platform != "cpu":
            device = (d.memory_stats() or {}).get("peak_bytes_in_use", 0) / 2**20
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            device = torch.cuda.max_memory_allocated() / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (
        1024.0 if sys.platform != "darwin" else 2**20
    )
    return {"device_peak_mib": device, "host_rss_mib": rss}


def data_config(task: dict, val_fraction: float | None = None):
    from keras_seran.config import DataConfig

    extra = {} if val_fraction is None else {"val_fraction": val_fraction}
    return DataConfig(
        patch_size=task["patch"], batch_size=task["batch"], slice_axis=task["axis"], seed=0, **extra
    )


@functools.lru_cache(maxsize=2)
def _volume_slices(data: str, axis: int) -> list:
    from keras_seran.config import DataConfig
    from keras_seran.data import load_slice_sets

    train, _ = load_slice_sets(data, 2, DataConfig(slice_axis=axis, val_fraction=0.0, patch_size=8))
    return train.slices


def real_slices(data: str, axis: int, size: int, count: int):
    """(count, size, size, 1) float32: real MR slices of ``data`` (normalised to [0, 1], the
    foreground ones, evenly spaced, repeated if there are fewer), resized to size x size."""
    import cv2
    import numpy as np

    slices = _volume_slices(data, axis)
    picks = np.linspace(0, len(slices) - 1, count).round().astype(int)
    out = [cv2.resize(slices[i], (size, size), interpolation=cv2.INTER_CUBIC) for i in picks]
    return np.clip(np.stack(out), 0.0, 1.0).astype("float32")[..., None]


def train_config(mixed: str | bool = False):
    """The optimiser settings of every training row: one long epoch (a time budget ends it), so
    the learning rate stays at its start; the same settings give the same compiled program."""
    from keras_seran.config import TrainConfig

    return TrainConfig(
        epochs=1, steps_per_epoch=10**6, checkpoint_every_epochs=1, mixed_precision=mixed
    )


def worker_train_speed(task: dict) -> list[dict]:
    import numpy as np

    keras = _keras()
    from keras_seran.data import make_pydatasets
    from keras_seran.training import build_model, compile_model

    n = task["warmup"] + task["steps"]
    train_ds, _ = make_pydatasets(
        task["data"], task["scale"], data_config(task, 0.0), steps_per_epoch=n
    )
    t0 = time.perf_counter()
    batches = [train_ds[i] for i in range(n)]
    data_batches_per_s = n / (time.perf_counter() - t0)
    rows = []
    for precision in task["precisions"]:
        keras = _keras(precision)
        reset_peak_memory()
        model = compile_model(
            build_model("seran", task["scale"], task["preset"]), train_config(), task["scale"]
        )
        t0 = time.perf_counter()
        model.train_on_batch(*batches[0])
        first_step_s = time.perf_counter() - t0
        for lr, hr in batches[1 : task["warmup"]]:
            model.train_on_batch(lr, hr)
        times, logs = [], {}
        for lr, hr in batches[task["warmup"] :]:
            t0 = time.perf_counter()
            logs = model.train_on_batch(lr, hr, return_dict=True)  # numpy: waits for the step
            times.append(time.perf_counter() - t0)
        step = statistics.median(times)
        rows.append(
            {
                "preset": task["preset"],
                "precision": precision,
                "params": int(model.count_params()),
                "batch": task["batch"],
                "patch": task["patch"],
                "steps": len(times),
                "step_s": step,
                "step_s_min": min(times),
                "patches_per_s": task["batch"] / step,
                "first_step_s": first_step_s,
                "data_batches_per_s": data_batches_per_s,
                "loss": float(np.asarray(logs["loss"])),
                "loss_finite": bool(np.isfinite(np.asarray(logs["loss"]))),
                **peak_memory_mib(),
            }
        )
        del model
        keras.backend.clear_session()
    return rows


def worker_infer_speed(task: dict) -> list[dict]:
    import numpy as np

    rows = []
    for precision in task["precisions"]:
        keras = _keras(precision)
        from keras_seran.models import seran

        reset_peak_memory()
        model = seran(task["scale"], task["preset"])  # speed does not depend on the weights
        for size in task["sizes"]:
            b = task["batch"]
            nb = max(1, math.ceil(task["slices"] / b))  # whole batches: one compiled shape
            x = real_slices(task["data"], task["axis"], size, b)
            t0 = time.perf_counter()
            model.predict_on_batch(x)
            first_s = time.perf_counter() - t0
            model.predict_on_batch(x)
            t0 = time.perf_counter()
            for _ in range(nb):
                y = model.predict_on_batch(x)  # numpy: waits for the batch
            dt = time.perf_counter() - t0
            rows.append(
                {
                    "preset": task["preset"],
                    "precision": precision,
                    "lr_size": size,
                    "batch": b,
                    "slices": nb * b,
                    "seconds": dt,
                    "slices_per_s": nb * b / dt,
                    "ms_per_slice": 1e3 * dt / (nb * b),
                    "first_batch_s": first_s,
                    "output_finite": bool(np.isfinite(np.asarray(y)).all()),
                    **peak_memory_mib(),
                }
            )
        del model
        keras.backend.clear_session()
    return rows


def bundled_or_initial(preset: str, scale: int):
    """The bundled trained weights of ``preset`` at ``scale`` if the package has them (a real
    attention to check), else the network's initial weights; returns (model, description)."""
    from keras_seran import SuperResolver
    from keras_seran.errors import InputDataError
    from keras_seran.models import seran

    try:
        return (
            SuperResolver.from_pretrained(scale=scale, preset=preset).model,
            f"bundled {preset} x{scale}",
        )
    except InputDataError:  # none bundled for this preset and scale
        return seran(scale, preset), "initial (untrained)"


def attention_stats(maps, ref) -> dict:
    """Stats of attention maps M (1, H, W, n), softmax over positions, against float32's."""
    import numpy as np

    m = np.asarray(maps, "float64").reshape(-1, np.shape(maps)[-1])
    r = np.asarray(ref, "float64").reshape(m.shape)
    sums = m.sum(axis=0)
    tv = 0.5 * np.abs(m - r).sum(axis=0)
    from keras_seran.models import effective_support

    return {
        "finite": bool(np.isfinite(m).all()),
        "sum_min": float(sums.min()),
        "sum_max": float(sums.max()),
        "zero_maps": int((m.max(axis=0) <= 0).sum()),
        "tv_max": float(tv.max()),
        "max_abs": float(np.abs(m - r).max()),
        "ref_max": float(r.max()),
        "support": float(np.median(effective_support(m))),
        "ref_support": float(np.median(effective_support(r))),
    }


def worker_numerics(task: dict) -> list[dict]:
    import numpy as np

    _keras()
    from keras_seran.metrics import psnr
    from keras_seran.models import attention_model

    base, weights = bundled_or_initial(task["preset"], task["scale"])
    x = real_slices(task["data"], task["axis"], task["size"], 1)
    ref = attention_model(base).predict_on_batch(x)
    modules = sorted({k.split("/")[0] for k in ref if k != "sr"})
    rows = []
    for precision in task["precisions"]:
        _keras(precision)  # the copy computes in this precision, same weights
        out = attention_model(base).predict_on_batch(x)
        _keras("float32")
        per_module = {}
        for name in modules:
            stats = attention_stats(out[f"{name}/attention_maps"], ref[f"{name}/attention_maps"])
            d = np.asarray(out[f"{name}/excitation"], "float64")
            d_sums = d.sum(axis=-1)
            stats.update(
                d_finite=bool(np.isfinite(d).all()),
                d_sum_min=float(d_sums.min()),
                d_sum_max=float(d_sums.max()),
                d_max_abs=float(np.abs(d - np.asarray(ref[f"{name}/excitation"], "float64")).max()),
            )
            per_module[name] = stats
        sr, sr32 = np.asarray(out["sr"], "float64"), np.asarray(ref["sr"], "float64")
        worst = max(per_module, key=lambda k: per_module[k]["tv_max"])
        ok = all(
            s["finite"]
            and s["d_finite"]
            and abs(s["sum_min"] - 1) <= SUM_TOL
            and abs(s["sum_max"] - 1) <= SUM_TOL
            and s["tv_max"] <= TV_TOL
            and abs(s["d_sum_min"] - 1) <= SUM_TOL
            and abs(s["d_sum_max"] - 1) <= SUM_TOL
            for s in per_module.values()
        )
        rows.append(
            {
                "preset": task["preset"],
                "precision": precision,
                "weights": weights,
                "lr_size": task["size"],
                "positions": task["size"] ** 2,
                "modules": len(modules),
                "m_finite": all(s["finite"] for s in per_module.values()),
                "m_sum_min": min(s["sum_min"] for s in per_module.values()),
                "m_sum_max": max(s["sum_max"] for s in per_module.values()),
                "m_zero_maps": sum(s["zero_maps"] for s in per_module.values()),
                "m_tv_max": per_module[worst]["tv_max"],
                "m_tv_worst_module": worst,
                "m_max_abs": max(s["max_abs"] for s in per_module.values()),
                "m_ref_max": max(s["ref_max"] for s in per_module.values()),
                "m_support_ref": statistics.median(s["ref_support"] for s in per_module.values()),
                "m_support": statistics.median(s["support"] for s in per_module.values()),
                "d_sum_min": min(s["d_sum_min"] for s in per_module.values()),
                "d_sum_max": max(s["d_sum_max"] for s in per_module.values()),
                "d_max_abs": max(s["d_max_abs"] for s in per_module.values()),
                "sr_finite": bool(np.isfinite(sr).all()),
                "sr_float32_max_abs_value": float(np.abs(sr32).max()),  # a sane network: about 1
                "sr_max_abs": float(np.abs(sr - sr32).max()) if np.isfinite(sr).all() else None,
                "sr_psnr_vs_float32": psnr(np.clip(sr[0, ..., 0], -1, 2), sr32[0, ..., 0])
                if np.isfinite(sr).all()
                else None,
                "sum_tol": SUM_TOL,
                "tv_tol": TV_TOL,
                "ok": bool(ok and np.isfinite(sr).all()),
                "per_module": per_module,
            }
        )
    return rows


def time_budget(seconds: float, stop_by: float | None = None):
    """A Keras callback that stops ``fit`` once ``seconds`` have passed since the first step
    ended (so compiling is not counted), or at the wall-clock time ``stop_by``; it counts the
    steps."""
    import keras

    class TimeBudget(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.steps, self.start, self.first_step_s, self.trained_s = 0, None, None, 0.0
            self.first_loss = None

        def on_train_begin(self, logs=None):
            self.begin = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            # wait for the step: JAX dispatches ahead, and a budget of dispatched steps overshoots
            loss = float(logs["loss"]) if logs and "loss" in logs else None
            self.steps += 1
            now = time.perf_counter()
            if self.start is None:
                self.start, self.first_step_s, self.first_loss = now, now - self.begin, loss
            elif now - self.start >= seconds or (stop_by and time.time() >= stop_by):
                self.model.stop_training = True

        def on_train_end(self, logs=None):
            self.trained_s = time.perf_counter() - (self.start or self.begin)

    return TimeBudget()


def worker_budget_train(task: dict) -> list[dict]:
    import numpy as np

    _keras()
    from keras_seran.data import make_pydatasets, upscale_baseline
    from keras_seran.metrics import psnr
    from keras_seran.training import train

    cfg = data_config(task)
    mixed = False if task["precision"] == "float32" else task["precision"]
    tcfg = train_config(mixed)
    train_ds, val_ds = make_pydatasets(task["data"], task["scale"], cfg, tcfg.steps_per_epoch)
    if val_ds is None:
        raise ValueError(f"{task['data']}: no held-out slices to score")
    budget = time_budget(task["seconds"], task.get("stop_by"))
    run_dir = Path(tempfile.mkdtemp(prefix=f"gpu_check_{task['preset']}_"))
    t0 = time.perf_counter()
    history = train(
        task["data"],
        task["scale"],
        run_dir / "run",
        preset=task["preset"],
        data=cfg,
        train_cfg=tcfg,
        datasets=(train_ds, None),
        verbose=0,
        tensorboard=False,
        callbacks=[budget],
    )
    fit_s = time.perf_counter() - t0
    model = history.model
    picks = np.linspace(0, len(val_ds) - 1, min(task["eval_slices"], len(val_ds)))
    picks = sorted(set(picks.round().astype(int).tolist()))
    scores, bicubic = [], []
    for i in picks:
        lr, hr = val_ds.lr_list[i], val_ds.hr_list[i]
        sr = np.asarray(model.predict_on_batch(lr[None, ..., None].astype("float32")))[0, ..., 0]
        scores.append(psnr(np.clip(sr, 0, 1), hr, border=task["scale"]))
        bicubic.append(
            psnr(
                np.clip(upscale_baseline(lr, task["scale"], cfg.eval_degradation), 0, 1),
                hr,
                border=task["scale"],
            )
        )
    steps = budget.steps - 1  # the steps after the clock started
    return [
        {
            "preset": task["preset"],
            "precision": task["precision"],
            "params": int(model.count_params()),
            "budget_s": task["seconds"],
            "trained_s": budget.trained_s,
            "first_step_s": budget.first_step_s,
            "fit_s": fit_s,
            "steps": steps,
            "patches": steps * task["batch"],
            "patches_per_s": steps * task["batch"] / max(budget.trained_s, 1e-9),
            "first_loss": budget.first_loss,
            "final_loss": float(history.history["loss"][-1]),
            "eval_slices": len(picks),
            "psnr": float(np.mean(scores)),
            "psnr_bicubic": float(np.mean(bicubic)),
            **peak_memory_mib(),
        }
    ]


WORKERS = {
    "train_speed": worker_train_speed,
    "infer_speed": worker_infer_speed,
    "numerics": worker_numerics,
    "budget_train": worker_budget_train,
}


def run_worker(task: dict, out_path: str) -> int:
    """Run one task; write {"info": ..., "rows": [...]} or {"error": ...} to ``out_path``."""
    try:
        _enable_jax_cache(task.get("jax_cache"))
        rows = WORKERS[task["section"]](task)
        result = {"info": device_info(), "rows": rows}
    except Exception as exc:  # noqa: BLE001 (reported as a row; the next row runs)
        import traceback

        traceback.print_exc()
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        result = {"error": f"{type(exc).__name__}: {first}"[:300]}
    Path(out_path).write_text(json.dumps(clean(result), allow_nan=False))
    return 0


# ------------------------------------------------------------------------------------------
# the orchestrator: plans the rows, runs each worker, writes JSON and Markdown after each


def clean(value):
    """JSON-safe: non-finite floats become strings ("nan", "inf")."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


def default_data() -> tuple[str, int]:
    """(volume, slice axis): ../shared's 256^3 T1 when present, else the bundled T1 slab (found
    without importing the package, so this process starts no backend)."""
    if SHARED_VOLUME.exists():
        return str(SHARED_VOLUME), 2
    spec = importlib.util.find_spec("keras_seran")
    if spec is None or spec.origin is None:
        raise SystemExit("gpu_check: keras_seran is not importable (set PYTHONPATH or install it)")
    # 256 x 16 x 256: axial slices along axis 1
    return str(Path(spec.origin).parent / "sample" / "t1_head_axial_slab.nii.gz"), 1


def plan(args) -> list[dict]:
    """The tasks in the order they run, what matters most first (a --deadline skips the rest):
    every section runs on the first backend, the speed sections also on the others (torch).

    0. speed rows in ``--budget-precision`` (the mixed precision a GPU trains in);
    1. numerics of the first preset (``small``: the bundled trained weights);
    2. the time-budget training runs;
    3. numerics of the other presets;  4. speed rows in the other precisions;
    5. the other backends.
    """
    common = {
        "scale": args.scale,
        "data": args.data,
        "axis": args.axis,
        "batch": args.batch,
        "patch": args.patch,
        "jax_cache": args.jax_cache,
    }
    groups = [args.precisions] if args.group_precisions else [[p] for p in args.precisions]
    tasks = []
    for i, backend in enumerate(args.backends):
        first = i == 0
        # torch keeps per-precision peaks (reset_peak_memory), so one worker per preset
        per = [args.precisions] if backend == "torch" else groups
        if "train_speed" in args.sections:
            tasks += [
                dict(
                    common,
                    section="train_speed",
                    backend=backend,
                    preset=p,
                    precisions=q,
                    steps=args.steps,
                    warmup=args.warmup,
                )
                for p in args.presets
                for q in per
            ]
        if "infer_speed" in args.sections:
            tasks += [
                dict(
                    common,
                    section="infer_speed",
                    backend=backend,
                    preset=p,
                    precisions=q,
                    sizes=args.infer_sizes,
                    slices=args.infer_slices,
                    batch=args.infer_batch,
                )
                for p in args.presets
                for q in per
            ]
        if first and "numerics" in args.sections:
            tasks += [
                dict(
                    common,
                    section="numerics",
                    backend=backend,
                    preset=p,
                    size=args.numerics_size,
                    precisions=args.numerics_precisions,
                )
                for p in args.presets
            ]
        if first and "budget_train" in args.sections and args.budget > 0:
            tasks += [
                dict(
                    common,
                    section="budget_train",
                    backend=backend,
                    preset=p,
                    seconds=args.budget,
                    precision=args.budget_precision,
                    eval_slices=args.eval_slices,
                )
                for p in args.presets
            ]

    def priority(task: dict) -> int:
        if task["backend"] != args.backends[0]:
            return 5
        if task["section"] == "numerics":
            return 1 if task["preset"] == args.presets[0] else 3
        if task["section"] == "budget_train":
            return 2
        return 0 if args.budget_precision in task["precisions"] else 4

    return sorted(tasks, key=priority)  # stable: section and preset order within each


def task_label(task: dict) -> str:
    return (
        f"{task['section']} {task['backend']} {task['preset']} "
        f"{'/'.join(task.get('precisions') or [task.get('precision', '')])}"
    )


def failed_rows(task: dict, status: str) -> list[dict]:
    """One row per precision of a task that gave no numbers, saying why."""
    precisions = task.get("precisions") or [task.get("precision")]
    return [
        {"backend": task["backend"], "preset": task["preset"], "precision": p, "status": status}
        for p in precisions
    ]


class BackendHealth:
    """Gives up on a backend that has never given a row: after its first failure for a backend
    after the first (e.g. torch not installed), after two identical failures for the first (e.g.
    JAX cannot start: every row would fail alike), so the time goes to rows that can run."""

    def __init__(self, first: str):
        self.first, self.worked, self.failures = first, set(), {}

    def record(self, backend: str, why: str | None) -> None:
        if why is None:
            self.worked.add(backend)
        else:
            self.failures.setdefault(backend, []).append(why)

    def given_up(self, backend: str) -> str | None:
        """Why ``backend`` is given up on, or None."""
        failures = self.failures.get(backend, [])
        if backend in self.worked or not failures:
            return None
        if backend != self.first or (len(failures) >= 2 and failures[-1] == failures[-2]):
            return failures[-1]
        return None


def run_task(task: dict, args, log, deadline: float, health: BackendHealth) -> tuple[list, dict]:
    """Run ``task`` in a subprocess; (rows, device info or {})."""
    backend = task["backend"]
    if health.given_up(backend):
        return failed_rows(task, f"skipped: {backend} failed ({health.given_up(backend)})"), {}
    left = deadline - time.monotonic()
    if left < 5:
        return failed_rows(task, f"skipped: past the --deadline of {args.deadline:g} s"), {}
    if task["section"] == "budget_train":  # stop training in time to score it
        if left < 2 * SCORING_RESERVE_S:
            return failed_rows(
                task, f"skipped: under {2 * SCORING_RESERVE_S:g} s left before the --deadline"
            ), {}
        task = dict(task, stop_by=time.time() + left - SCORING_RESERVE_S)
    out_file = Path(args.out) / f".worker_{os.getpid()}.json"
    out_file.unlink(missing_ok=True)
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # peaks of what is used
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        json.dumps(task),
        "--worker-out",
        str(out_file),
    ]
    log.write(f"\n===== {task_label(task)} =====\n")
    log.flush()
    log_start = log.tell()
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, env=env, stdout=log, stderr=log, timeout=left, check=False)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        code = None
    wall = time.monotonic() - t0
    result = json.loads(out_file.read_text()) if out_file.exists() else {}
    out_file.unlink(missing_ok=True)
    if "rows" in result:
        rows = [
            dict({"backend": backend, "status": "ok", "worker_s": wall}, **r)
            for r in result["rows"]
        ]
        health.record(backend, None)
        return rows, result["info"]
    if code is None:
        why = f"stopped at the --deadline after {wall:.0f} s"
    else:
        why = result.get("error") or f"exit code {code}: {last_error(log, log_start)}"
    health.record(backend, why)
    return failed_rows(task, f"failed: {why}"), {}


def last_error(log, start: int) -> str:
    """The last exception line (else the last line) a worker wrote to the log after ``start``."""
    log.flush()
    with open(log.name, errors="replace") as f:
        f.seek(start)
        lines = [line.strip() for line in f if line.strip()]
    errors = [line for line in lines if re.match(r"^[\w.]*(Error|Exception|Exit)\b", line)]
    return ((errors or lines or ["no output"])[-1])[:300]


def nvidia_smi() -> str | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def fmt(v, spec: str = ".1f") -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, (int, float)):
        return format(v, spec)
    return str(v)


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(r) + " |" for r in rows),
        "",
    ]


def status(row: dict) -> str:
    return "" if row.get("status") == "ok" else row.get("status", "")


def markdown(report: dict) -> str:
    """The report's tables (a row that failed or was skipped says so in its last column)."""
    meta, a = report["meta"], report["meta"]["args"]
    lines = [
        f"# GPU check ({meta['started']})",
        "",
        f"- device: {meta.get('device') or '-'}; nvidia-smi: {meta.get('nvidia_smi') or '-'}",
        f"- software: {meta.get('software') or '-'}",
        (
            f"- data: {a['data']} (axis {a['axis']}); x{a['scale']}; training batch "
            f"{a['batch']} of {a['patch']}x{a['patch']} LR patches"
        ),
        "",
        "## Training throughput (train_on_batch, median step)",
        "",
    ]
    lines += table(
        [
            "backend",
            "preset",
            "precision",
            "params",
            "step (ms)",
            "patches/s",
            "first step (s)",
            "loss",
            "data batches/s",
            "peak device MiB",
            "peak host MiB",
            "status",
        ],
        [
            [
                r["backend"],
                r["preset"],
                r["precision"],
                fmt(r.get("params"), ","),
                fmt(r.get("step_s") and 1e3 * r["step_s"]),
                fmt(r.get("patches_per_s")),
                fmt(r.get("first_step_s")),
                fmt(r.get("loss"), ".3g"),
                fmt(r.get("data_batches_per_s")),
                fmt(r.get("device_peak_mib"), ".0f"),
                fmt(r.get("host_rss_mib"), ".0f"),
                status(r),
            ]
            for r in report["train_speed"]
        ],
    )
    lines += ["## Inference (predict_on_batch)", ""]
    lines += table(
        [
            "backend",
            "preset",
            "precision",
            "LR size",
            "batch",
            "slices/s",
            "ms/slice",
            "first batch (s)",
            "peak device MiB",
            "status",
        ],
        [
            [
                r["backend"],
                r["preset"],
                r["precision"],
                f"{r['lr_size']}x{r['lr_size']}" if r.get("lr_size") else "-",
                fmt(r.get("batch"), "d"),
                fmt(r.get("slices_per_s")),
                fmt(r.get("ms_per_slice"), ".2f"),
                fmt(r.get("first_batch_s")),
                fmt(r.get("device_peak_mib"), ".0f"),
                status(r),
            ]
            for r in report["infer_speed"]
        ],
    )
    lines += [
        "## SERA numerics: mixed precision against float32 (worst module)",
        "",
        (
            "M: the attention maps (softmax over the H*W positions); D: the excitation "
            f"(softmax over the descriptors). Pass: all finite, every sum within {SUM_TOL} of "
            f"1, every map of M within total variation {TV_TOL} of float32's. Support: median "
            "effective support of the maps, as a share of the slice (float32's in brackets)."
        ),
        "",
    ]
    lines += table(
        [
            "preset",
            "weights",
            "precision",
            "positions",
            "M finite",
            "M sums",
            "zero maps",
            "M TV max",
            "M support",
            "D sums",
            "SR max abs diff",
            "SR PSNR vs fp32 (dB)",
            "fp32 SR max abs",
            "pass",
            "status",
        ],
        [
            [
                r["preset"],
                r["weights"],
                r["precision"],
                f"{r['positions']:,}",
                fmt(r["m_finite"]),
                f"{r['m_sum_min']:.4f}..{r['m_sum_max']:.4f}",
                str(r["m_zero_maps"]),
                f"{r['m_tv_max']:.4f}",
                f"{100 * r['m_support']:.1f} % ({100 * r['m_support_ref']:.1f} %)",
                f"{r['d_sum_min']:.4f}..{r['d_sum_max']:.4f}",
                fmt(r["sr_max_abs"], ".2e"),
                fmt(r["sr_psnr_vs_float32"]),
                fmt(r["sr_float32_max_abs_value"], ".3g"),
                fmt(r["ok"]),
                "",
            ]
            if r.get("status") == "ok"
            else [r["preset"], "-", r["precision"], *["-"] * 11, status(r)]
            for r in report["numerics"]
        ],
    )
    lines += [
        "## Training for a time budget (keras_seran.training.train, numpy PyDataset)",
        "",
        (
            "The clock starts after the first step (compiling); held-out PSNR on the split's "
            "validation slices (border = scale), next to bicubic's."
        ),
        "",
    ]
    lines += table(
        [
            "backend",
            "preset",
            "precision",
            "budget (s)",
            "steps",
            "patches",
            "patches/s",
            "first step (s)",
            "loss first..last",
            "held-out PSNR (dB)",
            "bicubic (dB)",
            "slices",
            "status",
        ],
        [
            [
                r["backend"],
                r["preset"],
                r["precision"],
                fmt(r.get("budget_s"), "g"),
                fmt(r.get("steps"), "d"),
                fmt(r.get("patches"), "d"),
                fmt(r.get("patches_per_s")),
                fmt(r.get("first_step_s")),
                f"{fmt(r.get('first_loss'), '.3g')}..{fmt(r.get('final_loss'), '.3g')}",
                fmt(r.get("psnr"), ".2f"),
                fmt(r.get("psnr_bicubic"), ".2f"),
                fmt(r.get("eval_slices"), "d"),
                status(r),
            ]
            for r in report["budget_train"]
        ],
    )
    lines += [f"Total wall time: {meta.get('wall_s', 0):.0f} s.", ""]
    return "\n".join(lines)


def write_report(report: dict, out: Path) -> None:
    for name, text in (
        ("gpu_check.json", json.dumps(clean(report), indent=1, allow_nan=False)),
        ("gpu_check.md", markdown(report)),
    ):
        tmp = out / f".{name}.tmp"
        tmp.write_text(text)
        tmp.replace(out / name)


def parse_args(argv: list[str] | None):
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="GPU defaults: " + json.dumps(FULL) + "\n--quick: " + json.dumps(QUICK),
    )
    p.add_argument("--out", default="runs/gpu_check", help="folder for the JSON/MD/log")
    p.add_argument("--quick", action="store_true", help="tiny sizes (a CPU smoke run)")
    p.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    p.add_argument(
        "--backends",
        nargs="+",
        default=["jax", "torch"],
        choices=["jax", "torch", "tensorflow"],
        help="the first runs every section; the others the speed sections",
    )
    p.add_argument("--presets", nargs="+", choices=["tiny", "small", "paper"])
    p.add_argument("--scale", type=int, default=2, choices=[2, 3, 4])
    p.add_argument("--precisions", nargs="+", choices=PRECISIONS, help="speed sections")
    p.add_argument("--batch", type=int, help="training patches per batch")
    p.add_argument("--patch", type=int, help="LR patch side")
    p.add_argument("--steps", type=int, help="timed training steps")
    p.add_argument("--warmup", type=int, help="untimed training steps (>= 1: compiling)")
    p.add_argument("--infer-sizes", type=int, nargs="+", help="LR slice sides")
    p.add_argument("--infer-batch", type=int, help="slices per inference batch")
    p.add_argument("--infer-slices", type=int, help="slices timed per size")
    p.add_argument("--numerics-size", type=int, help="LR side of the numerics slice")
    p.add_argument("--numerics-precisions", nargs="+", choices=PRECISIONS[1:])
    p.add_argument("--budget", type=float, help="training seconds per preset (0: skip)")
    p.add_argument("--budget-precision", choices=PRECISIONS)
    p.add_argument("--eval-slices", type=int, help="held-out slices scored after training")
    p.add_argument(
        "--data",
        help="MR volume (default: ../shared/data/t1_head_256iso.nii.gz, else the bundled T1 slab)",
    )
    p.add_argument("--axis", type=int, choices=[0, 1, 2], help="slice axis of --data")
    p.add_argument(
        "--deadline",
        type=float,
        help="seconds: rows that would start later are skipped, a running one is stopped",
    )
    p.add_argument(
        "--group-precisions",
        action=argparse.BooleanOptionalAction,
        help="one worker per preset for all precisions (fewer process starts; JAX's "
        "device memory peak is then the running maximum)",
    )
    p.add_argument(
        "--jax-cache",
        default=os.environ.get("JAX_COMPILATION_CACHE_DIR")
        or str(Path(tempfile.gettempdir()) / "keras_seran_jax_cache"),
        help="persistent XLA cache ('' off)",
    )
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return args
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.data is None:
        data, axis = default_data()
        args.data, args.axis = data, args.axis if args.axis is not None else axis
    elif args.axis is None:
        args.axis = 2
    if not Path(args.data).exists():
        p.error(f"--data {args.data}: no such file")
    if args.warmup < 1 or args.steps < 1:
        p.error("--warmup and --steps must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return run_worker(json.loads(args.worker), args.worker_out)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    deadline = start + args.deadline
    report = {
        "meta": {
            "started": time.strftime("%F %T"),
            "nvidia_smi": nvidia_smi(),
            "host": platform.node(),
            "python": platform.python_version(),
            "args": {k: v for k, v in vars(args).items() if k not in ("worker", "worker_out")},
        },
        **{s: [] for s in SECTIONS},
    }
    tasks = plan(args)
    health = BackendHealth(args.backends[0])
    with open(out / "gpu_check.log", "a") as log:
        for n, task in enumerate(tasks, 1):
            print(
                f"[{time.monotonic() - start:6.0f} s] {n}/{len(tasks)} {task_label(task)}",
                flush=True,
            )
            rows, info = run_task(task, args, log, deadline, health)
            if info:
                software = report["meta"].setdefault("software_by_backend", {})
                software[info["backend"]] = {
                    k: v for k, v in info.items() if k not in ("platform", "device")
                }
                report["meta"].setdefault("device", f"{info['device']} ({info['platform']})")
                report["meta"]["software"] = "; ".join(
                    ", ".join(f"{k} {v}" for k, v in s.items() if k != "backend") + f" ({b})"
                    for b, s in software.items()
                )
            for r in rows:
                print(
                    "    "
                    + ", ".join(f"{k}={fmt(v, '.4g')}" for k, v in r.items() if k != "per_module"),
                    flush=True,
                )
            report[task["section"]] += rows
            report["meta"]["wall_s"] = time.monotonic() - start
            write_report(report, out)
    print(f"\nwrote {out / 'gpu_check.json'} and {out / 'gpu_check.md'}")
    print((out / "gpu_check.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
