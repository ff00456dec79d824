"""ONNX export (opset 17 or 18, dynamic H/W) for onnxruntime and TensorRT, plus an int8 QDQ variant.

* :func:`export_onnx` converts ``lr -> {"sr": model(lr)}`` with tf2onnx (the converter behind
  ``model.export(format="onnx")``) with an explicit input signature, names the dynamic axes
  ``batch``/``height``/``width``, and validates the graph with ``onnx.checker`` (full check).
* :func:`tensorrt_problems` proves the graph is acceptable to TensorRT's ONNX parser without a GPU:
  every node's op type is in :data:`TENSORRT_ONNX_OPS` (the ops supported by onnx-tensorrt since
  TensorRT 8.4, Jetson JetPack 5 and later), never ``Einsum``, and the parser's restrictions that
  matter here hold (Conv weights, Slice/Squeeze/Unsqueeze axes are initializers; Q/DQ zero points
  are 0 and int8, i.e. symmetric, as TensorRT's explicit quantization requires).
* :func:`export_float16` makes the float16 variant (fp16 inside, float32 interface): the source
  of fp16 engines on a strongly typed TensorRT (11 has no fp16 builder flag).
* :func:`quantize_qdq` makes the int8 variant: Q/DQ pairs placed by TensorRT's recommendations
  (:mod:`keras_seran.export.qdq`), symmetric int8 activations, per-channel symmetric int8
  weights, calibrated on real MR slices. TensorRT 8.6 (``--int8``) and 10/11 (strongly typed)
  read these Q/DQ pairs as explicit quantization.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from keras_seran.config import (  # noqa: F401  (public names)
    DEFAULT_OPSET,
    MAX_OPSET,
    MIN_OPSET,
    ONNX_VARIANTS,
    TENSORRT8_MAX_OPSET,
    check_choices,
    check_opset,
)
from keras_seran.contract import INPUT_NAME
from keras_seran.errors import ExportCheckError
from keras_seran.export.savedmodel import input_spec, serving_fn
from keras_seran.runtime.runners import OnnxRunner  # noqa: F401  (public name, here too)

# Opsets and variants are settings of ExportConfig (keras_seran.config), checked there.
VARIANTS: tuple[str, ...] = ONNX_VARIANTS
#: Precision class of each variant, for the parity tolerances (:data:`parity.TOLERANCES`).
PRECISION = {"float32": "float32", "float16": "float16_compute", "int8": "int8"}

#: ONNX op types that TensorRT's ONNX parser supports (onnx-tensorrt ``docs/operators.md``,
#: TensorRT 8.4+; restrictions that apply to this model are checked separately). ``Einsum`` is
#: deliberately absent: the parser handles only simple equations and it is slow on Jetson.
TENSORRT_ONNX_OPS: frozenset[str] = frozenset(
    """
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast Ceil
Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DepthToSpace
DequantizeLinear Div Dropout Elu Equal Erf Exp Expand EyeLike Flatten Floor Gather GatherElements
GatherND Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GRU HardSigmoid
Identity If ImageScaler InstanceNormalization IsNaN LeakyRelu Less LessOrEqual Log LogSoftmax Loop
LRN LSTM LpNormalization LpPool MatMul Max MaxPool Mean Min Mul Neg Not Or Pad ParametricSoftplus
Pow PRelu QuantizeLinear Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax
ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize RNN Round ScaledTanh
Scan Scatter ScatterElements ScatterND Selu Shape Sigmoid Sign Sin Sinh Size Slice Softmax Softplus
Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh ThresholdedRelu Tile TopK Transpose
Unsqueeze Upsample Where Xor
""".split()
)

FORBIDDEN_OPS: frozenset[str] = frozenset({"Einsum"})

#: (op type, input index) pairs that TensorRT's parser wants as initializers/constants
#: (ReduceMean's axes, an input from opset 18: "must be an initializer" in onnx-tensorrt 10.x).
_CONSTANT_INPUTS = {
    ("Conv", 1),
    ("ConvTranspose", 1),
    ("Slice", 3),
    ("Squeeze", 1),
    ("Unsqueeze", 1),
    ("ReduceMean", 1),
}


def check_variants(variants: Iterable[str]) -> list[str]:
    """The ONNX variants asked for, in ``VARIANTS`` order; ValueError naming unknown ones."""
    return list(check_choices("ONNX variants", variants, VARIANTS))


def _quiet_tf2onnx():
    for name in ("tf2onnx", "tf2onnx.tfonnx", "tf2onnx.optimizer", "tf2onnx.shape_inference"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _name_dynamic_axes(proto) -> None:
    """Give the dynamic axes readable names: input (batch, height, width, C), output
    (batch, out_height, out_width, C)."""
    for values, names in (
        (proto.graph.input, ("batch", "height", "width")),
        (proto.graph.output, ("batch", "out_height", "out_width")),
    ):
        for v in values:
            dims = v.type.tensor_type.shape.dim
            for d, n in zip(dims, names):
                if not d.HasField("dim_value"):
                    d.dim_param = n


def _save_checked(proto, path: Path) -> dict:
    """Name the dynamic axes, save ``proto`` to ``path``, run ONNX's full checker and the
    TensorRT op check; the common part of every ONNX variant's info (file, opset, ops, I/O)."""
    import onnx

    _name_dynamic_axes(proto)
    proto.producer_name = "keras_seran"
    onnx.save(proto, str(path))
    onnx.checker.check_model(str(path), full_check=True)
    ops = assert_tensorrt_compatible(proto, where=path)
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    return {"file": path.name, "opset": int(opset), "ops": ops, **describe_io(proto)}


