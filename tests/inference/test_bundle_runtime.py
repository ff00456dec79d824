"""An export bundle run in its own runtime (keras_seran.runtime, SuperResolver.from_bundle,
``keras-seran predict --model BUNDLE_DIR``): the same volumes as the Keras path within the
bundle's parity tolerances, no TensorFlow/Keras/JAX import, and bad bundles refused in one line
with nothing written.

One bundle is exported per module (the tiny SERAN with its attention on, ``conftest``):
LiteRT float32 and dynamic_int8 at a fixed LR size of 64x64 (so the resolver must tile to it)
and ONNX float32 (any size).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from keras_seran import samples
from keras_seran.cli import main
from keras_seran.config import InferenceConfig
from keras_seran.errors import InputDataError, RuntimeUnavailable, UsageError
from keras_seran.inference import SuperResolver
from keras_seran.inference.bundle import load_bundle
from keras_seran.runtime import open_artifact, runners
from tests.inference.conftest import assert_no_output, blocking_preamble

FIXED = (64, 64)
OVERLAP = 16
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bundle(tiny_seran, tmp_path_factory) -> Path:
    from keras_seran.export import export_bundle

    out = tmp_path_factory.mktemp("bundles") / "tiny_x2"
    export_bundle(
        tiny_seran,
        out,
        "litert,onnx,tensorrt",  # tensorrt: build_engines.sh and the engines it will write
        input_size=FIXED,
        tflite_variants=("float32", "dynamic_int8"),
        onnx_variants=("float32",),
        model_source="tiny_seran",
    )
    return out


@pytest.fixture(scope="module")
def keras_volumes(tiny_seran):
    """The Keras path on the bundled real T1 (128x128x62): whole slices, and tiled as a 64x64
    fixed-size file must be."""
    r = SuperResolver(tiny_seran)
    whole = np.asarray(r.predict_volume(samples.T1_LOWRES).dataobj)
    tiled = np.asarray(
        r.predict_volume(samples.T1_LOWRES, tile_size=FIXED[0], overlap=OVERLAP).dataobj
    )
    return {"whole": whole, "tiled": tiled}


def _normalised_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| in the network's normalised units (the parity tolerances' units)."""
    lo, hi = np.percentile(
        np.asarray(nib.load(samples.T1_LOWRES).dataobj, np.float32), InferenceConfig.percentiles
    )
    return np.abs(a.astype(np.float64) - b) / (hi - lo)


@pytest.mark.parametrize(
    "runtime, precision",
    [("onnxruntime", "float32"), ("litert", "float32"), ("litert", "dynamic_int8")],
)
def test_each_runtime_matches_keras_within_the_bundles_tolerance(
    bundle, keras_volumes, runtime, precision
):
    art = open_artifact(bundle, runtime, precision)
    assert (art.runtime, art.precision) == (runtime, precision)
    assert art.input_size == (None if runtime == "onnxruntime" else FIXED)
    tol = {k: v for k, v in art.tolerance.items() if k != "psnr_drop"}
    assert tol, f"no parity tolerance recorded for {runtime}/{precision}"
    r = SuperResolver.from_bundle(bundle, runtime, precision)
    img = r.predict_volume(samples.T1_LOWRES, overlap=OVERLAP)
    assert img.shape == (256, 256, 62)
    np.testing.assert_allclose(img.header.get_zooms(), (1.0, 1.0, 3.0))
    ref = keras_volumes["tiled" if art.input_size else "whole"]
    diff = _normalised_diff(np.asarray(img.dataobj), ref)
    measured = {"max_abs_diff": diff.max(), "mean_abs_diff": diff.mean()}
    assert all(measured[k] <= v for k, v in tol.items()), (measured, tol)
    assert diff.max() > 0 or precision == "float32"  # the int8 file really is another one


