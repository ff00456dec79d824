"""ONNX: the TensorRT op-list check (with hand-made bad graphs) and the export itself."""

from __future__ import annotations

import numpy as np
import pytest


def _graph(op_type, inputs=("a", "b"), attrs=None, inits=(), opset=17):
    from onnx import TensorProto, helper

    node = helper.make_node(op_type, list(inputs), ["y"], name=f"{op_type}_0", **(attrs or {}))
    ins = [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 2])
        for n in inputs
        if n not in {i.name for i in inits}
    ]
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    g = helper.make_graph([node], "g", ins, [out], initializer=list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def test_einsum_is_rejected():
    from keras_seran.errors import ExportCheckError
    from keras_seran.export.onnx_export import assert_tensorrt_compatible, tensorrt_problems

    m = _graph("Einsum", attrs={"equation": "ij,jk->ik"})
    assert any("Einsum" in p for p in tensorrt_problems(m))
    with pytest.raises(ExportCheckError, match="Einsum"):
        assert_tensorrt_compatible(m)


def test_unknown_op_and_old_opset_are_rejected():
    from keras_seran.export.onnx_export import tensorrt_problems

    probs = tensorrt_problems(_graph("NonZero", inputs=("a",), opset=13))
    assert any("NonZero" in p for p in probs) and any("opset 13" in p for p in probs)


def test_asymmetric_or_uint8_qdq_is_rejected():
    from onnx import TensorProto, helper

    from keras_seran.export.onnx_export import tensorrt_problems

    scale = helper.make_tensor("s", TensorProto.FLOAT, [], [0.1])
    zp = helper.make_tensor("z", TensorProto.UINT8, [], [128])
    probs = tensorrt_problems(_graph("QuantizeLinear", inputs=("a", "s", "z"), inits=(scale, zp)))
    assert any("uint8" in p for p in probs) and any("zero point" in p for p in probs)


def test_allowed_graph_passes():
    from keras_seran.export.onnx_export import tensorrt_problems

    assert tensorrt_problems(_graph("MatMul")) == []


def test_float_attention_nodes_follow_softmax_through_reshapes():
    """Softmax -> Transpose -> MatMul stays float; a MatMul that reads no softmax does not."""
    from onnx import TensorProto, helper

    from keras_seran.export.onnx_export import float_attention_nodes

    nodes = [
        helper.make_node("Softmax", ["x"], ["p"], name="attn", axis=1),
        helper.make_node("Transpose", ["p"], ["pt"], name="to_rows"),
        helper.make_node("MatMul", ["pt", "v"], ["z"], name="pool"),
        helper.make_node("MatMul", ["z", "w"], ["y"], name="project"),
    ]
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [4, 4]) for n in ("x", "v", "w")]
    g = helper.make_graph(
        nodes, "g", io, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    assert float_attention_nodes(m) == ["attn", "pool", "to_rows"]


def test_max_opset_is_what_tf2onnx_writes():
    import tf2onnx.constants

    from keras_seran.export.onnx_export import MAX_OPSET, check_opset

    assert MAX_OPSET == max(tf2onnx.constants.OPSET_TO_IR_VERSION)
    assert check_opset(MAX_OPSET) == MAX_OPSET
    for bad in (16, MAX_OPSET + 1):
        with pytest.raises(ValueError, match="between"):
            check_opset(bad)


def test_export_onnx_dynamic_hw(untrained_tiny, tmp_path):
    from keras_seran.export.onnx_export import OnnxRunner, export_onnx

    info = export_onnx(untrained_tiny, tmp_path / "m.onnx")
    assert info["opset"] >= 17 and "Einsum" not in info["ops"]
    assert info["input"]["name"] == "lr" and info["output"]["name"] == "sr"
    run = OnnxRunner(tmp_path / "m.onnx")
    for shape in [(1, 20, 28, 1), (2, 33, 17, 1)]:
        x = np.random.default_rng(0).random(shape, dtype=np.float32)
        np.testing.assert_allclose(run(x), np.asarray(untrained_tiny(x)), atol=1e-4)
    with pytest.raises(ValueError, match="opset"):
        export_onnx(untrained_tiny, tmp_path / "old.onnx", opset=13)


# --------------------------------------------------------------------------------------------
# int8 Q/DQ placement


@pytest.fixture(scope="module")
def tiny_onnx_pair(untrained_tiny, tmp_path_factory):
    """(float32 ONNX of the tiny SERAN, calibration LR slices of real MR at 32x32)."""
    from keras_seran.export import parity
    from keras_seran.export.onnx_export import export_onnx

    folder = tmp_path_factory.mktemp("qdq")
    export_onnx(untrained_tiny, folder / "m.onnx")
    return folder, parity.calibration_inputs(2, indices=range(0, 12, 4), lr_size=(32, 32))


def test_nvidia_placement_rules_hold_and_the_old_placement_breaks_them(tiny_onnx_pair):
    """The rules the structure check enforces; onnxruntime's default placement (the previous
    one) quantizes the softmax logits and the scalars, and the check says so."""
    import onnx

    from keras_seran.export.onnx_export import OnnxRunner, quantize_qdq
    from keras_seran.export.qdq import qdq_structure

    folder, cal = tiny_onnx_pair
    info = quantize_qdq(folder / "m.onnx", folder / "nv.onnx", cal)
    s = info["quantization"]["structure"]
    assert info["quantization"]["placement"] == "nvidia"
    assert all(s[k] == [] for k in s if isinstance(s[k], list)), s
    kept = info["quantization"]["kept_float"]
    proto = onnx.load(str(folder / "nv.onnx"))
    n_softmax = sum(n.op_type == "Softmax" for n in proto.graph.node)
    assert n_softmax >= 2
    assert sum(v.startswith("softmax") for v in kept.values()) == n_softmax
    assert sum(v.startswith("attention product") for v in kept.values()) == n_softmax
    n_conv = sum(n.op_type == "Conv" for n in proto.graph.node)
    assert s["dequantize_linear"] >= 2 * n_conv - 1  # (inputs shared by several convs)
    x = cal[0]
    y32, y8 = OnnxRunner(folder / "m.onnx")(x), OnnxRunner(folder / "nv.onnx")(x)
    assert 0 < np.abs(y8 - y32).mean() < 2e-2

    old = quantize_qdq(folder / "m.onnx", folder / "ort.onnx", cal, placement="onnxruntime")
    o = qdq_structure(folder / "ort.onnx")
    assert old["quantization"]["placement"] == "onnxruntime"
    assert len(o["softmax_with_quantized_input"]) == n_softmax and o["scalar_qdq"]
    with pytest.raises(ValueError, match="placement"):
        quantize_qdq(folder / "m.onnx", folder / "x.onnx", cal, placement="best")


def test_weights_are_symmetric_int8_per_channel():
    from keras_seran.export.qdq import quantize_weights

    w = np.array([[1.0, -0.5], [0.0, 0.0], [-0.02, 0.01]], np.float32)[:, :, None, None]
    q, scale = quantize_weights(w, axis=0)
    assert q.dtype == np.int8 and scale.shape == (3,)
    assert q[0, 0, 0, 0] == 127 and q[0, 1, 0, 0] == -64 and q[2, 0, 0, 0] == -127
    assert scale[1] == 1.0 and not q[1].any()  # an all-zero channel: scale 1, no NaN
    np.testing.assert_allclose(q[..., 0, 0] * scale[:, None], w[..., 0, 0], atol=scale.max() / 2)


def test_float16_variant_keeps_the_rms_norm_float32(tiny_onnx_pair):
    import onnx

    from keras_seran.export.onnx_export import OnnxRunner, export_float16

    folder, cal = tiny_onnx_pair
    info = export_float16(folder / "m.onnx", folder / "h.onnx")
    proto = onnx.load(str(folder / "h.onnx"))
    ops = {n.name: n.op_type for n in proto.graph.node}
    means = {n for n, op in ops.items() if op == "ReduceMean"}  # one per SERA block
    assert means and means <= set(info["float32_nodes"])
    assert info["input"]["dtype"] == "float32" and info["output"]["dtype"] == "float32"
    y32, y16 = OnnxRunner(folder / "m.onnx")(cal[0]), OnnxRunner(folder / "h.onnx")(cal[0])
    assert y16.dtype == np.float32 and 0 < np.abs(y16 - y32).max() < 1e-2
