"""ONNX export (opset 17 or 18, dynamic H/W) for onnxruntime and TensorRT, plus an int8 QDQ variant.

* :func:`export_onnx` converts ``lr -> {"sr": model(lr)}`` with tf2onnx (the converter behind
  ``model.export(format="onnx")``) with an explicit input signature, names the dynamic axes
  ``batch``/``height``/``width``, and validates the graph with ``onnx.checker`` (full check).
* :func:`tensorrt_problems` proves the graph is acceptable to TensorRT's ONNX parser without a GPU:
  every node's op type is in :data:`TENSORRT_ONNX_OPS` (the ops supported by onnx-tensorrt since
  TensorRT 8.4, Jetson JetPack 5 and later), never ``Einsum``, and the parser's restrictions that
  matter here hold (Conv weights, Slice/Squeeze/Unsqueeze axes are initializers; Q/DQ zero points
  are 0 and int8, i.e. symmetric, as TensorRT's explicit quantization requires).
* :func:`quantize_qdq` makes the int8 variant: onnxruntime ``quantize_static`` in
  ``QuantFormat.QDQ`` with symmetric int8 activations, per-channel symmetric int8 weights,
  calibrated on real MR slices. TensorRT 10/11 read these Q/DQ pairs as explicit quantization.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from keras_seran.config import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET  # noqa: F401  (public names)
from keras_seran.config import ONNX_VARIANTS, TENSORRT8_MAX_OPSET, check_choices, check_opset
from keras_seran.contract import INPUT_NAME
from keras_seran.errors import ExportCheckError
from keras_seran.export.savedmodel import input_spec, serving_fn

# Opsets and variants are settings of ExportConfig (keras_seran.config), checked there.
VARIANTS: tuple[str, ...] = ONNX_VARIANTS
PRECISION = {"float32": "float32", "int8": "int8"}

#: ONNX op types that TensorRT's ONNX parser supports (onnx-tensorrt ``docs/operators.md``,
#: TensorRT 8.4+; restrictions that apply to this model are checked separately). ``Einsum`` is
#: deliberately absent: the parser handles only simple equations and it is slow on Jetson.
TENSORRT_ONNX_OPS: frozenset[str] = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast Ceil
Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DepthToSpace
DequantizeLinear Div Dropout Elu Equal Erf Exp Expand EyeLike Flatten Floor Gather GatherElements
GatherND Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GRU HardSigmoid
Identity If ImageScaler InstanceNormalization IsNaN LeakyRelu Less LessOrEqual Log LogSoftmax Loop
LRN LSTM LpNormalization LpPool MatMul Max MaxPool Mean Min Mul Neg Not Or Pad ParametricSoftplus
Pow PRelu QuantizeLinear Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean
ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize RNN Round ScaledTanh Scan
Scatter ScatterElements ScatterND Selu Shape Sigmoid Sign Sin Sinh Size Slice Softmax Softplus
Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh ThresholdedRelu Tile TopK Transpose
Unsqueeze Upsample Where Xor
""".split())

FORBIDDEN_OPS: frozenset[str] = frozenset({"Einsum"})

#: (op type, input index) pairs that TensorRT's parser wants as initializers/constants.
_CONSTANT_INPUTS = {("Conv", 1), ("ConvTranspose", 1), ("Slice", 3), ("Squeeze", 1),
                    ("Unsqueeze", 1)}


def check_variants(variants: Iterable[str]) -> list[str]:
    """The ONNX variants asked for, in ``VARIANTS`` order; ValueError naming unknown ones."""
    return list(check_choices("ONNX variants", variants, VARIANTS))


def _quiet_tf2onnx():
    for name in ("tf2onnx", "tf2onnx.tfonnx", "tf2onnx.optimizer", "tf2onnx.shape_inference"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _name_dynamic_axes(proto) -> None:
    """Give the dynamic axes readable names: input (batch, height, width, C), output
    (batch, out_height, out_width, C)."""
    for values, names in ((proto.graph.input, ("batch", "height", "width")),
                          (proto.graph.output, ("batch", "out_height", "out_width"))):
        for v in values:
            dims = v.type.tensor_type.shape.dim
            for d, n in zip(dims, names):
                if not d.HasField("dim_value"):
                    d.dim_param = n


def tensorrt_requirement(opset: int) -> str:
    """The TensorRT releases that parse an ONNX graph of ``opset`` (for the bundle's notes)."""
    if int(opset) <= TENSORRT8_MAX_OPSET:
        return "TensorRT 8.5 or newer (JetPack 5 and 6)"
    return (f"TensorRT 10 or newer (JetPack 6.1+): TensorRT 8.x parses ONNX opsets up to "
            f"{TENSORRT8_MAX_OPSET}; export with --opset {TENSORRT8_MAX_OPSET} for it")


def export_onnx(model, path: str | Path, opset: int = DEFAULT_OPSET) -> dict:
    """Write ``model`` as ONNX (input ``lr`` (batch, height, width, 1) float32, output ``sr``) and
    check it with ``onnx.checker`` and :func:`assert_tensorrt_compatible`. Returns a description.
    """
    import onnx
    import tensorflow as tf
    import tf2onnx

    check_opset(opset)
    _quiet_tf2onnx()
    spec = [input_spec(model)]
    fn = tf.function(serving_fn(model), input_signature=spec)
    proto, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=int(opset))
    _name_dynamic_axes(proto)
    proto.producer_name = "keras_seran"
    path = Path(path)
    onnx.save(proto, str(path))
    onnx.checker.check_model(str(path), full_check=True)
    ops = assert_tensorrt_compatible(proto, where=path)
    return {"file": path.name, "opset": int(opset), "ops": ops, **describe_io(proto)}


