"""The full bundle (trained tiny SERAN, every format and precision) against Keras on real MR."""

from __future__ import annotations

import json

import numpy as np
import pytest

from keras_seran.export import parity

pytestmark = pytest.mark.slow

FLOAT32 = ["savedmodel", "tflite/float32", "onnx/float32"]
FLOAT16 = ["tflite/float16", "onnx/float16"]
INT8 = ["tflite/int8", "onnx/int8"]
TOL = parity.TOLERANCES


def test_layout_and_manifest_hashes(full_bundle):
    from keras_seran.export.manifest import sha256, verify_hashes

    out, manifest = full_bundle
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk["files"] == manifest["files"] and on_disk["parity"] == manifest["parity"]
    assert verify_hashes(out) == []
    for rel, entry in manifest["files"].items():
        assert sha256(out / rel) == entry["sha256"]
    for rel in (
        "parity.md",
        "build_engines.sh",
        "savedmodel/saved_model.pb",
        "tflite/seran_x2_float32.tflite",
        "tflite/seran_x2_float16.tflite",
        "tflite/seran_x2_dynamic_int8.tflite",
        "tflite/seran_x2_int8.tflite",
        "onnx/seran_x2_float32.onnx",
        "onnx/seran_x2_float16.onnx",
        "onnx/seran_x2_int8_qdq.onnx",
        "README.md",
    ):
        assert rel in manifest["files"], rel
    assert not list(out.parent.glob(".bundle_x2.*")), "temporary folder left behind"


def test_manifest_contract_and_versions(full_bundle):
    _, m = full_bundle
    assert m["scale"] == 2
    c = m["input_contract"]
    assert c["input"]["name"] == "lr" and c["input"]["dtype"] == "float32"
    from keras_seran.contract import NETWORK_RANGE

    assert c["input"]["shape"] == [1, "H", "W", 1]
    assert c["input"]["range"] == c["output"]["range"] == list(NETWORK_RANGE)
    assert c["output"]["shape"] == [1, "H*2", "W*2", 1]
    assert c["intensity_normalisation"]["percentiles"] == [0.5, 99.5]
    for pkg in ("keras", "tensorflow", "onnx", "onnxruntime", "ai_edge_litert"):
        assert m["versions"][pkg], pkg
    assert m["model"]["config"]["channels"] == 16
    # int8 was calibrated on the contract's range, bright structures above 1 included
    cal = m["calibration"]
    assert "slab" in cal["source"] and cal["slices"] == len(parity.CALIBRATION_SLICES)
    assert cal["lr_range"][1] > 1.05


def test_float32_formats_match_keras(full_bundle):
    _, m = full_bundle
    f = m["parity"]["formats"]
    for name in FLOAT32:
        assert "error" not in f[name], (name, f[name]["error"])
        assert f[name]["max_abs_diff"] <= 1e-4, (name, f[name])
        assert f[name]["ok"]


def test_float16_psnr_drop(full_bundle):
    _, m = full_bundle
    for name in FLOAT16:
        e = m["parity"]["formats"][name]
        tol = TOL[e["precision"]]
        assert abs(e["psnr_drop"]) <= tol["psnr_drop"], (name, e)
        for key in ("max_abs_diff", "mean_abs_diff"):
            assert key not in tol or e[key] <= tol[key], (name, e)
        assert e["ok"]


def test_onnx_float16_is_half_inside_with_a_float32_interface(full_bundle):
    import onnx

    out, m = full_bundle
    info = m["formats"]["onnx"]["variants"]["float16"]
    proto = onnx.load(str(out / info["file"]))
    assert info["input"]["dtype"] == info["output"]["dtype"] == "float32"
    inits = {t.name: t.data_type for t in proto.graph.initializer}
    kernels = {inits[n.input[1]] for n in proto.graph.node if n.op_type == "Conv"}
    assert kernels == {onnx.TensorProto.FLOAT16}  # every conv kernel is fp16
    assert info["float32_nodes"] and all("sera" in n for n in info["float32_nodes"])


