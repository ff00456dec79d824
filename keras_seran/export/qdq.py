"""int8 Q/DQ placement for TensorRT's explicit quantization, as an ONNX graph pass.

NVIDIA's placement guidance (TensorRT developer guide, "Q/DQ layer-placement recommendations";
what Model Optimizer's ONNX PTQ does) applied to a float32 ONNX graph by :func:`quantize_nvidia`:

* **weighted ops**: the activation input of every Conv is quantized per tensor, its weights per
  output channel (int8 initializers behind a DequantizeLinear); the same for a MatMul with a
  constant operand (the GloRe node/state maps: activation per tensor, weights per tensor).
  Biases stay float (TensorRT takes no int32 Q/DQ).
* **residual adds**: the skip input of an Add of two feature maps is quantized (every input but
  the one TensorRT fuses into the producing convolution's epilogue: a weighted op's output,
  possibly times a constant, read by nothing else). Outputs of weighted ops are not quantized.
* **kept float**: softmax logits (no Q/DQ before a Softmax) and the attention products: a
  MatMul that reads a softmax output is an activation x activation product whose attention
  operand (entries about 1/(H*W) over positions, 1/n over descriptors) lies below one int8 step
  of its range; every scalar or constant other than Conv/MatMul weights (the residual scale s,
  the RMS epsilon, the GloRe node bias, conv biases); element-wise and layout ops (Mul, Sub,
  ReduceMean, Reshape, Transpose, DepthToSpace) that feed no quantized input.

Activation scales are symmetric max calibration (``amax / 127``, zero point 0) over real MR
slices run through onnxruntime; weights are symmetric with range [-127, 127]. A tensor that feeds
several quantized inputs gets one shared Q/DQ pair; its float consumers keep reading it.
:func:`qdq_structure` reads the placement back from any Q/DQ model (tests and the manifest).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: Ops whose output is a pure re-arrangement of their first input (value-preserving).
LAYOUT_OPS = frozenset({"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Identity", "Flatten"})
WEIGHTED_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})
INT8_MAX = 127
PLACEMENT = "nvidia"
PLACEMENT_RULES = (
    "Q/DQ on the inputs of every Conv (activation per tensor, weights per output channel) and of "
    "every MatMul with a constant operand; on the skip input of every residual Add; none before "
    "a Softmax, none on scalars or biases, none around reshapes/transposes; attention products "
    "(MatMul of a softmax output) stay float: attention weights ~1/(H*W) lie below one int8 step "
    "(TensorRT Q/DQ placement recommendations, as NVIDIA Model Optimizer's ONNX PTQ)"
)


@dataclass
class QDQPlan:
    """Where the Q/DQ pairs go.

    ``activations``: tensor name -> [(consumer node name, input index)] that read it quantized.
    ``weights``: (node name, input index, per-channel axis or None) of constant weights.
    ``kept_float``: node name -> why a node an int8 pass might touch stays float.
    """

    activations: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    weights: list[tuple[str, int, int | None]] = field(default_factory=list)
    kept_float: dict[str, str] = field(default_factory=dict)


class _Graph:
    """Producer/consumer/constant look-ups over an ONNX graph."""

    def __init__(self, proto):
        from onnx import numpy_helper

        g = proto.graph
        self.nodes = list(g.node)
        self.by_name = {n.name: n for n in self.nodes}
        self.consts: dict[str, np.ndarray] = {
            t.name: numpy_helper.to_array(t) for t in g.initializer
        }
        for n in self.nodes:
            if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
                self.consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
        self.producer = {o: n for n in self.nodes for o in n.output}
        self.consumers: dict[str, list] = defaultdict(list)
        for n in self.nodes:
            for i, name in enumerate(n.input):
                self.consumers[name].append((n, i))

    def is_const(self, name: str) -> bool:
        return name in self.consts

    def source(self, name: str):
        """The node that really computed ``name``: through layout ops and Q/DQ pairs."""
        node = self.producer.get(name)
        while node is not None and (node.op_type in LAYOUT_OPS or node.op_type in QDQ_OPS):
            node = self.producer.get(node.input[0])
        return node

    def reads_softmax(self, name: str) -> bool:
        src = self.source(name)
        return src is not None and src.op_type == "Softmax"

    def weighted_output(self, name: str) -> bool:
        """Whether ``name`` is a weighted op's output, possibly times a constant (``s * conv``)."""
        node = self.source(name)
        if node is not None and node.op_type == "Mul":
            data = [i for i in node.input if not self.is_const(i)]
            if len(data) == 1 and len(node.input) == 2:
                node = self.source(data[0])
        return node is not None and node.op_type in WEIGHTED_OPS

    def fusable(self, name: str) -> bool:
        """A weighted op's output read only here: TensorRT fuses the add into its epilogue."""
        return self.weighted_output(name) and len(self.consumers[name]) == 1


