"""Through-plane super-resolution of a 256 x 256 x 62 volume on this CPU: time and peak memory.

    python bench/bench_throughplane.py                     # bundled through-plane weights
    python bench/bench_throughplane.py --adapt-steps 0 100 300

The volume: the bundled real T1 (2x2x3 mm, 128x128x62) resampled in-plane to 256x256 (1x1x3 mm,
cubic), written once to a temporary file. Each row is ``keras-seran predict IN OUT --isotropic``
in a fresh process (3 mm -> 1 mm: 256 x 256 x 186 out, 2 x 256 reformats of 256 x 186 through
the network), with ``--adapt-steps`` as given. Columns: wall seconds of the whole command,
CPU seconds (user + system) and the peak resident memory of the process (``os.wait4``). Wall
times depend on the machine's load: compare rows of one call. Records: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _volume(path: Path) -> None:
    import nibabel as nib
    import numpy as np

    from keras_seran import samples
    from keras_seran.inference.throughplane import interpolate_axis

    img = nib.load(samples.T1_LOWRES)
    vol = np.asarray(img.dataobj, np.float32)
    fine = interpolate_axis(interpolate_axis(vol, 0, 256, "cubic"), 1, 256, "cubic")
    aff = img.affine.copy()
    aff[:3, :2] /= 2
    aff[:3, 3] += img.affine[:3, :2] @ np.array([-0.25, -0.25])
    nib.save(nib.Nifti1Image(np.clip(fine, 0, None).astype(np.int16), aff), path)


def _measured(cmd: list[str]) -> tuple[float, float, float, int, str]:
    t0 = time.perf_counter()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        log.seek(0)
        text = log.read()
    rc = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0, rc, text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--adapt-steps", type=int, nargs="+", default=[0, 100])
    args = p.parse_args(argv)
    print(f"CPU cores usable: {len(os.sched_getaffinity(0))}")
    print("| volume | adapt steps | wall s | CPU s | peak MB |\n|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="bench_tp_") as tmp:
        src = Path(tmp) / "t1_1x1x3mm.nii.gz"
        _volume(src)
        for steps in args.adapt_steps:
            cmd = [
                sys.executable,
                "-m",
                "keras_seran.cli",
                "predict",
                str(src),
                str(Path(tmp) / f"iso_{steps}.nii.gz"),
                "--isotropic",
                "--adapt-steps",
                str(steps),
                "--no-progress",
                "--overwrite",
            ]
            wall, cpu, rss, rc, text = _measured(cmd)
            if rc:
                print(f"| 256x256x62, 1x1x3 mm | {steps} | error: {text.strip()[-200:]} | | |")
                continue
            print(f"| 256x256x62, 1x1x3 mm | {steps} | {wall:.1f} | {cpu:.1f} | {rss:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
