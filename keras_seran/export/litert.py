"""LiteRT (TFLite) export with builtin ops only, in four precisions, run with ``ai-edge-litert``.

Variants (``VARIANTS``):

    float32        no optimisation
    float16        fp16 weights (dequantised at load; fp32 compute on CPU, fp16 on GPU delegates)
    dynamic_int8   int8 weights, float activations (dynamic-range quantisation)
    int8           full-integer: int8 weights and activations, calibrated on real MR slices
                   (``representative_dataset``); the interface stays float32 unless
                   ``int8_io=True`` (then the input/output are int8 with the recorded scale and
                   zero point). Everything is int8 here, the SERA softmaxes included (builtin
                   int8 softmax, output step 1/256): the attention over H*W positions, whose
                   entries are ~1/(H*W), mostly rounds to 0. On the bundled x2 weights this
                   costs about 0.18 dB (0.10-0.18 dB over x2-x4); the ONNX int8 model keeps the
                   softmax logits and attention products float (0.09-0.14 dB), and
                   ``dynamic_int8`` (about 0.01 dB) keeps every activation float

Every conversion goes through a SavedModel with a (1, H, W, 1) signature (H, W fixed when an
input size is asked for, dynamic otherwise) and ``tf.lite.TFLiteConverter.from_saved_model`` with
``supported_ops = [TFLITE_BUILTINS]`` (``[TFLITE_BUILTINS_INT8]`` for full-int8): no
SELECT_TF_OPS, so no Flex ops (which Keras's own LiteRT exporter enables by default). The op list
of every file is read back from the flatbuffer and checked (:func:`assert_builtin_only`).
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from keras_seran.config import LITERT_VARIANTS, check_choices
from keras_seran.contract import INPUT_NAME, SIGNATURE
from keras_seran.errors import ExportCheckError
from keras_seran.export.parity import fit_to_size
from keras_seran.export.savedmodel import export_savedmodel
from keras_seran.runtime.runners import LiteRTRunner  # noqa: F401  (public name, here too)

VARIANTS: tuple[str, ...] = LITERT_VARIANTS

#: Precision class of each variant, for the parity tolerances (:data:`parity.TOLERANCES`).
PRECISION = {
    "float32": "float32",
    "float16": "float16",
    "dynamic_int8": "dynamic_int8",
    "int8": "int8",
}


def check_variants(variants: Iterable[str]) -> list[str]:
    """The LiteRT variants asked for, in ``VARIANTS`` order; ValueError naming unknown ones."""
    return list(check_choices("LiteRT variants", variants, VARIANTS))


def _representative(inputs: Sequence[np.ndarray], input_size: tuple[int, int] | None):
    arrays = []
    for x in inputs:
        x = np.asarray(x, np.float32)
        if x.ndim == 2:
            x = x[None, :, :, None]
        if input_size is not None:
            x = fit_to_size(x[0], input_size)[None]
        arrays.append(x)

    def gen():
        for x in arrays:
            yield {INPUT_NAME: x}

    return gen


def convert_saved_model(
    saved_model_dir: str | Path,
    variant: str = "float32",
    representative: Sequence[np.ndarray] | None = None,
    input_size: tuple[int, int] | None = None,
    int8_io: bool = False,
) -> bytes:
    """Convert the ``serving_default`` signature of a SavedModel to a .tflite flatbuffer.

    ``representative`` (LR inputs (1, h, w, 1), real MR slices normalised as the input contract
    says) is required for ``variant="int8"``; with ``input_size`` they are centre-cropped/padded
    to it.
    """
    import tensorflow as tf

    (variant,) = check_variants([variant])
    if variant == "int8" and not representative:
        raise ValueError("full-integer int8 needs representative MR slices for calibration")
    conv = tf.lite.TFLiteConverter.from_saved_model(
        str(saved_model_dir), signature_keys=[SIGNATURE]
    )
    ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if variant == "float16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    elif variant == "dynamic_int8":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    elif variant == "int8":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = _representative(representative, input_size)
        ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
    conv.target_spec.supported_ops = ops
    conv.allow_custom_ops = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the calibrator's own tf.lite.Interpreter deprecation
        return conv.convert()


# --------------------------------------------------------------------------------------------
# op list


def tflite_op_names(model: str | Path | bytes) -> list[str]:
    """Sorted names of the operators in a .tflite flatbuffer (custom ops by their custom code,
    e.g. ``FlexConv2D``). Read from the flatbuffer, so it works on models with Flex ops too."""
    data = model if isinstance(model, (bytes, bytearray)) else Path(model).read_bytes()
    try:
        from tensorflow.lite.python import schema_py_generated as schema
    except ImportError:  # pragma: no cover - fall back to the interpreter's view
        from ai_edge_litert.interpreter import Interpreter

        it = Interpreter(model_content=bytes(data))
        return sorted({d["op_name"] for d in it._get_ops_details()})
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    m = schema.Model.GetRootAsModel(bytearray(data), 0)
    out = set()
    for i in range(m.OperatorCodesLength()):
        oc = m.OperatorCodes(i)
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        name = names.get(code, f"BUILTIN_{code}")
        if name == "CUSTOM":
            custom = oc.CustomCode()
            name = custom.decode() if isinstance(custom, bytes) else str(custom or "CUSTOM")
            name = name if name != "CUSTOM" else "CUSTOM"
            out.add(name if name.startswith("Flex") else f"CUSTOM:{name}")
        else:
            out.add(name)
    return sorted(out)


def non_builtin_ops(op_names: Iterable[str]) -> list[str]:
    """The ops that are not LiteRT builtins: Flex (TF select) ops and custom ops."""
    return sorted(
        n for n in op_names if n.startswith("Flex") or n.startswith("CUSTOM") or n == "FlexDelegate"
    )


def assert_builtin_only(model: str | Path | bytes) -> list[str]:
    """Raise :class:`ExportCheckError` when the .tflite has Flex/custom ops; return its op list."""
    ops = tflite_op_names(model)
    bad = non_builtin_ops(ops)
    if bad:
        where = "" if isinstance(model, (bytes, bytearray)) else f"{model}: "
        raise ExportCheckError(f"{where}non-builtin LiteRT ops {bad} (needs the Flex delegate)")
    return ops


# --------------------------------------------------------------------------------------------
# export and run


def export_tflite(
    model,
    out_dir: str | Path,
    variants: Iterable[str] = VARIANTS,
    representative: Sequence[np.ndarray] | None = None,
    input_size: tuple[int, int] | None = None,
    int8_io: bool = False,
    basename: str | None = None,
) -> dict[str, dict]:
    """Write one .tflite per variant into ``out_dir``; return ``{variant: info}``.

    ``info``: ``file`` (name in ``out_dir``), ``ops`` (checked builtin-only), ``input`` and
    ``output`` (name, shape signature, dtype, quantization scale/zero point).
    """
    variants = check_variants(variants)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    basename = basename or model.name
    channels = model.inputs[0].shape[-1]
    h, w = input_size if input_size is not None else (None, None)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="keras_seran_litert_") as tmp:
        sm = Path(tmp) / "saved_model"
        export_savedmodel(model, sm, shape=(1, h, w, channels))
        for variant in variants:
            data = convert_saved_model(
                sm, variant, representative, input_size, int8_io=int8_io and variant == "int8"
            )
            path = out_dir / f"{basename}_{variant}.tflite"
            path.write_bytes(data)
            ops = assert_builtin_only(path)
            results[variant] = {
                "file": path.name,
                "ops": ops,
                **describe_io(path),
                "int8_io": bool(int8_io and variant == "int8"),
            }
    return results


def _io_entry(d: dict) -> dict:
    scale, zero = d.get("quantization", (0.0, 0))
    return {
        "name": d["name"],
        "shape": [int(v) for v in d["shape_signature"]],
        "dtype": np.dtype(d["dtype"]).name,
        "quantization": {"scale": float(scale), "zero_point": int(zero)} if scale else None,
    }


def describe_io(path: str | Path) -> dict:
    """Input/output names, shape signatures (-1 = dynamic), dtypes and quantization of a .tflite."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    return {
        "input": _io_entry(it.get_input_details()[0]),
        "output": _io_entry(it.get_output_details()[0]),
        "signatures": {
            k: {"inputs": list(v["inputs"]), "outputs": list(v["outputs"])}
            for k, v in it.get_signature_list().items()
        },
    }