def nvidia_plan(proto) -> QDQPlan:
    """Decide the placement (see the module docstring) for a float32 graph."""
    g = _Graph(proto)
    plan = QDQPlan()

    def quantize(tensor: str, node, idx: int) -> None:
        plan.activations.setdefault(tensor, []).append((node.name, idx))

    for node in g.nodes:
        op = node.op_type
        if op in ("Conv", "ConvTranspose"):
            quantize(node.input[0], node, 0)
            if g.is_const(node.input[1]):
                plan.weights.append((node.name, 1, 0))
        elif op in ("MatMul", "Gemm"):
            a, b = node.input[0], node.input[1]
            if any(g.reads_softmax(x) for x in (a, b)):
                plan.kept_float[node.name] = "attention product: reads a softmax output"
            elif g.is_const(b) or g.is_const(a):
                for idx, x in enumerate((a, b)):
                    if g.is_const(x):
                        plan.weights.append((node.name, idx, None))
                    else:
                        quantize(x, node, idx)
            else:
                plan.kept_float[node.name] = "activation x activation product"
        elif op == "Add":
            data = [i for i in node.input if not g.is_const(i)]
            if len(data) < 2:
                plan.kept_float[node.name] = "adds a constant (bias or epsilon)"
                continue
            skips = [i for i, x in enumerate(node.input) if not g.fusable(x)]
            for idx in skips or range(len(node.input) - 1):
                quantize(node.input[idx], node, idx)
        elif op == "Softmax":
            plan.kept_float[node.name] = "softmax: logits stay float"
    return plan


def calibrate_amax(
    model_path: str | Path,
    tensors: Sequence[str],
    calibration: Sequence[np.ndarray],
    input_name: str = "lr",
) -> dict[str, float]:
    """max |x| of each of ``tensors`` over the calibration inputs, run with onnxruntime (CPU)."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    proto = onnx.load(str(model_path))
    known = {o.name for o in proto.graph.output}
    graph_inputs = {i.name for i in proto.graph.input}
    for name in tensors:
        if name not in known and name not in graph_inputs:
            proto.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(
        proto.SerializeToString(), opts, providers=["CPUExecutionProvider"]
    )
    names = [t for t in tensors if t not in graph_inputs]
    amax = dict.fromkeys(tensors, 0.0)
    for x in calibration:
        x = np.asarray(x, np.float32)
        if input_name in amax:
            amax[input_name] = max(amax[input_name], float(np.max(np.abs(x))))
        outs = session.run(names, {input_name: x})
        for name, value in zip(names, outs):
            amax[name] = max(amax[name], float(np.max(np.abs(value))) if value.size else 0.0)
    return amax


def _scale(amax) -> np.ndarray:
    amax = np.asarray(amax, np.float32)
    return np.where(amax > 0, amax / INT8_MAX, np.float32(1.0)).astype(np.float32)


def quantize_weights(w: np.ndarray, axis: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 (range [-127, 127]) of a weight tensor: (int8 values, float32 scales),
    one scale per index of ``axis`` (per output channel) or a single one (``axis=None``)."""
    w = np.asarray(w, np.float32)
    if axis is None:
        scale = _scale(np.max(np.abs(w)))
        q = np.clip(np.rint(w / scale), -INT8_MAX, INT8_MAX).astype(np.int8)
        return q, scale
    reduce = tuple(a for a in range(w.ndim) if a != axis)
    scale = _scale(np.max(np.abs(w), axis=reduce))
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.rint(w / scale.reshape(shape)), -INT8_MAX, INT8_MAX).astype(np.int8)
    return q, scale


