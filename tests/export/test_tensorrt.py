"""TensorRT: status, profiles and trtexec lines everywhere; the real builder where a GPU is."""

from __future__ import annotations

import numpy as np
import pytest

from keras_seran.export import tensorrt_engine as trt_engine


def test_parse_profiles():
    assert trt_engine.parse_hw("256x192") == (256, 192)
    assert trt_engine.parse_hw("64") == (64, 64)
    assert trt_engine.parse_profile("16x16:128x128:256x256") == ((16, 16), (128, 128), (256, 256))
    assert trt_engine.parse_profile("128x96") == ((128, 96),) * 3
    for bad in ("256x", "1:2", "256x256:128x128:512x512", "axb"):
        with pytest.raises(ValueError):
            trt_engine.parse_profile(bad)


def test_trtexec_command_lines():
    cmd = trt_engine.trtexec_command("onnx/m_float32.onnx", "engines/m_fp16.engine", "fp16",
                                     ((16, 16), (128, 128), (256, 256)))
    assert cmd.startswith("trtexec --onnx=onnx/m_float32.onnx --saveEngine=engines/m_fp16.engine")
    for part in ("--minShapes=lr:1x16x16x1", "--optShapes=lr:1x128x128x1",
                 "--maxShapes=lr:1x256x256x1", "--fp16"):
        assert part in cmd
    cmd8 = trt_engine.trtexec_command("onnx/m_int8_qdq.onnx", "e.engine", "int8",
                                      ((64, 64),) * 3)
    assert "--int8" in cmd8
    with pytest.raises(ValueError):
        trt_engine.trtexec_command("a", "b", "int4", ((1, 1),) * 3)


def test_build_script_one_engine_per_precision_and_profile():
    profiles = [((16, 16), (128, 128), (256, 256)), ((256, 256), (512, 512), (512, 512))]
    s = trt_engine.build_engines_script({"fp16": "onnx/a.onnx", "int8": "onnx/b.onnx"}, profiles,
                                        stem="seran_x2")
    assert s.startswith("#!/usr/bin/env bash")
    assert s.count('"$TRTEXEC" --onnx=') == 4
    assert "engines/seran_x2_int8_512x512.engine" in s and "--stronglyTyped" in s


def test_profiles_sharing_an_opt_size_are_refused():
    """With several profiles the engine is named by its opt size: two alike would overwrite."""
    same_opt = [((16, 16), (128, 128), (256, 256)), ((64, 64), (128, 128), (512, 512))]
    with pytest.raises(ValueError, match="128x128"):
        trt_engine.build_engines_script({"fp16": "onnx/a.onnx"}, same_opt)
    assert len(trt_engine.check_profiles(same_opt[:1])) == 1


def test_build_script_names_the_tensorrt_an_opset_needs():
    from keras_seran.export.onnx_export import TENSORRT8_MAX_OPSET, tensorrt_requirement

    for opset, needs in ((TENSORRT8_MAX_OPSET, "TensorRT 8.5"), (TENSORRT8_MAX_OPSET + 1,
                                                                 "TensorRT 10")):
        s = trt_engine.build_engines_script({"fp16": "onnx/a.onnx"},
                                            requires=tensorrt_requirement(opset))
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
@pytest.mark.parametrize("variant,precision", [("float32", "fp16"), ("int8", "int8")])
def test_build_engine_and_run(full_bundle, trained_tiny, tmp_path, variant, precision):
    _gpu_tensorrt()
    out, m = full_bundle
    onnx_file = out / m["formats"]["onnx"]["variants"][variant]["file"]
    profile = ((32, 32), (128, 128), (256, 256))
    info = trt_engine.build_engine(onnx_file, tmp_path / "e.engine", fp16=True,
                                   int8=precision == "int8", profiles=[profile])
    assert info["precision"] == precision and (tmp_path / "e.engine").stat().st_size > 0
    try:
        run = trt_engine.TensorRTRunner(tmp_path / "e.engine")
    except trt_engine.TensorRTUnavailable as exc:
        pytest.skip(str(exc))
    from keras_seran.export import parity

    pairs = parity.parity_pairs(2)
    rep = parity.parity_report(lambda x: np.asarray(trained_tiny(x)), {"trt": run}, pairs, 2,
                               {"trt": "float16_compute" if precision == "fp16" else "int8"})
    assert rep["formats"]["trt"]["ok"], rep
