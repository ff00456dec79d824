"""ONNX: the TensorRT op-list check (with hand-made bad graphs) and the export itself."""

from __future__ import annotations

import numpy as np
import pytest


def _graph(op_type, inputs=("a", "b"), attrs=None, inits=(), opset=17):
    from onnx import TensorProto, helper

    node = helper.make_node(op_type, list(inputs), ["y"], name=f"{op_type}_0", **(attrs or {}))
    ins = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 2])
           for n in inputs if n not in {i.name for i in inits}]
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    g = helper.make_graph([node], "g", ins, [out], initializer=list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def test_einsum_is_rejected():
    from keras_seran.export.onnx_export import assert_tensorrt_compatible, tensorrt_problems
    from keras_seran.errors import ExportCheckError

    m = _graph("Einsum", attrs={"equation": "ij,jk->ik"})
    assert any("Einsum" in p for p in tensorrt_problems(m))
    with pytest.raises(ExportCheckError, match="Einsum"):
        assert_tensorrt_compatible(m)


def test_unknown_op_and_old_opset_are_rejected():
    from keras_seran.export.onnx_export import tensorrt_problems

    probs = tensorrt_problems(_graph("NonZero", inputs=("a",), opset=13))
    assert any("NonZero" in p for p in probs) and any("opset 13" in p for p in probs)


def test_asymmetric_or_uint8_qdq_is_rejected():
    from onnx import helper, TensorProto

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

    nodes = [helper.make_node("Softmax", ["x"], ["p"], name="attn", axis=1),
             helper.make_node("Transpose", ["p"], ["pt"], name="to_rows"),
             helper.make_node("MatMul", ["pt", "v"], ["z"], name="pool"),
             helper.make_node("MatMul", ["z", "w"], ["y"], name="project")]
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [4, 4]) for n in ("x", "v", "w")]
    g = helper.make_graph(nodes, "g", io, [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                                                          None)])
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