def insert_qdq(proto, plan: QDQPlan, amax: dict[str, float]):
    """A copy of ``proto`` with the Q/DQ pairs of ``plan`` (activation scales from ``amax``)."""
    import onnx
    from onnx import helper, numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(proto)
    g = out.graph
    by_name = {n.name: n for n in g.node}
    inits = {t.name: t for t in g.initializer}
    new_inits, placed = [], {}  # placed: tensor -> DQ output name
    zero = "qdq_zero_point_int8"
    new_inits.append(numpy_helper.from_array(np.zeros((), np.int8), zero))
    qdq_nodes = []

    for tensor, readers in plan.activations.items():
        base = tensor.replace(":", "_")
        scale = f"{base}_qdq_scale"
        new_inits.append(numpy_helper.from_array(_scale(amax[tensor]), scale))
        q, dq = f"{base}_quantized", f"{base}_dequantized"
        qdq_nodes.append(
            (
                tensor,
                [
                    helper.make_node(
                        "QuantizeLinear", [tensor, scale, zero], [q], name=f"{base}_Q"
                    ),
                    helper.make_node("DequantizeLinear", [q, scale, zero], [dq], name=f"{base}_DQ"),
                ],
            )
        )
        placed[tensor] = dq
        for node_name, idx in readers:
            by_name[node_name].input[idx] = dq

    weight_nodes = []
    for node_name, idx, axis in plan.weights:
        node = by_name[node_name]
        name = node.input[idx]
        if name in placed:  # a weight shared by several nodes
            node.input[idx] = placed[name]
            continue
        w = numpy_helper.to_array(inits[name])
        q, scale = quantize_weights(w, axis)
        base = name.replace(":", "_")
        new_inits += [
            numpy_helper.from_array(q, f"{base}_int8"),
            numpy_helper.from_array(scale, f"{base}_w_scale"),
        ]
        zp_name = zero
        if axis is not None:
            zp_name = f"{base}_w_zero_point"
            new_inits.append(numpy_helper.from_array(np.zeros(scale.shape, np.int8), zp_name))
        attrs = {"axis": axis} if axis is not None else {}
        dq = f"{base}_dequantized"
        weight_nodes.append(
            helper.make_node(
                "DequantizeLinear",
                [f"{base}_int8", f"{base}_w_scale", zp_name],
                [dq],
                name=f"{base}_DQ",
                **attrs,
            )
        )
        placed[name] = dq
        node.input[idx] = dq

    # Topological order: weight DQs first, each activation pair right after its producer.
    after: dict[str, list] = defaultdict(list)
    graph_inputs = {i.name for i in g.input}
    head = list(weight_nodes)
    for tensor, pair in qdq_nodes:
        if tensor in graph_inputs or tensor in inits:
            head += pair
        else:
            after[tensor] += pair
    ordered = list(head)
    for node in g.node:
        ordered.append(node)
        for o in node.output:
            ordered += after.pop(o, [])
    del g.node[:]
    g.node.extend(ordered)
    used = {i for n in g.node for i in n.input}
    kept = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(kept + new_inits)
    return out