def test_int8_psnr_drop_and_still_beats_bicubic(full_bundle):
    _, m = full_bundle
    p = m["parity"]
    keras_psnr, bicubic = p["keras"]["psnr"], p["bicubic"]["psnr"]
    gain = keras_psnr - bicubic
    assert gain >= 0.5, f"the trained model must clearly beat bicubic first (gain {gain:.2f} dB)"
    for name in INT8 + ["tflite/dynamic_int8"]:
        e = p["formats"][name]
        assert abs(e["psnr_drop"]) <= TOL[e["precision"]]["psnr_drop"], (name, e)
        assert e["mean_abs_diff"] <= TOL[e["precision"]]["mean_abs_diff"], (name, e)
        # keeps most of the gain over bicubic
        assert e["psnr"] - bicubic >= 0.5 * gain, (name, e, bicubic)
    assert m["parity_ok"]


def test_parity_md_lists_every_format(full_bundle):
    out, m = full_bundle
    text = (out / "parity.md").read_text()
    for name in m["parity"]["formats"]:
        assert f"| {name} |" in text


def test_tflite_files_have_builtin_ops_only(full_bundle):
    from tensorflow.lite.python import schema_py_generated as schema

    from keras_seran.export.litert import non_builtin_ops, tflite_op_names

    builtins = {k for k in vars(schema.BuiltinOperator) if not k.startswith("_")} - {"CUSTOM"}
    out, m = full_bundle
    for variant, info in m["formats"]["tflite"]["variants"].items():
        ops = tflite_op_names(out / info["file"])
        assert ops == info["ops"]
        assert not non_builtin_ops(ops), (variant, ops)
        assert not [o for o in ops if o.startswith("Flex")]
        assert set(ops) <= builtins, (variant, set(ops) - builtins)
        assert "BATCH_MATMUL" in ops and "SOFTMAX" in ops  # the attention is really there
        assert info["input"]["shape"] == [1, -1, -1, 1]  # dynamic H, W
        assert info["input"]["dtype"] == "float32" and info["output"]["dtype"] == "float32"
        assert info["signatures"]["serving_default"] == {"inputs": ["lr"], "outputs": ["sr"]}
    assert "QUANTIZE" in m["formats"]["tflite"]["variants"]["int8"]["ops"]


def test_litert_runs_other_sizes(full_bundle, trained_tiny):
    from keras_seran.export.litert import LiteRTRunner

    out, m = full_bundle
    run = LiteRTRunner(out / m["formats"]["tflite"]["variants"]["float32"]["file"])
    x = np.random.default_rng(0).random((1, 40, 56, 1), dtype=np.float32)
    y = run(x)
    assert y.shape == (1, 80, 112, 1)
    np.testing.assert_allclose(y, np.asarray(trained_tiny(x)), atol=1e-4)


def test_savedmodel_signature(full_bundle, trained_tiny):
    import tensorflow as tf

    out, m = full_bundle
    loaded = tf.saved_model.load(str(out / "savedmodel"))
    fn = loaded.signatures["serving_default"]
    (spec,) = fn.structured_input_signature[1].values()
    assert spec.name == "lr" and spec.shape.as_list() == [None, None, None, 1]
    assert list(fn.structured_outputs) == ["sr"]
    x = np.random.default_rng(1).random((2, 24, 36, 1), dtype=np.float32)  # batch 2, other size
    y = fn(lr=tf.constant(x))["sr"].numpy()
    assert y.shape == (2, 48, 72, 1)
    np.testing.assert_allclose(y, np.asarray(trained_tiny(x)), atol=1e-4)


