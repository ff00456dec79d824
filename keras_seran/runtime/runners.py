"""Run one exported artifact in its own runtime: LiteRT, onnxruntime, TensorRT.

Each runner maps a (B, h, w, 1) float32 batch in the input contract's normalised units
(:mod:`keras_seran.contract`) to (B, h*s, w*s, 1) float32. The LiteRT files take batch 1 (the
runner loops) and, when exported with a fixed input size, exactly that size (a ValueError
otherwise: :class:`keras_seran.runtime.bundle.BundleArtifact` says which size to tile to). The
runtimes are imported when a runner is made, never at load: this module needs numpy only, so
the export (parity) and the console (``keras-seran predict --model BUNDLE``) share it without
TensorFlow or Keras.

Raises :class:`~keras_seran.errors.RuntimeUnavailable` when a runtime (or TensorRT's GPU) is
missing.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from keras_seran.errors import RuntimeUnavailable

#: runtime name -> the Python module it needs, and the pip package that provides it
RUNTIME_MODULES: dict[str, tuple[str, str]] = {
    "litert": ("ai_edge_litert", "ai-edge-litert"),
    "onnxruntime": ("onnxruntime", "onnxruntime"),
    "tensorrt": ("tensorrt", "tensorrt"),
}


def is_installed(runtime: str) -> bool:
    """Whether ``runtime``'s Python module can be imported here (without importing it)."""
    module = RUNTIME_MODULES[runtime][0]
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(runtime: str) -> None:
    """RuntimeUnavailable naming the package to install when ``runtime`` is not installed."""
    if not is_installed(runtime):
        module, package = RUNTIME_MODULES[runtime]
        how = (
            "install it with JetPack (python3-libnvinfer) or NVIDIA's tensorrt wheel"
            if runtime == "tensorrt"
            else f"pip install {package} (or keras-seran[runtime])"
        )
        raise RuntimeUnavailable(f"runtime {runtime} is not installed (no module {module}): {how}")


def default_threads() -> int:
    """CPU threads a runner uses when none are asked for: the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class LiteRTRunner:
    """Run a .tflite with ``ai_edge_litert.interpreter.Interpreter`` on (B, h, w, 1) float32.

    Batches are run one image at a time (the files take batch 1). Resizes a dynamic input as
    needed; quantizes/dequantizes an int8 interface so that callers always pass and get float32
    in the contract's normalised units. ValueError when a fixed-size file gets another size.
    """

    def __init__(self, path: str | Path, num_threads: int | None = 2):
        require("litert")
        from ai_edge_litert.interpreter import Interpreter

        self.path = Path(path)
        self.interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self._shape = None

    def __call__(self, lr: np.ndarray) -> np.ndarray:
        x = np.asarray(lr, np.float32)
        if x.ndim == 4 and x.shape[0] > 1:
            return np.concatenate([self(x[i : i + 1]) for i in range(x.shape[0])])
        it = self.interpreter
        if self._shape != x.shape:
            sig = [int(v) for v in self.input["shape_signature"]]
            fixed = [s for s in sig if s != -1]
            if len(sig) != x.ndim or any(s not in (-1, v) for s, v in zip(sig, x.shape)):
                raise ValueError(
                    f"{self.path.name}: input shape {x.shape} does not fit the "
                    f"model's {sig} (-1 = any)"
                )
            if len(fixed) != len(sig):
                it.resize_tensor_input(self.input["index"], list(x.shape), strict=True)
            it.allocate_tensors()
            self._shape = x.shape
        if np.dtype(self.input["dtype"]) == np.int8:
            scale, zero = self.input["quantization"]
            x = np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)
        it.set_tensor(self.input["index"], x)
        it.invoke()
        y = np.array(it.get_tensor(self.output["index"]))
        if np.dtype(self.output["dtype"]) == np.int8:
            scale, zero = self.output["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        return y.astype(np.float32, copy=False)


class OnnxRunner:
    """Run an ONNX model with onnxruntime (CPU by default) on (B, h, w, 1) float32 inputs."""

    def __init__(
        self,
        path: str | Path,
        num_threads: int | None = 2,
        providers: Sequence[str] = ("CPUExecutionProvider",),
    ):
        require("onnxruntime")
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


# --------------------------------------------------------------------------------------------
# TensorRT (needs a GPU, TensorRT >= 8.5 for the name-based tensor API and execute_async_v3,
# and torch for CUDA device buffers)


class TensorRTRunner:
    """Run a serialized engine (.engine / .plan) on (B, h, w, 1) float32; picks a profile that
    fits (ValueError when none does).

    Uses the name-based tensor API (``set_input_shape``, ``set_tensor_address``) and
    ``execute_async_v3``, which exist from TensorRT 8.5 (JetPack 5) on; torch provides the CUDA
    buffers and stream. RuntimeUnavailable without TensorRT, torch or a GPU.
    """

    def __init__(self, engine_path: str | Path):
        require("tensorrt")
        try:
            import tensorrt as trt
            import torch
        except ImportError as exc:
            raise RuntimeUnavailable(
                f"running a TensorRT engine from Python needs tensorrt and "
                f"torch (CUDA) for device buffers ({exc}); use trtexec "
                "--loadEngine instead"
            ) from exc
        if not torch.cuda.is_available():
            raise RuntimeUnavailable("TensorRT engines need a CUDA GPU; torch sees none")
        self._trt, self._torch = trt, torch
        self.path = Path(engine_path)
        self.logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(self.logger)
        self.engine = runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise ValueError(
                f"{engine_path}: could not deserialize the engine (built by "
                "another TensorRT version or for another GPU?)"
            )
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input_name = next(
            n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT
        )
        self.output_name = next(
            n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT
        )
        self.stream = torch.cuda.Stream()
        self._profile = None

    def _find_profile(self, shape) -> int | None:
        for i in range(self.engine.num_optimization_profiles):
            mn, _, mx = self.engine.get_tensor_profile_shape(self.input_name, i)
            if all(a <= s <= b for a, s, b in zip(mn, shape, mx)):
                return i
        return None

    def __call__(self, lr: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(lr, dtype=np.float32)
        idx = self._find_profile(x.shape)
        if idx is None and len(x) > 1 and self._find_profile((1, *x.shape[1:])) is not None:
            # the bundle's engines take batch 1 (build_engines.sh): one slice at a time
            return np.concatenate([self(x[i : i + 1]) for i in range(len(x))])
        if idx is None:
            raise ValueError(
                f"{self.path.name}: input shape {tuple(x.shape)} fits none of the engine's profiles"
            )
        return self._run(x, idx)

    def _run(self, x: np.ndarray, idx: int) -> np.ndarray:
        torch = self._torch
        if idx != self._profile:
            self.context.set_optimization_profile_async(idx, self.stream.cuda_stream)
            self._profile = idx
        self.context.set_input_shape(self.input_name, tuple(x.shape))
        out_shape = tuple(self.context.get_tensor_shape(self.output_name))
        with torch.cuda.stream(self.stream):  # copies, allocation and the engine on one stream
            xin = torch.from_numpy(x).cuda(non_blocking=False)
            yout = torch.empty(out_shape, dtype=torch.float32, device="cuda")
            self.context.set_tensor_address(self.input_name, xin.data_ptr())
            self.context.set_tensor_address(self.output_name, yout.data_ptr())
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError(f"{self.path.name}: TensorRT execution failed")
        self.stream.synchronize()
        return yout.cpu().numpy()


#: runtime name -> its runner class
RUNNERS = {"litert": LiteRTRunner, "onnxruntime": OnnxRunner, "tensorrt": TensorRTRunner}
