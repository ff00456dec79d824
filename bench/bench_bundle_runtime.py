"""Whole-volume super-resolution from an export bundle, per runtime and precision, next to Keras.

    python bench/bench_bundle_runtime.py --bundle bundle_x2      # a bundle of the x2 weights
    python bench/bench_bundle_runtime.py                         # exports one first (minutes)

Rows, each in a fresh Python process on the bundled real T1 (128x128x62 -> 256x256x62, x2):
    * keras: ``SuperResolver.from_pretrained(2)`` (the bundled x2 weights the bundle holds);
    * one row per (runtime, precision) of the bundle that is installed here:
      ``SuperResolver.from_bundle(bundle, runtime, precision)``;
    * cli: the whole ``keras-seran predict IN OUT --model BUNDLE`` command (default runtime);
    * torch: a plain PyTorch script of the same weights, the issue's peer, only where torch is
      installed (otherwise the row says it is skipped and why).
Columns: start-up (interpreter start, imports and model/bundle load until the network is ready,
measured from the parent's clock), predict (the volume, read and write included), wall (the
whole process, as the parent sees it), CPU (user + system seconds of the process: less
sensitive than wall to other jobs on a shared machine) and peak resident memory of that process
(``os.wait4``'s ``ru_maxrss``). Wall times depend on the machine's load: compare rows of one
call. Records: docs/benchmarks.md (bundle runtimes).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WORKER = r"""
import json, sys, time
t0 = float(sys.argv[1])
mode, bundle, runtime, precision, out = sys.argv[2:7]
sys.path.insert(0, sys.argv[7])
from keras_seran import samples
from keras_seran.inference.resolver import SuperResolver
if mode == "keras":
    r = SuperResolver.from_pretrained(2)
    r.predict_normalized(__import__("numpy").zeros((1, 16, 16), "float32"))   # trace once
else:
    r = SuperResolver.from_bundle(bundle, runtime, precision)
t1 = time.time()
r.predict_file(samples.T1_LOWRES, out, overwrite=True)
t2 = time.time()
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("keras", "tensorflow", "jax"))
print(json.dumps({"startup": t1 - t0, "predict": t2 - t1, "name": r.network.name,
                  "keras_loaded": bool(loaded)}))
"""


def _measured(cmd: list[str]) -> tuple[str, float, float, float, int]:
    """(output, wall seconds, CPU seconds, peak RSS MB, return code) of one child process; CPU
    time (user + system) and the peak are the child's own (``os.wait4``)."""
    t0 = time.perf_counter()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        log.seek(0)
        text = log.read()
    return text, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0, proc.returncode


def _row(label: str, cmd: list[str], worker: bool) -> dict:
    text, wall, cpu, rss, rc = _measured(cmd)
    row = {"row": label, "wall_s": wall, "cpu_s": cpu, "peak_mb": rss, "rc": rc}
    if rc != 0:
        row["error"] = text.strip().splitlines()[-1] if text.strip() else f"exit {rc}"
        return row
    if worker:
        row.update(json.loads(text.strip().splitlines()[-1]))
    return row


def bench(bundle: Path, out_dir: Path) -> list[dict]:
    from keras_seran.runtime.bundle import artifacts, read_manifest
    from keras_seran.runtime.runners import is_installed

    rows = []

    def worker(label, mode, runtime="-", precision="-"):
        cmd = [
            sys.executable,
            "-c",
            WORKER,
            repr(time.time()),
            mode,
            str(bundle),
            runtime,
            precision,
            str(out_dir / f"{label.replace('/', '_')}.nii.gz"),
            str(ROOT),
        ]
        # (start-up is counted from here: the child starts right after)
        rows.append(_row(label, cmd, worker=True))
        print(_fmt(rows[-1]), flush=True)

    worker("keras", "keras")
    for runtime, precision in artifacts(read_manifest(bundle)):
        if is_installed(runtime):
            worker(f"{runtime}/{precision}", "bundle", runtime, precision)
        else:
            rows.append({"row": f"{runtime}/{precision}", "skipped": f"{runtime} not installed"})
    cli = [
        sys.executable,
        "-m",
        "keras_seran.cli",
        "predict",
        str(ROOT / "keras_seran" / "sample" / "t1_lowres_2x2x3mm.nii.gz"),
        str(out_dir / "cli.nii.gz"),
        "--model",
        str(bundle),
        "--overwrite",
        "--no-progress",
    ]
    rows.append(_row("cli (default runtime)", cli, worker=False))
    print(_fmt(rows[-1]), flush=True)
    torch = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True, text=True)
    if torch.returncode != 0:
        reason = (torch.stderr.strip().splitlines() or ["import torch failed"])[-1]
        rows.append({"row": "torch peer", "skipped": f"torch is not installed here ({reason})"})
    else:
        rows.append(
            {
                "row": "torch peer",
                "skipped": "torch is installed, but no PyTorch port "
                "of SERAN ships with this bench yet",
            }
        )
    return rows


def _fmt(r: dict) -> str:
    if "skipped" in r:
        return f"| {r['row']} | skipped: {r['skipped']} | | | | | |"
    if "error" in r:
        return f"| {r['row']} | error: {r['error']} | | | | | |"
    start = f"{r['startup']:.2f}" if "startup" in r else "-"
    pred = f"{r['predict']:.2f}" if "predict" in r else "-"
    keras = {True: "yes", False: "no"}.get(r.get("keras_loaded"), "-")
    return (
        f"| {r['row']} | {start} | {pred} | {r['wall_s']:.2f} | {r['cpu_s']:.1f} | "
        f"{r['peak_mb']:.0f} | {keras} |"
    )


HEADER = (
    "| row | start-up s | predict s | wall s | CPU s | peak MB | Keras/TF loaded |\n"
    "|---|---:|---:|---:|---:|---:|---|"
)


def _export(tmp: Path) -> Path:
    out = tmp / "bundle_x2"
    print(
        f"exporting the bundled x2 weights to {out} (LiteRT float32, dynamic_int8; ONNX "
        "float32, int8): a few minutes",
        flush=True,
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "keras_seran.cli",
            "export",
            "x2",
            "--out",
            str(out),
            "--formats",
            "litert,onnx",
            "--tflite-variants",
            "float32,dynamic_int8",
            "--onnx-variants",
            "float32,int8",
            "--quiet",
        ],
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--bundle",
        type=Path,
        help="an export bundle of the bundled x2 weights "
        "(default: export one to a temporary folder)",
    )
    p.add_argument("--json", type=Path, help="also write the rows here")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_bundle_") as tmp:
        bundle = args.bundle or _export(Path(tmp))
        print(
            f"CPU cores usable: {len(os.sched_getaffinity(0))}; volume: bundled real T1 "
            "128x128x62 -> 256x256x62 (x2)"
        )
        print(HEADER)
        rows = bench(bundle, Path(tmp))
        print("\n" + HEADER)
        for r in rows:
            print(_fmt(r))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
