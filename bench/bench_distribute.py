"""Distributed training throughput: steps/s of ``model.fit`` on 1 vs 2 logical CPU devices.

    python bench/bench_distribute.py                     # small x2, batch 8 of 32x32, 1 and 2
    python bench/bench_distribute.py --devices 1 2 4 --steps 10 --preset tiny

Each device count runs in a fresh process (logical devices are set before TensorFlow starts):
``--distribute none`` on one device, ``mirrored`` (``tf.distribute.MirroredStrategy``) over N
logical CPU devices otherwise, the package's placement and tf.data pipeline on the bundled real
T1 slab, the global batch kept fixed. Logical CPU devices share the machine's cores, so no
speed-up is expected from them: the table shows what the strategy's replication and gradient
all-reduce cost, and that the path runs. On a multi-GPU machine the same script over GPUs
(``--gpus``) measures the real scaling.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import textwrap

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

WORKER = """
import json, sys, time
devices, use_gpus, preset, scale, batch, patch, steps, warmup = json.loads(sys.argv[1])
import tensorflow as tf
if devices > 1 and not use_gpus:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
from keras_seran import samples
from keras_seran.config import DataConfig, TrainConfig
from keras_seran.data import make_datasets
from keras_seran.training import build_model, compile_model
from keras_seran.training.distribute import place

placement = place("none" if devices == 1 else "mirrored", batch)
data = DataConfig(patch_size=patch, batch_size=batch, slice_axis=1, val_fraction=0.0)
train_ds, _ = make_datasets(str(samples.T1_AXIAL_SLAB), scale, data)
with placement.scope():
    model = compile_model(build_model("seran", scale, preset), TrainConfig(), scale)
    model.fit(train_ds, steps_per_epoch=warmup, epochs=1, verbose=0)   # tracing
    start = time.perf_counter()
    model.fit(train_ds, steps_per_epoch=steps, epochs=1, verbose=0)
    seconds = time.perf_counter() - start
print("RESULT", json.dumps({"replicas": placement.replicas, "seconds": seconds}))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--devices", type=int, nargs="+", default=[1, 2])
    p.add_argument(
        "--gpus",
        action="store_true",
        help="mirror over the machine's GPUs (all of them) instead of logical CPUs",
    )
    p.add_argument("--preset", default="small")
    p.add_argument("--scale", type=int, default=2)
    p.add_argument("--batch", type=int, default=8, help="the global batch")
    p.add_argument("--patch", type=int, default=32, help="LR patch side")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2)
    args = p.parse_args()

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {
        **os.environ,
        "KERAS_BACKEND": "tensorflow",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
    }
    if not args.gpus:
        env["CUDA_VISIBLE_DEVICES"] = ""
    print(
        f"{platform.machine()}, {os.cpu_count()} CPU cores; SERAN {args.preset} "
        f"x{args.scale}, global batch {args.batch} of {args.patch}x{args.patch} LR patches; "
        f"{args.steps} steps after {args.warmup} warm-up\n"
    )
    print("| devices | strategy | replicas | per-replica batch | steps/s | patches/s |")
    print("|---|---|---|---|---|---|")
    for n in args.devices:
        setting = [
            n,
            args.gpus,
            args.preset,
            args.scale,
            args.batch,
            args.patch,
            args.steps,
            args.warmup,
        ]
        r = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(WORKER), json.dumps(setting)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        line = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
        if r.returncode or not line:
            print(f"| {n} | failed: {(r.stderr.strip().splitlines() or ['?'])[-1]} |||||")
            continue
        result = json.loads(line[-1].split(" ", 1)[1])
        rate = args.steps / result["seconds"]
        kind = "none" if n == 1 else "mirrored"
        print(
            f"| {n} {'GPU' if args.gpus else 'logical CPU'} | {kind} | {result['replicas']} | "
            f"{args.batch // result['replicas']} | {rate:.2f} | {rate * args.batch:.1f} |"
        )


if __name__ == "__main__":
    main()
