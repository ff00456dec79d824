"""TensorRT: status, profiles and trtexec lines everywhere; each release's builder calls and
trtexec options against recording stand-ins (fake_tensorrt.py); the real builder where a GPU is."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from keras_seran.errors import RuntimeUnavailable
from keras_seran.export import tensorrt_engine as trt_engine
from tests.export.fake_tensorrt import RELEASES, make_tensorrt, read_log, write_trtexec


def test_parse_profiles():
    assert trt_engine.parse_hw("256x192") == (256, 192)
    assert trt_engine.parse_hw("64") == (64, 64)
    assert trt_engine.parse_profile("16x16:128x128:256x256") == ((16, 16), (128, 128), (256, 256))
    assert trt_engine.parse_profile("128x96") == ((128, 96),) * 3
    for bad in ("256x", "1:2", "256x256:128x128:512x512", "axb"):
        with pytest.raises(ValueError):
            trt_engine.parse_profile(bad)


def test_trtexec_command_lines():
    cmd = trt_engine.trtexec_command(
        "onnx/m_float32.onnx", "engines/m_fp16.engine", "fp16", ((16, 16), (128, 128), (256, 256))
    )
    assert cmd.startswith("trtexec --onnx=onnx/m_float32.onnx --saveEngine=engines/m_fp16.engine")
    for part in (
        "--minShapes=lr:1x16x16x1",
        "--optShapes=lr:1x128x128x1",
        "--maxShapes=lr:1x256x256x1",
        "--fp16",
    ):
        assert part in cmd
    cmd8 = trt_engine.trtexec_command(
        "onnx/m_int8_qdq.onnx", "e.engine", "int8", ((64, 64),) * 3, tensorrt_version="8.6.1"
    )
    assert cmd8.endswith("--int8 --fp16")
    cmd10 = trt_engine.trtexec_command(
        "onnx/m_int8_qdq.onnx", "e.engine", "int8", ((64, 64),) * 3, tensorrt_version="10.3.0"
    )
    assert cmd10.endswith("--stronglyTyped") and "--int8" not in cmd10
    cmd11 = trt_engine.trtexec_command(
        "onnx/m_float16.onnx", "e.engine", "fp16", ((64, 64),) * 3, tensorrt_version="11.0"
    )
    assert cmd11.endswith("--memPoolSize=workspace:1024")
    with pytest.raises(ValueError):
        trt_engine.trtexec_command("a", "b", "int4", ((1, 1),) * 3)


def test_build_script_one_engine_per_precision_and_profile():
    profiles = [((16, 16), (128, 128), (256, 256)), ((256, 256), (512, 512), (512, 512))]
    s = trt_engine.build_engines_script(
        {"float32": "onnx/a.onnx", "int8": "onnx/b.onnx"}, profiles, stem="seran_x2"
    )
    assert s.startswith("#!/usr/bin/env bash")
    assert s.count('"$TRTEXEC" --onnx=') == 4
    assert "engines/seran_x2_int8_512x512.engine" in s and "--stronglyTyped" in s


def test_profiles_sharing_an_opt_size_are_refused():
    """With several profiles the engine is named by its opt size: two alike would overwrite."""
    same_opt = [((16, 16), (128, 128), (256, 256)), ((64, 64), (128, 128), (512, 512))]
    with pytest.raises(ValueError, match="128x128"):
        trt_engine.build_engines_script({"float32": "onnx/a.onnx"}, same_opt)
    assert len(trt_engine.check_profiles(same_opt[:1])) == 1


def test_build_script_names_the_tensorrt_an_opset_needs():
    from keras_seran.export.onnx_export import TENSORRT8_MAX_OPSET, tensorrt_requirement

    for opset, needs in (
        (TENSORRT8_MAX_OPSET, "TensorRT 8.5"),
        (TENSORRT8_MAX_OPSET + 1, "TensorRT 10"),
    ):
        s = trt_engine.build_engines_script(
            {"float32": "onnx/a.onnx"}, requires=tensorrt_requirement(opset)
        )
        assert f"# Needs {needs}" in s, s
    assert "[-0.5, 1.5]" in s and "[0, 1]" not in s


def test_status_is_a_reason_not_an_error():
    ok, reason = trt_engine.tensorrt_status()
    assert isinstance(ok, bool) and reason
    if not ok:
        with pytest.raises(trt_engine.TensorRTUnavailable):
            trt_engine.build_engine("missing.onnx", "x.engine")


def _gpu_tensorrt():
    ok, reason = trt_engine.tensorrt_status()
    if not ok:
        pytest.skip(f"TensorRT engine build not possible here: {reason}")


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_build_engine_and_run(full_bundle, trained_tiny, tmp_path, precision):
    _gpu_tensorrt()
    out, m = full_bundle
    profile = ((32, 32), (128, 128), (256, 256))
    import tensorrt

    variant = trt_engine.build_plan(tensorrt.__version__, precision).onnx
    onnx_file = out / m["formats"]["onnx"]["variants"][variant]["file"]
    info = trt_engine.build_engine(
        onnx_file, tmp_path / "e.engine", fp16=True, int8=precision == "int8", profiles=[profile]
    )
    assert info["precision"] == precision and (tmp_path / "e.engine").stat().st_size > 0
    try:
        run = trt_engine.TensorRTRunner(tmp_path / "e.engine")
    except (trt_engine.TensorRTUnavailable, RuntimeUnavailable) as exc:
        pytest.skip(str(exc))
    from keras_seran.export import parity

    pairs = parity.parity_pairs(2)
    rep = parity.parity_report(
        lambda x: np.asarray(trained_tiny(x)),
        {"trt": run},
        pairs,
        2,
        {"trt": "float16_compute" if precision == "fp16" else "int8"},
    )
    assert rep["formats"]["trt"]["ok"], rep


# --------------------------------------------------------------------------------------------
# each TensorRT release, against stand-ins that record what they are asked (fake_tensorrt.py)

#: (release, precision) -> (network flags, builder flags, ONNX variant), from NVIDIA's sources.
EXPECTED_BUILD = {
    ("8.6.1", "fp16"): (("EXPLICIT_BATCH",), ["FP16"], "float32"),
    ("8.6.1", "int8"): (("EXPLICIT_BATCH",), ["INT8", "FP16"], "int8"),
    ("10.3.0", "fp16"): ((), ["FP16"], "float32"),
    ("10.3.0", "int8"): (("STRONGLY_TYPED",), [], "int8"),
    ("11.0.0", "fp16"): (("STRONGLY_TYPED",), [], "float16"),
    ("11.0.0", "int8"): (("STRONGLY_TYPED",), [], "int8"),
}


def _tiny_onnx(path, half: bool):
    """A one-Conv ONNX with float32 or float16 weights (what the fake parser types layers by)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    dtype = np.float16 if half else np.float32
    w = numpy_helper.from_array(np.ones((1, 1, 3, 3), dtype), "w")
    node = helper.make_node("Conv", ["lr", "w"], ["sr"], pads=[1, 1, 1, 1])
    t = TensorProto.FLOAT16 if half else TensorProto.FLOAT
    g = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("lr", t, [1, 1, 8, 8])],
        [helper.make_tensor_value_info("sr", t, [1, 1, 8, 8])],
        [w],
    )
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.fixture
def onnx_variants(tmp_path):
    return {
        "float32": _tiny_onnx(tmp_path / "m_float32.onnx", False),
        "float16": _tiny_onnx(tmp_path / "m_float16.onnx", True),
        "int8": _tiny_onnx(tmp_path / "m_int8_qdq.onnx", False),
    }