def describe_io(proto) -> dict:
    def entry(v):
        t = v.type.tensor_type
        return {"name": v.name,
                "shape": [d.dim_value if d.HasField("dim_value") else d.dim_param
                          for d in t.shape.dim],
                "dtype": _onnx_dtype(t.elem_type)}

    return {"input": entry(proto.graph.input[0]), "output": entry(proto.graph.output[0])}


def _onnx_dtype(elem_type: int) -> str:
    import onnx

    return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type)).name


def _load(model_or_path):
    import onnx

    if isinstance(model_or_path, (str, Path)):
        return onnx.load(str(model_or_path))
    return model_or_path


def onnx_op_types(model_or_path) -> list[str]:
    """Sorted op types of the main graph and of any subgraphs."""
    proto = _load(model_or_path)
    types: set[str] = set()

    def walk(graph):
        for node in graph.node:
            types.add(node.op_type)
            for attr in node.attribute:
                if attr.g is not None and attr.g.node:
                    walk(attr.g)
                for g in attr.graphs:
                    walk(g)

    walk(proto.graph)
    return sorted(types)


def tensorrt_problems(model_or_path) -> list[str]:
    """What would stop TensorRT's ONNX parser from taking this graph (empty list: acceptable)."""
    from onnx import numpy_helper

    proto = _load(model_or_path)
    g = proto.graph
    problems = []
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < MIN_OPSET:
        problems.append(f"opset {opset} < {MIN_OPSET}")
    for op in onnx_op_types(proto):
        if op in FORBIDDEN_OPS:
            problems.append(f"forbidden op {op}")
        elif op not in TENSORRT_ONNX_OPS:
            problems.append(f"op {op} is not in the TensorRT ONNX op list")
    inits = {t.name: t for t in g.initializer}
    constants = set(inits) | {o for n in g.node if n.op_type == "Constant" for o in n.output}
    producer = {o: n for n in g.node for o in n.output}
    for node in g.node:
        for op, idx in _CONSTANT_INPUTS:
            if node.op_type == op and len(node.input) > idx and node.input[idx]:
                name = node.input[idx]
                src = producer.get(name)
                if name in constants:
                    continue
                if (src is not None and src.op_type == "DequantizeLinear"
                        and src.input[0] in constants):
                    continue
                problems.append(f"{node.op_type} {node.name!r}: input {idx} ({name}) is not an "
                                "initializer")
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 2:
            zp = inits.get(node.input[2])
            if zp is None:
                problems.append(f"{node.op_type} {node.name!r}: zero point is not an initializer")
                continue
            arr = numpy_helper.to_array(zp)
            if arr.dtype != np.int8:
                problems.append(f"{node.op_type} {node.name!r}: zero point dtype {arr.dtype}, "
                                "TensorRT needs int8")
            if np.any(arr != 0):
                problems.append(f"{node.op_type} {node.name!r}: non-zero zero point (TensorRT "
                                "supports symmetric quantization only)")
    return problems


def assert_tensorrt_compatible(model_or_path, where: str | Path | None = None) -> list[str]:
    """Raise :class:`ExportCheckError` listing :func:`tensorrt_problems`; return the op types."""
    problems = tensorrt_problems(model_or_path)
    if problems:
        if where is None and isinstance(model_or_path, (str, Path)):
            where = model_or_path
        prefix = f"{where}: " if where is not None else ""
        raise ExportCheckError(f"{prefix}ONNX graph not acceptable to TensorRT: "
                               f"{'; '.join(problems[:10])}")
    return onnx_op_types(model_or_path)


# --------------------------------------------------------------------------------------------
# int8 QDQ


class _Calibration:
    """onnxruntime CalibrationDataReader over LR slices (1, h, w, 1)."""

    def __init__(self, inputs: Sequence[np.ndarray], name: str = INPUT_NAME):
        self._items = [{name: np.asarray(x, np.float32)} for x in inputs]
        self._it = iter(self._items)

    def get_next(self):
        return next(self._it, None)

    def rewind(self):
        self._it = iter(self._items)