def test_fixed_size_files_take_smaller_slices_padded(bundle, tiny_seran):
    net = load_bundle(bundle, "litert", "float32")
    assert net.input_size == FIXED and net.scale == 2
    sl = np.asarray(nib.load(samples.T1_LOWRES).dataobj, np.float32)[20:60, 30:80, 31]  # 40x50
    with pytest.warns(UserWarning, match="padded to the file's fixed size 64x64"):
        out = SuperResolver(net).predict_slice(sl)
    assert out.shape == (80, 100) and np.isfinite(out).all()
    with pytest.raises(ValueError, match="fixed size 64x64"):
        net.run(np.zeros((1, 65, 64, 1), np.float32))


def test_default_runtime_takes_any_size_first_then_litert_float32(bundle, monkeypatch):
    """LiteRT comes first (docs/benchmarks.md), but here its files are fixed-size: the dynamic
    ONNX file is the default; without onnxruntime, LiteRT float32."""
    assert open_artifact(bundle).description.startswith("onnxruntime float32 (onnx/")
    monkeypatch.setitem(runners.RUNTIME_MODULES, "onnxruntime", ("no_such_runtime_xyz", "x"))
    assert open_artifact(bundle).description.startswith("litert float32 (tflite/")


# --------------------------------------------------------------------------------------------
# the command line, without TensorFlow

SCRIPT = blocking_preamble("predict --model BUNDLE") + textwrap.dedent("""
    import json
    from keras_seran.cli import main

    rcs = [main(["predict", sys.argv[1], sys.argv[2] + "/default.nii.gz", "--model",
                 sys.argv[3], "--no-progress"]),
           main(["predict", sys.argv[1], sys.argv[2] + "/litert.nii.gz", "--model", sys.argv[3],
                 "--runtime", "litert", "--no-progress"])]
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in FORBIDDEN)
    print(json.dumps({"rcs": rcs, "loaded": loaded}))
""")


def test_predict_from_a_bundle_never_imports_keras_tensorflow_or_jax(
    bundle, small_lowres_file, tmp_path
):
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(small_lowres_file), str(tmp_path), str(bundle)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report == {"rcs": [0, 0], "loaded": []}
    assert (
        "running tiny_x2: litert float32 (tflite/" in proc.stdout
        and "fixed LR size 64x64" in proc.stdout
    )
    assert "running tiny_x2: onnxruntime float32 (onnx/" in proc.stdout
    for name in ("default", "litert"):
        img = nib.load(tmp_path / f"{name}.nii.gz")
        assert img.shape == (256, 256, 10) and np.asarray(img.dataobj).std() > 0


# --------------------------------------------------------------------------------------------
# bad bundles: one line, nothing written


def _damaged(bundle: Path, tmp_path: Path, how: str) -> Path:
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    default = next((copy / "onnx").glob("*_float32.onnx"))  # the default choice
    if how == "no manifest":
        (copy / "manifest.json").unlink()
    elif how == "missing file":
        default.unlink()
    elif how == "hash mismatch":
        with open(default, "ab") as f:
            f.write(b"\0")
    return copy