@pytest.mark.parametrize("release,precision", sorted(EXPECTED_BUILD))
def test_build_engine_follows_each_release(
    release, precision, onnx_variants, tmp_path, monkeypatch
):
    """The builder calls per release: network flags, builder flags, ONNX, profiles, workspace."""
    log: list = []
    monkeypatch.setitem(sys.modules, "tensorrt", make_tensorrt(release, log))
    network_flags, builder_flags, variant = EXPECTED_BUILD[(release, precision)]
    assert trt_engine.build_plan(release, precision).onnx == variant
    profile = ((32, 32), (128, 128), (256, 256))
    info = trt_engine.build_engine(
        onnx_variants[variant],
        tmp_path / "e.engine",
        int8=precision == "int8",
        profiles=[profile],
        workspace_mib=512,
    )
    assert ("create_network", network_flags) in log
    assert [e[1] for e in log if e[0] == "set_flag"] == builder_flags
    assert ("parse", onnx_variants[variant].name) in log
    assert ("profile", "lr", (1, 32, 32, 1), (1, 128, 128, 1), (1, 256, 256, 1)) in log
    assert ("memory_pool", "WORKSPACE", 512 << 20) in log and log[-1] == ("build",)
    assert info["precision"] == precision and info["tensorrt"] == release
    assert info["strongly_typed"] == ("STRONGLY_TYPED" in network_flags)
    assert (tmp_path / "e.engine").read_bytes() == b"fake engine"


