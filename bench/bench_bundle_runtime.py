"""Whole-volume super-resolution from an export bundle, per runtime and precision, next to Keras.

    python bench/bench_bundle_runtime.py --bundle bundle_x2      # a bundle of the x2 weights
    python bench/bench_bundle_runtime.py                         # exports one first (minutes)

Rows, each in a fresh Python process on the bundled real T1 (128x128x62 -> 256x256x62, x2):
    * keras: ``SuperResolver.from_pretrained(2)`` (the bundled x2 weights the bundle holds);
    * one row per (runtime, precision) of the bundle that is installed here:
      ``SuperResolver.from_bundle(bundle, runtime, precision)``;
    * cli: the whole ``keras-seran predict IN OUT --model BUNDLE`` command (default runtime);
    * torch peer: a plain PyTorch script of the same weights (the bundle's float32 ONNX as an
      eager torch module, onnx2torch), the issue's peer, run by ``--torch-python`` (a Python
      with torch, onnx2torch and nibabel; otherwise the row says it is skipped and why).
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


#: The peer: a plain PyTorch script of the same weights (the bundle's float32 ONNX graph as an
#: eager torch module, onnx2torch), doing what predict does for this volume: percentile
#: normalisation, the network on every axial slice in batches of 8, the inverse, the x2 grid.
TORCH_PEER = r"""
import json, sys, time
t0 = float(sys.argv[1])
onnx_file, src, out = sys.argv[2:5]
import nibabel as nib, numpy as np, onnx, onnx2torch, torch
torch.set_grad_enabled(False)
graph = onnx.load(onnx_file)
for node in graph.graph.node:  # onnx2torch lacks auto_pad SAME_UPPER: odd kernels, stride 1
    if node.op_type == "Conv":
        attrs = {a.name: a for a in node.attribute}
        if "auto_pad" in attrs and attrs["auto_pad"].s == b"SAME_UPPER":
            k = list(attrs["kernel_shape"].ints)
            node.attribute.remove(attrs["auto_pad"])
            node.attribute.append(onnx.helper.make_attribute("pads", [x // 2 for x in k] * 2))
from onnx2torch.node_converters.registry import _CONVERTER_REGISTRY, OperationDescription
from onnx2torch.utils.common import OperationConverterResult, onnx_mapping_from_node
class DepthToSpaceDCR(torch.nn.Module):  # onnx2torch has CRD only; tf2onnx writes DCR
    def __init__(self, r):
        super().__init__()
        self.r = r
    def forward(self, x):
        n, c, h, w = x.shape
        r, k = self.r, x.shape[1] // (self.r * self.r)
        x = x.view(n, r, r, k, h, w).permute(0, 3, 4, 1, 5, 2)
        return x.reshape(n, k, h * r, w * r)
def depth_to_space(node, graph):
    assert node.attributes.get("mode", "DCR") == "DCR"
    return OperationConverterResult(torch_module=DepthToSpaceDCR(node.attributes["blocksize"]),
                                    onnx_mapping=onnx_mapping_from_node(node))
for version in (11, 13):
    _CONVERTER_REGISTRY[OperationDescription("", "DepthToSpace", version)] = depth_to_space
net = onnx2torch.convert(graph).eval()
net(torch.zeros(1, 16, 16, 1))
t1 = time.time()
img = nib.load(src)
vol = np.asarray(img.dataobj, np.float32)
lo, hi = np.percentile(vol, (0.5, 99.5))
x = np.clip((vol - lo) / (hi - lo), -0.5, 1.5).astype(np.float32).transpose(2, 0, 1)[..., None]
y = np.concatenate([net(torch.from_numpy(np.ascontiguousarray(x[i:i + 8]))).numpy()
                    for i in range(0, len(x), 8)])
y = np.clip(y[..., 0].transpose(1, 2, 0) * (hi - lo) + lo, vol.min(), vol.max())
aff = img.affine.copy()
aff[:3, :2] /= 2
aff[:3, 3] += img.affine[:3, :2] @ np.array([-0.25, -0.25])
nib.save(nib.Nifti1Image(y.astype(np.float32), aff), out)
t2 = time.time()
print(json.dumps({"startup": t1 - t0, "predict": t2 - t1, "name": "onnx2torch eager",
                  "keras_loaded": False}))
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


def bench(bundle: Path, out_dir: Path, torch_python: str = sys.executable) -> list[dict]:
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
    probe = subprocess.run(
        [torch_python, "-c", "import torch, onnx2torch, nibabel"], capture_output=True, text=True
    )
    onnx_file = artifacts(read_manifest(bundle)).get(("onnxruntime", "float32"))
    if probe.returncode != 0:
        reason = (probe.stderr.strip().splitlines() or ["import failed"])[-1]
        rows.append(
            {
                "row": "torch peer",
                "skipped": f"{torch_python} lacks torch, onnx2torch or nibabel ({reason}); "
                "give one that has them with --torch-python",
            }
        )
    elif onnx_file is None:
        rows.append({"row": "torch peer", "skipped": "the bundle has no float32 ONNX file"})
    else:
        cmd = [
            torch_python,
            "-c",
            TORCH_PEER,
            repr(time.time()),
            str(bundle / onnx_file),
            str(ROOT / "keras_seran" / "sample" / "t1_lowres_2x2x3mm.nii.gz"),
            str(out_dir / "torch.nii.gz"),
        ]
        rows.append(_row("torch peer (same weights, eager PyTorch)", cmd, worker=True))
        print(_fmt(rows[-1]), flush=True)
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
    p.add_argument(
        "--torch-python",
        default=sys.executable,
        help="the Python of the torch peer (needs torch, onnx2torch, nibabel; default: this one)",
    )
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_bundle_") as tmp:
        bundle = args.bundle or _export(Path(tmp))
        print(
            f"CPU cores usable: {len(os.sched_getaffinity(0))}; volume: bundled real T1 "
            "128x128x62 -> 256x256x62 (x2)"
        )
        print(HEADER)
        rows = bench(bundle, Path(tmp), args.torch_python)
        print("\n" + HEADER)
        for r in rows:
            print(_fmt(r))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