@pytest.mark.parametrize(
    "how, args, message",
    [
        ("no manifest", [], r"bundle/manifest\.json: missing: not an export bundle"),
        ("missing file", [], r"onnx/\S+_float32\.onnx: missing from the bundle"),
        ("hash mismatch", [], r"onnx/\S+_float32\.onnx: sha256 differs from the bundle's manifest"),
        ("", ["--scale", "3"], r"the bundle upscales by 2, not by the requested --scale 3"),
        pytest.param(
            "",
            ["--runtime", "tensorrt"],
            r"runtime tensorrt is not installed \(no module tensorrt\): install it "
            r"with JetPack",
            marks=pytest.mark.skipif(
                runners.is_installed("tensorrt"), reason="tensorrt is installed here"
            ),
        ),
        (
            "",
            ["--runtime", "onnxruntime", "--precision", "int8"],
            r"no onnxruntime artifact at precision int8 \(it has: float32, float16\)",
        ),
    ],
)
def test_a_bad_bundle_is_one_line_and_nothing_is_written(
    bundle, small_lowres_file, tmp_path, capsys, how, args, message
):
    import re

    model = _damaged(bundle, tmp_path, how)
    out = tmp_path / "out"
    out.mkdir()
    rc = main(
        [
            "predict",
            str(small_lowres_file),
            str(out / "sr.nii.gz"),
            "--model",
            str(model),
            "--no-progress",
            *args,
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and re.search(message, err[0]), err
    assert "Traceback" not in "\n".join(err)
    assert_no_output(out)


def test_a_runtime_that_is_not_installed_is_named(
    bundle, small_lowres_file, tmp_path, capsys, monkeypatch
):
    """Simulated: onnxruntime's module is another, absent one."""
    monkeypatch.setitem(
        runners.RUNTIME_MODULES, "onnxruntime", ("no_such_runtime_xyz", "onnxruntime")
    )
    with pytest.raises(RuntimeUnavailable, match="runtime onnxruntime is not installed"):
        SuperResolver.from_bundle(bundle, "onnxruntime")
    out = tmp_path / "sr.nii.gz"
    rc = main(
        [
            "predict",
            str(small_lowres_file),
            str(out),
            "--model",
            str(bundle),
            "--runtime",
            "onnxruntime",
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "pip install onnxruntime" in err[0], err
    assert not out.exists()


def test_runtime_without_a_bundle_is_a_usage_error(
    tiny_keras_file, small_lowres_file, tmp_path, capsys
):
    rc = main(
        [
            "predict",
            str(small_lowres_file),
            str(tmp_path / "sr.nii.gz"),
            "--model",
            str(tiny_keras_file),
            "--runtime",
            "litert",
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and "give its folder as --model BUNDLE_DIR" in err[-1], err
    assert not (tmp_path / "sr.nii.gz").exists()


def test_bundle_errors_in_python(bundle, tmp_path):
    with pytest.raises(UsageError, match="upscales by 2, not by the requested --scale 4"):
        SuperResolver.from_bundle(bundle, scale=4)
    with pytest.raises(InputDataError, match="no litert artifact at precision int8"):
        load_bundle(bundle, "litert", "int8")
    with pytest.raises(InputDataError, match="manifest.json: missing"):
        load_bundle(tmp_path)


# --------------------------------------------------------------------------------------------
# TensorRT: engines built on the target by build_engines.sh


def test_engines_built_on_the_target_are_found_and_run(
    bundle, keras_volumes, tmp_path, monkeypatch
):
    """The manifest names the engines build_engines.sh writes; once one is there, the bundle
    path picks it (no hash: it was built after the export) and runs it; before, it says how to
    build it. The engine is stood in for by the bundle's ONNX run by onnxruntime (no GPU here),
    one slice at a time as the bundle's batch-1 profiles take them."""
    from keras_seran.runtime import bundle as runtime_bundle

    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    targets = manifest["formats"]["tensorrt"]["target_engines"]
    assert {i["precision"] for i in targets.values()} == {"fp16", "int8"}
    script = (copy / "build_engines.sh").read_text()
    assert all(f'"building {file}"' in script for file in targets)
    # as shipped to a device: no engine built at export time (whatever this machine could do)
    manifest["formats"]["tensorrt"]["engines"] = {}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    shutil.rmtree(copy / "engines", ignore_errors=True)

    class StandInEngine:
        def __init__(self, path):
            self.onnx = runners.OnnxRunner(next((copy / "onnx").glob("*_float32.onnx")))
            self.path = Path(path)

        def __call__(self, x):
            return np.concatenate([self.onnx(x[i : i + 1]) for i in range(len(x))])

    monkeypatch.setattr(runners, "require", lambda runtime: None)
    monkeypatch.setattr(runners, "TensorRTRunner", StandInEngine)
    with pytest.raises(InputDataError, match="no tensorrt artifact.*build_engines.sh"):
        open_artifact(copy, "tensorrt")
    file = next(f for f, i in targets.items() if i["precision"] == "fp16")
    (copy / file).parent.mkdir(exist_ok=True)
    shutil.copy(next((copy / "onnx").glob("*_float32.onnx")), copy / file)
    art = open_artifact(copy, "tensorrt")
    # the bundle's profile is its fixed export size: the resolver tiles to it
    assert (art.runtime, art.precision, art.file, art.input_size) == (
        "tensorrt",
        "fp16",
        file,
        FIXED,
    )
    out = SuperResolver.from_bundle(copy, "tensorrt").predict_volume(
        samples.T1_LOWRES, overlap=OVERLAP
    )
    diff = _normalised_diff(np.asarray(out.dataobj), keras_volumes["tiled"])
    assert diff.max() <= 1e-4  # the stand-in is the float32 ONNX
    (copy / file).write_bytes(b"")
    with pytest.raises(InputDataError, match="empty engine file"):
        open_artifact(copy, "tensorrt")
    assert runtime_bundle.target_engine(manifest, "onnx/nope.onnx") is None


def test_tensorrt_runner_takes_a_batch_one_slice_at_a_time(mr_slice):
    """The bundle's engines have batch-1 profiles (build_engines.sh); the resolver sends
    batches: the runner runs them slice by slice, and names the engine when a slice fits no
    profile."""
    from keras_seran.runtime.runners import TensorRTRunner

    class Engine:
        num_optimization_profiles = 1

        def get_tensor_profile_shape(self, name, i):
            return (1, 16, 16, 1), (1, 64, 64, 1), (1, 256, 256, 1)

    runner = object.__new__(TensorRTRunner)
    runner.engine, runner.input_name, runner.path = Engine(), "lr", Path("m_fp16.engine")
    seen = []
    runner._run = lambda x, idx: seen.append(x.shape) or np.repeat(np.repeat(x, 2, 1), 2, 2)
    x = np.stack([mr_slice[100 + 20 * k : 120 + 20 * k, 100:130, None] for k in range(3)])
    out = runner(x)
    assert seen == [(1, 20, 30, 1)] * 3 and out.shape == (3, 40, 60, 1)
    np.testing.assert_array_equal(out[2, ::2, ::2], x[2])
    with pytest.raises(ValueError, match=r"m_fp16.engine: input shape \(1, 300, 30, 1\) fits none"):
        runner(np.zeros((1, 300, 30, 1), np.float32))


# TensorRT itself: an engine built from the bundle's ONNX (needs TensorRT, torch and a CUDA GPU)


def test_tensorrt_engine_matches_keras(bundle, keras_volumes, tmp_path):
    from keras_seran.export import tensorrt_engine

    ok, reason = tensorrt_engine.tensorrt_status()
    if not ok:
        pytest.skip(f"TensorRT runtime not testable here: {reason}")
    pytest.importorskip("torch", reason="TensorRTRunner needs torch for CUDA buffers")
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    targets = manifest["formats"]["tensorrt"]["target_engines"]
    file, info = next((f, i) for f, i in targets.items() if i["precision"] == "fp16")
    engine = copy / file  # where build_engines.sh puts it: found without a manifest edit
    engine.parent.mkdir(exist_ok=True)
    tensorrt_engine.build_engine(
        next((copy / "onnx").glob("*_float32.onnx")),
        engine,
        fp16=True,
        profiles=[tuple(tuple(hw) for hw in info["profile_lr_hw"])],
    )
    r = SuperResolver.from_bundle(copy, "tensorrt")
    diff = _normalised_diff(
        np.asarray(r.predict_volume(samples.T1_LOWRES).dataobj), keras_volumes["whole"]
    )
    assert diff.mean() <= 2e-3  # parity.TOLERANCES["float16_compute"]