def quantize_nvidia(
    fp32_path: str | Path,
    out_path: str | Path,
    calibration: Sequence[np.ndarray],
    input_name: str = "lr",
) -> dict:
    """Write the int8 Q/DQ model of ``fp32_path`` placed by :func:`nvidia_plan`.

    Returns ``{"placement", "rules", "quantized_tensors", "weights", "kept_float"}``.
    """
    import onnx

    proto = onnx.load(str(fp32_path))
    plan = nvidia_plan(proto)
    amax = calibrate_amax(fp32_path, list(plan.activations), calibration, input_name)
    onnx.save(insert_qdq(proto, plan, amax), str(out_path))
    return {
        "placement": PLACEMENT,
        "rules": PLACEMENT_RULES,
        "quantized_tensors": len(plan.activations),
        "weights": len(plan.weights),
        "kept_float": dict(sorted(plan.kept_float.items())),
    }


def qdq_structure(model_or_path) -> dict:
    """Where the Q/DQ pairs of a model are, judged by the placement rules.

    Returns lists of node names: ``softmax_with_quantized_input``, ``scalar_qdq`` (a Q/DQ whose
    data is a constant of at most one element), ``conv_unquantized`` (a Conv input 0 or 1 not
    read through a DequantizeLinear), ``weighted_matmul_unquantized``, ``residual_add_unquantized``
    (an Add of two feature maps whose skip input is float), ``attention_matmul_quantized`` (a
    MatMul reading a softmax through a Q/DQ pair); and counts of Q and DQ nodes.
    """
    import onnx

    proto = (
        onnx.load(str(model_or_path)) if isinstance(model_or_path, (str, Path)) else model_or_path
    )
    g = _Graph(proto)

    def dq(name: str) -> bool:
        node = g.producer.get(name)
        return node is not None and node.op_type == "DequantizeLinear"

    def const(name: str) -> bool:
        node = g.producer.get(name)
        return g.is_const(name) or (
            node is not None and node.op_type in QDQ_OPS and g.is_const(node.input[0])
        )

    out: dict[str, list] = {
        k: []
        for k in (
            "softmax_with_quantized_input",
            "scalar_qdq",
            "conv_unquantized",
            "weighted_matmul_unquantized",
            "residual_add_unquantized",
            "attention_matmul_quantized",
        )
    }
    for node in g.nodes:
        op = node.op_type
        if op == "Softmax":
            src = g.producer.get(node.input[0])
            while src is not None and src.op_type in LAYOUT_OPS:
                src = g.producer.get(src.input[0])
            if src is not None and src.op_type in QDQ_OPS:
                out["softmax_with_quantized_input"].append(node.name)
        elif op in QDQ_OPS and g.is_const(node.input[0]) and g.consts[node.input[0]].size <= 1:
            out["scalar_qdq"].append(node.name)
        elif op == "Conv":
            if not (dq(node.input[0]) and dq(node.input[1])):
                out["conv_unquantized"].append(node.name)
        elif op == "MatMul":
            a, b = node.input[0], node.input[1]
            if g.reads_softmax(a) or g.reads_softmax(b):
                if any(
                    g.producer.get(x) is not None and dq(x) for x in (a, b) if g.reads_softmax(x)
                ):
                    out["attention_matmul_quantized"].append(node.name)
            elif (const(a) or const(b)) and not (dq(a) and dq(b)):
                out["weighted_matmul_unquantized"].append(node.name)
        elif op == "Add":
            data = [x for x in node.input if not const(x)]
            if len(data) == 2:
                skips = [x for x in data if not g.weighted_output(x)] or data
                if not any(dq(x) for x in skips):
                    out["residual_add_unquantized"].append(node.name)
    out["quantize_linear"] = sum(n.op_type == "QuantizeLinear" for n in g.nodes)
    out["dequantize_linear"] = sum(n.op_type == "DequantizeLinear" for n in g.nodes)
    return out


__all__ = [
    "PLACEMENT",
    "PLACEMENT_RULES",
    "QDQPlan",
    "nvidia_plan",
    "calibrate_amax",
    "quantize_weights",
    "insert_qdq",
    "quantize_nvidia",
    "qdq_structure",
]