def tensorrt_requirement(opset: int) -> str:
    """The TensorRT releases that parse an ONNX graph of ``opset`` (for the bundle's notes)."""
    if int(opset) <= TENSORRT8_MAX_OPSET:
        return "TensorRT 8.5 or newer (JetPack 5 and 6)"
    return (
        f"TensorRT 10 or newer (JetPack 6.1+): TensorRT 8.x parses ONNX opsets up to "
        f"{TENSORRT8_MAX_OPSET}; export with --opset {TENSORRT8_MAX_OPSET} for it"
    )


def export_onnx(model, path: str | Path, opset: int = DEFAULT_OPSET) -> dict:
    """Write ``model`` as ONNX (input ``lr`` (batch, height, width, 1) float32, output ``sr``) and
    check it with ``onnx.checker`` and :func:`assert_tensorrt_compatible`. Returns a description.
    """
    import tensorflow as tf
    import tf2onnx

    check_opset(opset)
    _quiet_tf2onnx()
    spec = [input_spec(model)]
    fn = tf.function(serving_fn(model), input_signature=spec)
    proto, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=int(opset))
    return _save_checked(proto, Path(path))


def describe_io(proto) -> dict:
    def entry(v):
        t = v.type.tensor_type
        return {
            "name": v.name,
            "shape": [d.dim_value if d.HasField("dim_value") else d.dim_param for d in t.shape.dim],
            "dtype": _onnx_dtype(t.elem_type),
        }

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
                if (
                    src is not None
                    and src.op_type == "DequantizeLinear"
                    and src.input[0] in constants
                ):
                    continue
                problems.append(
                    f"{node.op_type} {node.name!r}: input {idx} ({name}) is not an initializer"
                )
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 2:
            zp = inits.get(node.input[2])
            if zp is None:
                problems.append(f"{node.op_type} {node.name!r}: zero point is not an initializer")
                continue
            arr = numpy_helper.to_array(zp)
            if arr.dtype != np.int8:
                problems.append(
                    f"{node.op_type} {node.name!r}: zero point dtype {arr.dtype}, "
                    "TensorRT needs int8"
                )
            if np.any(arr != 0):
                problems.append(
                    f"{node.op_type} {node.name!r}: non-zero zero point (TensorRT "
                    "supports symmetric quantization only)"
                )
    return problems


def assert_tensorrt_compatible(model_or_path, where: str | Path | None = None) -> list[str]:
    """Raise :class:`ExportCheckError` listing :func:`tensorrt_problems`; return the op types."""
    problems = tensorrt_problems(model_or_path)
    if problems:
        if where is None and isinstance(model_or_path, (str, Path)):
            where = model_or_path
        prefix = f"{where}: " if where is not None else ""
        raise ExportCheckError(
            f"{prefix}ONNX graph not acceptable to TensorRT: {'; '.join(problems[:10])}"
        )
    return onnx_op_types(model_or_path)


# --------------------------------------------------------------------------------------------
# float16 (strongly typed TensorRT: precision comes from the ONNX types)


