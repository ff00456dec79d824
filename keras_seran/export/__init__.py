"""Export for edge MR consoles: SavedModel, LiteRT (TFLite), ONNX and TensorRT, each verified.

The one call most users need is :func:`export_bundle` (or ``keras-seran export``)::

    from keras_seran.export import export_bundle
    manifest = export_bundle(model, "bundle_x2", formats="savedmodel,tflite,onnx,tensorrt")

Submodules: :mod:`.savedmodel`, :mod:`.litert`, :mod:`.onnx_export`, :mod:`.tensorrt_engine`,
:mod:`.parity`, :mod:`.formats` (one exporter per format, the registry), :mod:`.manifest`,
:mod:`.bundle` (the driver), :mod:`.command` (the CLI). Names below are imported on first use,
so ``import keras_seran.export`` stays cheap (no TensorFlow, ONNX or TensorRT import).
"""

from __future__ import annotations

from keras_seran._lazy import lazy_names
from keras_seran.errors import ExportCheckError as ExportCheckError

_LAZY = {
    # bundle
    "export_bundle": ".bundle",
    "parse_formats": ".bundle",
    # formats (the registry) and the manifest
    "FORMATS": ".formats",
    "FORMAT_REGISTRY": ".formats",
    "verify_hashes": ".manifest",
    "load_manifest": ".manifest",
    # savedmodel
    "export_savedmodel": ".savedmodel",
    "SavedModelRunner": ".savedmodel",
    # litert
    "export_tflite": ".litert",
    "convert_saved_model": ".litert",
    "tflite_op_names": ".litert",
    "assert_builtin_only": ".litert",
    "LiteRTRunner": ".litert",
    # onnx
    "export_onnx": ".onnx_export",
    "quantize_qdq": ".onnx_export",
    "OnnxRunner": ".onnx_export",
    "tensorrt_problems": ".onnx_export",
    "assert_tensorrt_compatible": ".onnx_export",
    "TENSORRT_ONNX_OPS": ".onnx_export",
    # tensorrt
    "build_engine": ".tensorrt_engine",
    "tensorrt_status": ".tensorrt_engine",
    "trtexec_command": ".tensorrt_engine",
    "build_engines_script": ".tensorrt_engine",
    "TensorRTRunner": ".tensorrt_engine",
    "TensorRTUnavailable": ".tensorrt_engine",
    # parity
    "parity_report": ".parity",
    "parity_markdown": ".parity",
    "parity_pairs": ".parity",
    "calibration_inputs": ".parity",
    "load_mr_slices": ".parity",
}


__getattr__, __dir__ = lazy_names(__name__, _LAZY)


__all__ = sorted([*_LAZY, "ExportCheckError"])
