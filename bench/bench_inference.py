"""Inference speed and memory of SERAN: slices/s, seconds per 256^3 volume, peak memory.

    python bench/bench_inference.py                      # tiny, small, paper x scales 2, 3, 4
    python bench/bench_inference.py --presets small --scales 2 --size 128

What is measured, per (preset, scale), each in a fresh subprocess:
    * the model is built (random weights: speed does not depend on them) and warmed up on two
      small inputs, so TensorFlow has traced a shape-generic graph before timing;
    * then ``n`` LR slices of ``size x size`` go through ``SuperResolver.predict_normalized``
      in batches. The target is a 256x256x256 volume super-resolved in-plane: 256 LR slices of
      256x256, each to (256 s)^2. slices/s is for 256x256 slices: n / seconds, times
      (size / 256)^2 when a smaller size was measured (the paper preset: 128x128, because one
      256x256 slice takes about a minute here; every layer, SERA included, is linear in H*W);
    * seconds per volume = 256 / (slices/s): extrapolated from the n measured slices (inference
      time is linear in the number of slices; reading/writing the NIfTI is not counted);
    * peak memory = ``ru_maxrss`` of the subprocess after inference minus ``ru_maxrss`` after
      building the model (the extra resident memory inference needed: activations, TF workspace),
      and the absolute peak of the whole process.
The paper preset (RCAN-sized, ~400 conv layers) is measured on 1 slice only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SLICES = {"tiny": 4, "small": 2, "paper": 1}
# The paper preset takes about a minute per 256x256 slice on a 2-core CPU: measure a 128x128
# slice and extrapolate by the pixel count (every layer, SERA included, is linear in H*W).
DEFAULT_MEASURE_SIZE = {"paper": 128}
VOLUME = 256


def _maxrss_mb() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024.0 if sys.platform != "darwin" else r / 2**20  # Linux: KiB, macOS: bytes


def worker(preset: str, scale: int, size: int, n: int, batch: int) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, str(ROOT))
    import numpy as np

    from keras_seran.inference.resolver import SuperResolver
    from keras_seran.models import seran

    model = seran(scale, preset)
    r = SuperResolver(model, scale=scale)
    r.predict_normalized(np.zeros((1, 16, 16), np.float32))
    r.predict_normalized(np.zeros((1, 20, 24), np.float32))  # shape-generic trace
    rss_model = _maxrss_mb()
    rng = np.random.default_rng(0)
    x = rng.random((n, size, size), dtype=np.float32)
    t0 = time.perf_counter()
    y = r.predict_normalized(x, batch_size=batch)
    dt = time.perf_counter() - t0
    assert y.shape == (n, size * scale, size * scale)
    return {
        "preset": preset,
        "scale": scale,
        "size": size,
        "slices": n,
        "batch": min(batch, n),
        "params": int(model.count_params()),
        "seconds": dt,
        "slices_per_s": n / dt * (size / VOLUME) ** 2,
        "s_per_volume": VOLUME * dt / n * (VOLUME / size) ** 2,
        "rss_model_mb": rss_model,
        "rss_peak_mb": _maxrss_mb(),
        "rss_infer_mb": _maxrss_mb() - rss_model,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["tiny", "small", "paper"])
    p.add_argument("--scales", nargs="+", type=int, default=[2, 3, 4])
    p.add_argument(
        "--size",
        type=int,
        default=None,
        help="LR slice side measured (default 256; paper preset 128, extrapolated)",
    )
    p.add_argument(
        "--slices",
        type=int,
        default=None,
        help="slices measured per config (default: tiny 4, small 2, paper 1)",
    )
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--device", choices=("cpu", "auto"), default="cpu")
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    p.add_argument(
        "--worker",
        nargs=5,
        metavar=("PRESET", "SCALE", "SIZE", "N", "BATCH"),
        help=argparse.SUPPRESS,
    )
    args = p.parse_args(argv)
    if args.worker:
        preset, scale, size, n, batch = args.worker
        print("RESULT " + json.dumps(worker(preset, int(scale), int(size), int(n), int(batch))))
        return 0

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    if args.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    print(
        f"# keras_seran inference bench: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f}, device {args.device}"
    )
    print(
        f"# volume {VOLUME}^3, in-plane x s: {VOLUME} LR slices of {VOLUME}x{VOLUME}; "
        "slices/s and s/volume extrapolated from the measured slices (size shown)"
    )
    header = (
        f"{'preset':<7}{'scale':>6}{'params':>10}{'measured':>10}{'batch':>6}{'slices/s':>10}"
        f"{'s/volume':>10}{'infer MB':>10}{'peak MB':>9}"
    )
    print(header)
    rows = []
    t_all = time.perf_counter()
    for preset in args.presets:
        for scale in args.scales:
            n = args.slices or DEFAULT_SLICES.get(preset, 2)
            size = args.size or DEFAULT_MEASURE_SIZE.get(preset, VOLUME)
            cmd = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--worker",
                preset,
                str(scale),
                str(size),
                str(n),
                str(args.batch_size),
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if proc.returncode != 0 or line is None:
                print(f"{preset:<7}{scale:>6}  FAILED: {proc.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(line[len("RESULT ") :])
            rows.append(r)
            measured = f"{r['slices']}@{r['size']}"
            print(
                f"{preset:<7}{scale:>6}{r['params']:>10}{measured:>10}{r['batch']:>6}"
                f"{r['slices_per_s']:>10.2f}{r['s_per_volume']:>10.1f}{r['rss_infer_mb']:>10.0f}"
                f"{r['rss_peak_mb']:>9.0f}",
                flush=True,
            )
    print(
        f"# total {time.perf_counter() - t_all:.0f} s; infer MB = ru_maxrss after inference - "
        "after model build (per subprocess, at the measured size and batch); peak MB = "
        "ru_maxrss of the subprocess"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