def test_onnx_files_checked_and_tensorrt_compatible(full_bundle):
    import onnx

    from keras_seran.export.onnx_export import TENSORRT_ONNX_OPS, onnx_op_types, tensorrt_problems

    out, m = full_bundle
    for variant, info in m["formats"]["onnx"]["variants"].items():
        path = out / info["file"]
        onnx.checker.check_model(str(path), full_check=True)
        proto = onnx.load(str(path))
        opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
        assert opset >= 17
        ops = onnx_op_types(proto)
        assert "Einsum" not in ops
        assert set(ops) <= TENSORRT_ONNX_OPS, set(ops) - TENSORRT_ONNX_OPS
        assert tensorrt_problems(proto) == []
        assert info["input"]["shape"] == ["batch", "height", "width", 1]
        assert info["output"]["shape"] == ["batch", "out_height", "out_width", 1]


def test_onnx_int8_is_symmetric_per_channel_qdq(full_bundle):
    import onnx
    from onnx import numpy_helper

    out, m = full_bundle
    proto = onnx.load(str(out / m["formats"]["onnx"]["variants"]["int8"]["file"]))
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    q = [n for n in proto.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert len(q) > 20
    for n in q:
        zp = inits[n.input[2]]
        assert zp.dtype == np.int8 and not zp.any(), n.name
    producers = {o: n for n in proto.graph.node for o in n.output}
    per_channel = 0
    for conv in (n for n in proto.graph.node if n.op_type == "Conv"):
        dq = producers[conv.input[1]]
        assert dq.op_type == "DequantizeLinear", conv.name
        per_channel += inits[dq.input[1]].size > 1
        if len(conv.input) > 2:  # biases stay float for TensorRT
            assert conv.input[2] in inits and inits[conv.input[2]].dtype == np.float32
    assert per_channel >= 10


def test_onnx_int8_keeps_the_attention_float(full_bundle):
    """Softmax outputs (attention over H*W positions: entries ~1/(H*W), below one int8 step) and
    the products they feed are never quantized: no QuantizeLinear reads a softmax."""
    import onnx

    out, m = full_bundle
    proto = onnx.load(str(out / m["formats"]["onnx"]["variants"]["int8"]["file"]))
    consumers: dict[str, list] = {}
    for n in proto.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n.op_type)
    softmaxes = [n for n in proto.graph.node if n.op_type == "Softmax"]
    assert softmaxes and len(softmaxes) % 2 == 0  # squeeze + excitation per SERA module
    for n in softmaxes:
        assert "QuantizeLinear" not in consumers[n.output[0]], n.name
    recorded = m["formats"]["onnx"]["variants"]["int8"]["quantization"]["float_nodes"]
    assert {n.name for n in softmaxes} <= set(recorded)
    assert any("MatMul" in name for name in recorded)


def test_onnx_int8_follows_tensorrt_placement_rules(full_bundle):
    """No Q/DQ before a Softmax, none on scalars or biases (residual scale, RMS epsilon, GloRe
    node bias); every Conv input and weighted MatMul input quantized; every residual add's skip
    input quantized; no Q/DQ around a softmax's product."""
    import onnx
    from onnx import numpy_helper

    from keras_seran.export.qdq import qdq_structure

    out, m = full_bundle
    q = m["formats"]["onnx"]["variants"]["int8"]["quantization"]
    assert q["placement"] == "nvidia" and "Softmax" in q["rules"]
    proto = onnx.load(str(out / m["formats"]["onnx"]["variants"]["int8"]["file"]))
    s = qdq_structure(proto)
    for rule in (
        "softmax_with_quantized_input",
        "scalar_qdq",
        "conv_unquantized",
        "weighted_matmul_unquantized",
        "residual_add_unquantized",
        "attention_matmul_quantized",
    ):
        assert s[rule] == [], (rule, s[rule])
    assert s == q["structure"]
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    consumers: dict[str, list] = {}
    for n in proto.graph.node:
        for i, name in enumerate(n.input):
            consumers.setdefault(name, []).append((n.op_type, i))
    for n in proto.graph.node:  # constants behind a DQ are Conv / MatMul weights only
        if n.op_type == "DequantizeLinear" and n.input[0] in inits:
            assert inits[n.input[0]].dtype == np.int8
            assert {c for c in consumers[n.output[0]]} <= {
                ("Conv", 1),
                ("MatMul", 0),
                ("MatMul", 1),
            }, n.name
        if n.op_type == "QuantizeLinear":
            assert n.input[0] not in inits, n.name
    adds = [
        n for n in proto.graph.node if n.op_type == "Add" and not any(i in inits for i in n.input)
    ]
    assert len(adds) >= 3  # residual blocks, SERA and the long skip