def test_tensorrt11_fp16_needs_the_float16_onnx(onnx_variants, tmp_path, monkeypatch):
    """TensorRT 11 has no BuilderFlag.FP16: a float32 ONNX would silently build fp32."""
    from keras_seran.errors import ExportCheckError

    trt = make_tensorrt("11.0.0", [])
    assert not hasattr(trt.BuilderFlag, "FP16") and not hasattr(trt.BuilderFlag, "INT8")
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    with pytest.raises(ExportCheckError, match="float16.onnx"):
        trt_engine.build_engine(onnx_variants["float32"], tmp_path / "e.engine")


def test_parse_major_reads_python_and_trtexec_versions():
    for version, major in (
        ("8.6.1.6", 8),
        ("10.3.0", 10),
        ("11.0.0.114", 11),
        (8601, 8),
        ("8502", 8),
        (100300, 10),
        ("110000", 11),
    ):
        assert trt_engine.parse_major(version) == major, version
    with pytest.raises(ValueError):
        trt_engine.parse_major("latest")


def _bundle_for_script(tmp_path, variants=("float32", "float16", "int8"), opset=17):
    names = {
        "float32": "onnx/m_float32.onnx",
        "float16": "onnx/m_float16.onnx",
        "int8": "onnx/m_int8_qdq.onnx",
    }
    (tmp_path / "bundle" / "onnx").mkdir(parents=True)
    files = {v: names[v] for v in variants}
    for rel in files.values():
        (tmp_path / "bundle" / rel).write_bytes(b"onnx")
    script = tmp_path / "bundle" / "build_engines.sh"
    script.write_text(
        trt_engine.build_engines_script(
            files, [((16, 16), (128, 128), (256, 256))], stem="m", opset=opset
        )
    )
    return script


def _run_script(script, release, tmp_path, **env):
    bindir = tmp_path / f"bin_{release}"
    bindir.mkdir(exist_ok=True)
    trtexec = write_trtexec(bindir, release)
    log = tmp_path / f"trtexec_{release}.log"
    run_env = {**os.environ, "TRTEXEC": str(trtexec), "FAKE_TRTEXEC_LOG": str(log), **env}
    res = subprocess.run(
        ["bash", str(script)], capture_output=True, text=True, env=run_env, timeout=60
    )
    return res, read_log(log)


