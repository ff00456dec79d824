"""bench/gpu_check.py: its plan, its numerics statistics, and a whole run on the CPU with tiny
sizes under Keras's JAX backend (the backend the GPU machine has), so the script cannot rot."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu_check.py"
HAS_JAX = importlib.util.find_spec("jax") is not None
HAS_TORCH = importlib.util.find_spec("torch") is not None


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_plan_puts_what_matters_first_and_runs_speed_only_on_other_backends(gpu_check):
    args = gpu_check.parse_args(["--backends", "jax", "torch", "--presets", "small", "paper"])
    order = [
        (t["backend"], t["section"], t["preset"], "/".join(t.get("precisions") or [t["precision"]]))
        for t in gpu_check.plan(args)
    ]
    speed = ("train_speed", "infer_speed")
    # one JAX worker per precision (its device-memory peak cannot be reset), torch per preset
    assert order == [
        *[("jax", s, p, "bfloat16") for s in speed for p in ("small", "paper")],
        ("jax", "numerics", "small", "bfloat16/float16"),
        ("jax", "budget_train", "small", "bfloat16"),
        ("jax", "budget_train", "paper", "bfloat16"),
        ("jax", "numerics", "paper", "bfloat16/float16"),
        *[
            ("jax", s, p, q)
            for s in speed
            for p in ("small", "paper")
            for q in ("float32", "float16")
        ],
        *[("torch", s, p, "float32/bfloat16/float16") for s in speed for p in ("small", "paper")],
    ]
    # the GPU defaults: the paper's batch and patch, and the 262,144-position numerics slice
    assert (args.batch, args.patch, args.numerics_size, args.scale) == (16, 48, 512, 2)
    quick = gpu_check.parse_args(["--quick", "--batch", "3"])
    assert quick.batch == 3 and quick.patch == 16 and quick.group_precisions


def test_attention_stats_see_an_overflowed_softmax(gpu_check):
    """A float16 softmax over many positions whose denominator overflows returns all zeros: the
    statistics must report the lost attention (sums 0, every map zero, total variation 1)."""
    rng = np.random.default_rng(0)
    logits = rng.normal(0.0, 0.5, (1, 32, 32, 4))
    e = np.exp(logits - logits.max(axis=(1, 2), keepdims=True))
    ref = e / e.sum(axis=(1, 2), keepdims=True)
    same = gpu_check.attention_stats(ref.astype(np.float16), ref)
    assert same["finite"] and abs(same["sum_min"] - 1) < 1e-3 and abs(same["sum_max"] - 1) < 1e-3
    assert same["zero_maps"] == 0 and same["tv_max"] < 1e-3
    assert 0.5 < same["ref_support"] <= 1.0
    lost = gpu_check.attention_stats(np.zeros_like(ref), ref)
    assert lost["sum_max"] == 0 and lost["zero_maps"] == 4 and math.isclose(lost["tv_max"], 0.5)
    nan = gpu_check.attention_stats(np.full_like(ref, np.nan), ref)
    assert not nan["finite"]


def test_rows_after_the_deadline_are_skipped_and_a_failed_backend_once(gpu_check, tmp_path):
    args = gpu_check.parse_args(["--quick", "--out", str(tmp_path), "--backends", "jax", "torch"])
    task = gpu_check.plan(args)[0]
    health = gpu_check.BackendHealth("jax")
    with open(tmp_path / "gpu_check.log", "a") as log:
        rows, info = gpu_check.run_task(task, args, log, time.monotonic() - 1, health)
        assert info == {} and [r["precision"] for r in rows] == args.precisions
        assert all(r["status"].startswith("skipped: past the --deadline") for r in rows)
        budget = next(t for t in gpu_check.plan(args) if t["section"] == "budget_train")
        rows, _ = gpu_check.run_task(budget, args, log, time.monotonic() + 30, health)
        assert rows[0]["status"] == "skipped: under 80 s left before the --deadline"
        health.record("torch", "ModuleNotFoundError: No module named 'torch'")
        rows, _ = gpu_check.run_task(
            dict(task, backend="torch"), args, log, time.monotonic() + 60, health
        )
        assert (
            rows[0]["status"] == "skipped: torch failed (ModuleNotFoundError: No module "
            "named 'torch')"
        )
        log.write("Traceback (most recent call last):\n  File x\nValueError: bad thing\nexit\n")
        assert gpu_check.last_error(log, 0) == "ValueError: bad thing"
    # the first backend is given up only after two identical failures and before any row
    health.record("jax", "ImportError: a")
    assert health.given_up("jax") is None
    health.record("jax", "ImportError: a")
    assert health.given_up("jax") == "ImportError: a"
    health.record("jax", None)
    assert health.given_up("jax") is None


def test_markdown_shows_failed_rows_and_every_table(gpu_check):
    report = {
        "meta": {
            "started": "now",
            "args": {"data": "d.nii.gz", "axis": 2, "scale": 2, "batch": 16, "patch": 48},
        },
        "train_speed": [
            {
                "backend": "torch",
                "preset": "paper",
                "precision": "float16",
                "status": "failed: RuntimeError: out of memory",
            }
        ],
        "infer_speed": [],
        "numerics": [],
        "budget_train": [],
    }
    text = gpu_check.markdown(report)
    for title in ("Training throughput", "Inference", "SERA numerics", "time budget"):
        assert f"## {title}" in text or title in text
    assert "| torch | paper | float16 | - |" in text
    assert text.rstrip().endswith("Total wall time: 0 s.")
    assert "failed: RuntimeError: out of memory |" in text


@pytest.mark.slow
@pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed (pip install jax)")
def test_quick_run_on_jax_cpu_writes_every_row(tmp_path):
    """The whole script on the CPU (tiny preset, tiny sizes, bundled T1 slab): every section's
    rows with positive speeds, the numerics fields, a trained held-out PSNR, and torch either
    measured or reported as failed, not a crash."""
    env = dict(
        os.environ,
        KERAS_BACKEND="jax",
        JAX_PLATFORMS="cpu",
        CUDA_VISIBLE_DEVICES="",
        PYTHONPATH=str(ROOT),
        KERAS_SERAN_SHARED_DATA=str(tmp_path / "none"),
    )
    out = tmp_path / "out"
    t0 = time.perf_counter()
    r = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--quick",
            "--out",
            str(out),
            "--precisions",
            "float32",
            "float16",
            "--backends",
            "jax",
            "torch",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = json.loads((out / "gpu_check.json").read_text())
    print(f"quick run: {time.perf_counter() - t0:.0f} s")
    assert report["meta"]["args"]["data"].endswith("t1_head_axial_slab.nii.gz")
    assert "cpu" in report["meta"]["device"]

    jax_rows = {
        s: [r for r in report[s] if r["backend"] == "jax"]
        for s in ("train_speed", "infer_speed", "numerics", "budget_train")
    }
    assert [(r["preset"], r["precision"]) for r in jax_rows["train_speed"]] == [
        ("tiny", "float32"),
        ("tiny", "float16"),
    ]
    for row in jax_rows["train_speed"]:
        assert row["status"] == "ok" and row["step_s"] > 0 and row["patches_per_s"] > 0
        assert row["params"] > 0 and row["loss_finite"] and row["host_rss_mib"] > 0
        assert row["device_peak_mib"] is None  # no GPU here
    assert [(r["precision"], r["lr_size"]) for r in jax_rows["infer_speed"]] == [
        (p, s) for p in ("float32", "float16") for s in (32, 48)
    ]
    assert all(r["slices_per_s"] > 0 and r["output_finite"] for r in jax_rows["infer_speed"])
    assert [r["precision"] for r in jax_rows["numerics"]] == ["bfloat16", "float16"]
    for row in jax_rows["numerics"]:
        assert row["positions"] == 64 * 64 and row["modules"] == 1
        assert row["m_finite"] and row["ok"] and row["m_zero_maps"] == 0
        assert abs(row["m_sum_min"] - 1) < 0.01 and abs(row["d_sum_max"] - 1) < 0.01
        assert 0 <= row["m_tv_max"] < 0.05 and row["sr_psnr_vs_float32"] > 30
        assert set(row["per_module"]) == {"group0_sera"}
    (budget,) = jax_rows["budget_train"]
    assert budget["status"] == "ok" and budget["steps"] > 0 and budget["eval_slices"] > 0
    assert 5 < budget["psnr"] < 60 and 20 < budget["psnr_bicubic"] < 60

    torch_rows = [
        r for s in ("train_speed", "infer_speed") for r in report[s] if r["backend"] == "torch"
    ]
    assert len(torch_rows) == 4
    if not HAS_TORCH:
        assert all(
            "torch" in r["status"] and r["status"].startswith(("failed", "skipped"))
            for r in torch_rows
        )
    text = (out / "gpu_check.md").read_text()
    assert (
        "| jax | tiny | float16 | 24,650 |" in text and "| jax | tiny | float16 | 48x48 |" in text
    )
    assert text.count("| tiny | initial (untrained) |") == 2