def test_tensorrt_entry(full_bundle):
    from keras_seran.export.tensorrt_engine import tensorrt_status

    out, m = full_bundle
    entry = m["formats"]["tensorrt"]
    script = (out / "build_engines.sh").read_text()
    assert "trtexec" in script and "--fp16" in script and "lr:1x128x128x1" in script
    assert "onnx/seran_x2_int8_qdq.onnx" in script and "onnx/seran_x2_float32.onnx" in script
    ok, reason = tensorrt_status()
    if ok:
        assert entry["status"] == "ok" and entry["engines"]
    else:
        assert entry["status"] == "skipped" and entry["reason"] == reason
        assert "tensorrt" in reason.lower()


def test_pretrained_small_preset_meets_every_tolerance(pretrained_small_bundle):
    """The issue's numbers on the shipped model itself (small preset, real training)."""
    from keras_seran.export.litert import assert_builtin_only

    out, m = pretrained_small_bundle
    assert m["model"]["config"]["channels"] == 32
    p, f = m["parity"], m["parity"]["formats"]
    gain = p["keras"]["psnr"] - p["bicubic"]["psnr"]
    assert gain >= 1.0, gain
    for name, entry in f.items():
        assert "error" not in entry, (name, entry)
    for name in FLOAT32:
        assert f[name]["max_abs_diff"] <= 1e-4, (name, f[name])
    assert abs(f["tflite/float16"]["psnr_drop"]) <= TOL["float16"]["psnr_drop"]
    for name in INT8 + ["tflite/dynamic_int8"]:
        assert f[name]["ok"], (name, f[name])
        assert f[name]["psnr"] - p["bicubic"]["psnr"] >= 0.5 * gain, (name, f[name])
    for tfl in (out / "tflite").glob("*.tflite"):
        assert_builtin_only(tfl)
    assert m["parity_ok"]


def test_missing_export_modules_are_named_before_any_work(monkeypatch):
    import importlib.util

    from keras_seran.errors import UsageError
    from keras_seran.export.bundle import check_requirements

    check_requirements(["savedmodel", "tflite", "onnx", "tensorrt"])  # all installed here
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("tf2onnx", "onnxruntime") else find_spec(name, *a),
    )
    check_requirements(["savedmodel", "tflite"])  # need neither
    with pytest.raises(
        UsageError,
        match=r"export to onnx needs onnxruntime, tf2onnx \(not "
        r"installed\): pip install 'keras-seran\[tf,export\]'",
    ):
        check_requirements(["onnx"])


def test_a_bad_opset_fails_before_any_conversion(untrained_tiny, tmp_path, monkeypatch):
    """export_bundle (the library path, not only the command) checks the opset first."""
    from keras_seran.export import bundle, formats, onnx_export

    monkeypatch.setattr(
        formats,
        "export_savedmodel",
        lambda *a, **k: pytest.fail("converted before checking the opset"),
    )
    with pytest.raises(
        ValueError,
        match=f"opset must be between {onnx_export.MIN_OPSET} and {onnx_export.MAX_OPSET}",
    ):
        bundle.export_bundle(untrained_tiny, tmp_path / "b", ["savedmodel", "onnx"], opset=30)
    assert not (tmp_path / "b").exists()