#: release -> {engine: (onnx, precision options)} that build_engines.sh must ask trtexec for.
EXPECTED_TRTEXEC = {
    "8.6.1": {
        "engines/m_fp16.engine": ("onnx/m_float32.onnx", ["--fp16"]),
        "engines/m_int8.engine": ("onnx/m_int8_qdq.onnx", ["--int8", "--fp16"]),
    },
    "10.3.0": {
        "engines/m_fp16.engine": ("onnx/m_float32.onnx", ["--fp16"]),
        "engines/m_int8.engine": ("onnx/m_int8_qdq.onnx", ["--stronglyTyped"]),
    },
    "11.0.0": {
        "engines/m_fp16.engine": ("onnx/m_float16.onnx", []),
        "engines/m_int8.engine": ("onnx/m_int8_qdq.onnx", []),
    },
}


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("version_line", [True, False])
def test_build_script_asks_each_trtexec_what_it_takes(release, version_line, tmp_path):
    """build_engines.sh on a fake trtexec of each release (with or without the version line in
    its help, then told by the options it lists): every call is accepted and as expected."""
    script = _bundle_for_script(tmp_path)
    env = {} if version_line else {"FAKE_TRTEXEC_NO_VERSION": "1"}
    res, calls = _run_script(script, release, tmp_path, **env)
    assert res.returncode == 0, res.stderr
    assert f"TensorRT major version {release.split('.')[0]}" in res.stdout
    assert len(calls) == 2
    for args in calls:
        values = dict(a.split("=", 1) if "=" in a else (a, None) for a in args)
        onnx_file, flags = EXPECTED_TRTEXEC[release][values["--saveEngine"]]
        assert values["--onnx"] == onnx_file
        assert [a for a in args if "=" not in a] == flags
        assert values["--minShapes"] == "lr:1x16x16x1" and values["--maxShapes"] == "lr:1x256x256x1"
        assert (script.parent / values["--saveEngine"]).read_bytes() == b"engine"


def test_help_pipe_race_is_real_and_the_script_avoids_it(tmp_path):
    """`trtexec --help | grep -q` under pipefail fails on TensorRT 8.6 (grep exits at the first
    match, trtexec dies writing the rest): the old script then chose --stronglyTyped, which 8.6
    rejects. The script captures the help text first and never pipes trtexec."""
    trtexec = write_trtexec(tmp_path, "8.6.1")
    old = (
        f'set -euo pipefail; if "{trtexec}" --help 2>&1 | grep -q -- "--int8"; '
        "then echo weak; else echo strong; fi"
    )
    res = subprocess.run(["bash", "-c", old], capture_output=True, text=True, timeout=60)
    assert res.stdout.strip() == "strong"  # the race, reproduced
    script = _bundle_for_script(tmp_path)
    text = script.read_text()
    assert "| grep" not in text and 'TRT_HELP="$("$TRTEXEC" --help' in text
    res, calls = _run_script(script, "8.6.1", tmp_path)
    assert res.returncode == 0, res.stderr
    assert ["--int8", "--fp16"] in [[a for a in c if "=" not in a] for c in calls]


def test_build_script_refuses_opset18_on_tensorrt8_and_skips_a_missing_variant(tmp_path):
    script = _bundle_for_script(tmp_path / "a", opset=18)
    res, calls = _run_script(script, "8.6.1", tmp_path / "a")
    assert res.returncode == 2 and "parses ONNX opsets up to 17" in res.stderr and not calls
    script = _bundle_for_script(tmp_path / "b", variants=("float32", "int8"))
    res, calls = _run_script(script, "11.0.0", tmp_path / "b")
    assert res.returncode == 0 and "skipping fp16" in res.stderr
    assert [dict(a.split("=", 1) for a in c if "=" in a)["--onnx"] for c in calls] == [
        "onnx/m_int8_qdq.onnx"
    ]


def test_build_script_says_when_trtexec_is_missing(tmp_path):
    script = _bundle_for_script(tmp_path)
    res = subprocess.run(
        ["bash", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TRTEXEC": str(tmp_path / "no_trtexec")},
    )
    assert res.returncode == 2 and "trtexec not found" in res.stderr