def _rms_norm_nodes(proto) -> list[str]:
    """The nodes of every RMS normalisation (x * 1/sqrt(mean(x*x) + eps)): the layer computes it
    in float32 (:func:`keras_seran.layers.sera.rms_normalize`), so the float16 model keeps it so."""
    producer = {o: n for n in proto.graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in proto.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    found: set[str] = set()
    for mean in (n for n in proto.graph.node if n.op_type == "ReduceMean"):
        square = producer.get(mean.input[0])
        if square is None or square.op_type != "Mul" or square.input[0] != square.input[1]:
            continue
        chain, node = [square, mean], mean
        while True:
            nxt = consumers.get(node.output[0], [])
            if len(nxt) != 1 or nxt[0].op_type not in ("Add", "Sqrt", "Reciprocal", "Rsqrt"):
                break
            node = nxt[0]
            chain.append(node)
        chain += [n for n in consumers.get(node.output[0], []) if n.op_type == "Mul"]
        found |= {n.name for n in chain}
    return sorted(found)


def export_float16(fp32_path: str | Path, out_path: str | Path) -> dict:
    """The float16 variant of a float32 ONNX: fp16 weights and compute, float32 ``lr``/``sr``
    (casts at the interface), the RMS normalisations kept float32.

    This is what a strongly typed TensorRT network (TensorRT 11, which has no fp16 builder
    flag, or ``--stronglyTyped`` on 10) builds an fp16 engine from. Converted with
    onnxconverter-common's ``convert_float_to_float16(keep_io_types=True)``.
    """
    import onnx
    from onnxconverter_common import float16

    proto = onnx.load(str(fp32_path))
    keep_float = _rms_norm_nodes(proto)
    with warnings.catch_warnings():  # weights below fp16's 1e-7 floor are clamped to it
        warnings.filterwarnings("ignore", category=UserWarning, module="onnxconverter_common")
        half = float16.convert_float_to_float16(
            proto, keep_io_types=True, node_block_list=keep_float
        )
    return {
        **_save_checked(half, Path(out_path)),
        "compute": "float16 (float32 interface and RMS normalisation)",
        "float32_nodes": keep_float,
    }


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

#: Q/DQ placements :func:`quantize_qdq` knows: ``nvidia`` (TensorRT's recommendations, see
#: :mod:`keras_seran.export.qdq`; the default) and ``onnxruntime`` (``quantize_static``'s default
#: placement with the softmaxes and their products excluded; the placement before it, kept to
#: compare).
PLACEMENTS = ("nvidia", "onnxruntime")


def float_attention_nodes(model_or_path) -> list[str]:
    """Names of every Softmax, the reshapes and transposes its output passes through, and the
    products that consume it (excluded from the ``onnxruntime`` placement)."""
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


def _quantize_onnxruntime(src: Path, out_path: Path, calibration, per_channel: bool) -> dict:
    """onnxruntime ``quantize_static`` (QDQ, symmetric int8, MinMax), softmaxes excluded. Its
    placement puts Q/DQ pairs after every quantizable op and on the softmax logits and scalars."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    keep_float = float_attention_nodes(src)
    quantize_static(
        str(src),
        str(out_path),
        _Calibration(calibration),
        quant_format=QuantFormat.QDQ,
        per_channel=per_channel,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
        nodes_to_exclude=keep_float,
        extra_options={
            "ActivationSymmetric": True,
            "WeightSymmetric": True,
            # biases stay float: TensorRT takes no int32 Q/DQ
            "QuantizeBias": False,
        },
    )
    return {
        "placement": "onnxruntime",
        "rules": "onnxruntime quantize_static default: Q/DQ after every quantizable op "
        "(softmax logits and scalars included), softmaxes and their products "
        "excluded",
        "kept_float": {n: "softmax or its product" for n in keep_float},
    }


def quantize_qdq(
    fp32_path: str | Path,
    out_path: str | Path,
    calibration: Sequence[np.ndarray],
    placement: str = "nvidia",
    per_channel: bool = True,
) -> dict:
    """Static int8 QDQ model of a float32 ONNX, calibrated on ``calibration`` LR slices.

    Symmetric int8 activations (zero point 0, per tensor, max calibration) and symmetric int8
    weights per output channel: TensorRT's explicit-quantization requirements.
    ``placement="nvidia"`` places the Q/DQ pairs by TensorRT's recommendations
    (:mod:`keras_seran.export.qdq`: inputs of Conv and weighted MatMul, skip inputs of residual
    adds; softmax logits, attention products and scalars float); ``"onnxruntime"`` is
    ``quantize_static``'s placement (``per_channel`` applies to it only). Returns a description
    whose ``quantization`` says which placement and why, with :func:`qdq.qdq_structure`.
    """
    import tempfile

    import onnx

    from keras_seran.export import qdq

    if placement not in PLACEMENTS:
        raise ValueError(f"placement must be one of {PLACEMENTS}, got {placement!r}")
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
        if placement == "nvidia":
            how = qdq.quantize_nvidia(src, out_path, calibration)
        else:
            how = _quantize_onnxruntime(src, out_path, calibration, per_channel)
    proto = onnx.load(str(out_path))
    info = _save_checked(proto, Path(out_path))  # shape inference renamed the dynamic axes
    structure = qdq.qdq_structure(proto)
    return {
        **info,
        "quantization": {
            "format": "QDQ",
            "activations": "int8 symmetric per-tensor",
            "weights": "int8 symmetric "
            + ("per-channel" if per_channel or placement == "nvidia" else "per-tensor"),
            "calibration": "max (symmetric)",
            "calibration_slices": len(calibration),
            **how,
            "float_nodes": sorted(how["kept_float"]),
            "structure": structure,
            "quantize_linear": structure["quantize_linear"],
            "dequantize_linear": structure["dequantize_linear"],
        },
    }


__all__ = [
    "DEFAULT_OPSET",
    "MIN_OPSET",
    "MAX_OPSET",
    "TENSORRT8_MAX_OPSET",
    "tensorrt_requirement",
    "TENSORRT_ONNX_OPS",
    "FORBIDDEN_OPS",
    "VARIANTS",
    "PLACEMENTS",
    "check_opset",
    "export_onnx",
    "export_float16",
    "quantize_qdq",
    "float_attention_nodes",
    "tensorrt_problems",
    "assert_tensorrt_compatible",
    "onnx_op_types",
    "OnnxRunner",
]