#: Ops that only move or reshape data: a softmax's output passes through them unchanged in value.
_LAYOUT_OPS = {"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Identity", "Flatten", "Cast"}


def float_attention_nodes(model_or_path) -> list[str]:
    """Names of the nodes that must stay float in an int8 model: every Softmax, the reshapes and
    transposes its output passes through, and the products that consume it."""
    proto = _load(model_or_path)
    consumers: dict[str, list] = {}
    for node in proto.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    softmaxes = [n for n in proto.graph.node if n.op_type == "Softmax"]
    found = {n.name for n in softmaxes}
    frontier = [o for n in softmaxes for o in n.output]
    while frontier:
        for node in consumers.get(frontier.pop(), []):
            if node.name in found:
                continue
            found.add(node.name)
            if node.op_type in _LAYOUT_OPS:
                frontier.extend(node.output)
    return sorted(found)


def quantize_qdq(fp32_path: str | Path, out_path: str | Path,
                 calibration: Sequence[np.ndarray], per_channel: bool = True,
                 op_types_to_quantize: Sequence[str] | None = None) -> dict:
    """Static int8 QDQ quantization of an ONNX model, calibrated on ``calibration`` LR slices.

    Symmetric int8 activations (zero point 0) and per-channel symmetric int8 weights (TensorRT's
    explicit-quantization requirements), MinMax calibration. ``op_types_to_quantize`` defaults to
    every op type onnxruntime's QDQ quantizer handles. The softmaxes and the products that
    consume them (:func:`float_attention_nodes`) stay float: an attention map over H*W positions
    has entries of about 1 / (H*W), far below one int8 step of its [0, 1] range, so quantizing
    it would zero almost all of the SERA pooling weights.
    """
    import tempfile

    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    if not calibration:
        raise ValueError("int8 QDQ quantization needs calibration MR slices")
    fp32_path, out_path = Path(fp32_path), Path(out_path)
    with tempfile.TemporaryDirectory(prefix="keras_seran_qdq_") as tmp:
        src = fp32_path
        try:  # shape inference + graph clean-up, as onnxruntime recommends before quantizing
            from onnxruntime.quantization.shape_inference import quant_pre_process
            pre = Path(tmp) / "pre.onnx"
            quant_pre_process(str(fp32_path), str(pre))
            src = pre
        except Exception:  # pragma: no cover - pre-processing is an optimisation only
            src = fp32_path
        keep_float = float_attention_nodes(src)
        quantize_static(str(src), str(out_path), _Calibration(calibration),
                        quant_format=QuantFormat.QDQ, per_channel=per_channel,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax,
                        op_types_to_quantize=list(op_types_to_quantize) if op_types_to_quantize
                        else None,
                        nodes_to_exclude=keep_float,
                        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True,
                                       # biases stay float: TensorRT takes no int32 Q/DQ
                                       "QuantizeBias": False})
    import onnx

    proto = onnx.load(str(out_path))
    _name_dynamic_axes(proto)  # shape inference renames them
    proto.producer_name = "keras_seran"
    onnx.save(proto, str(out_path))
    onnx.checker.check_model(str(out_path), full_check=True)
    ops = assert_tensorrt_compatible(proto, where=out_path)
    n_q = sum(n.op_type == "QuantizeLinear" for n in proto.graph.node)
    n_dq = sum(n.op_type == "DequantizeLinear" for n in proto.graph.node)
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    return {"file": out_path.name, "opset": int(opset), "ops": ops, **describe_io(proto),
            "quantization": {"format": "QDQ", "activations": "int8 symmetric per-tensor",
                             "weights": "int8 symmetric "
                                        + ("per-channel" if per_channel else "per-tensor"),
                             "calibration": "MinMax", "calibration_slices": len(calibration),
                             "float_nodes": keep_float,
                             "quantize_linear": n_q, "dequantize_linear": n_dq}}


class OnnxRunner:
    """Run an ONNX model with onnxruntime (CPU by default) on (1, h, w, 1) float32 inputs."""

    def __init__(self, path: str | Path, num_threads: int | None = 2,
                 providers: Sequence[str] = ("CPUExecutionProvider",)):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if num_threads:
            opts.intra_op_num_threads = int(num_threads)
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        # no busy-waiting threads: better on a shared CPU and on small edge boards
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), sess_options=opts, providers=list(providers))
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, lr: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.asarray(lr, np.float32)})[0]


__all__ = ["DEFAULT_OPSET", "MIN_OPSET", "MAX_OPSET", "TENSORRT8_MAX_OPSET", "tensorrt_requirement", "TENSORRT_ONNX_OPS", "FORBIDDEN_OPS",
           "VARIANTS", "check_opset", "export_onnx", "quantize_qdq", "float_attention_nodes",
           "tensorrt_problems", "assert_tensorrt_compatible", "onnx_op_types", "OnnxRunner"]
