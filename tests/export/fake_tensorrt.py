"""Stand-ins for TensorRT releases that record what they are asked (real TensorRT cannot install
here: the PyPI wheels need a CUDA GPU). Their surfaces follow NVIDIA's sources at v8.6.1, v10.3.0
and v11.0 (python/src/infer/pyCore.cpp; samples/common/sampleOptions.cpp for trtexec): an
attribute or trtexec option that a release lacks is missing here too, so code that asks for it
fails as it would on that release."""

from __future__ import annotations

import enum
import json
import sys
import types
from pathlib import Path

RELEASES = ("8.6.1", "10.3.0", "11.0.0")

#: Python API per release: BuilderFlag members and NetworkDefinitionCreationFlag members.
BUILDER_FLAGS = {
    8: ("FP16", "INT8", "REFIT", "STRICT_TYPES"),
    10: ("FP16", "BF16", "INT8", "REFIT"),
    11: ("REFIT", "TF32", "DEBUG"),
}
NETWORK_FLAGS = {
    8: ("EXPLICIT_BATCH", "EXPLICIT_PRECISION"),
    10: ("EXPLICIT_BATCH", "STRONGLY_TYPED"),
    11: ("STRONGLY_TYPED",),
}

#: trtexec build options per release (the ones a bundle's script may use).
_SHAPES = ("--onnx", "--saveEngine", "--minShapes", "--optShapes", "--maxShapes", "--memPoolSize")
TRTEXEC_OPTIONS = {
    8: (*_SHAPES, "--fp16", "--int8", "--best"),
    10: (*_SHAPES, "--fp16", "--bf16", "--int8", "--best", "--stronglyTyped"),
    11: (*_SHAPES, "--stronglyTyped"),
}


def _major(version: str) -> int:
    return min(int(version.split(".")[0]), 11) if int(version.split(".")[0]) >= 10 else 8


def make_tensorrt(version: str, log: list) -> types.ModuleType:
    """A ``tensorrt`` module of ``version`` whose calls are appended to ``log`` as tuples."""
    major = _major(version)
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.float16, trt.float32 = "float16", "float32"
    trt.BuilderFlag = enum.IntEnum("BuilderFlag", BUILDER_FLAGS[major], start=0)
    trt.NetworkDefinitionCreationFlag = enum.IntEnum(
        "NetworkDefinitionCreationFlag", NETWORK_FLAGS[major], start=0
    )
    trt.MemoryPoolType = enum.IntEnum("MemoryPoolType", ("WORKSPACE",), start=0)

    class Logger:
        ERROR, WARNING, INFO = 1, 2, 3

        def __init__(self, severity=2):
            self.severity = severity

    class Tensor:
        def __init__(self, dtype):
            self.dtype = dtype

    class Layer:
        def __init__(self, dtype):
            self.num_outputs = 1
            self._out = Tensor(dtype)

        def get_output(self, i):
            return self._out

    class Network:
        def __init__(self, flags):
            self.flags = flags
            self.layers = []

        @property
        def num_layers(self):
            return len(self.layers)

        def get_layer(self, i):
            return self.layers[i]

    class OnnxParser:
        num_errors = 0

        def __init__(self, network, logger):
            self.network = network

        def parse_from_file(self, path):
            import onnx

            proto = onnx.load(str(path))
            half = any(t.data_type == onnx.TensorProto.FLOAT16 for t in proto.graph.initializer)
            self.network.layers = [
                Layer(trt.float16 if half else trt.float32) for _ in proto.graph.node
            ]
            log.append(("parse", Path(path).name))
            return True

    class Profile:
        def set_shape(self, name, mn, opt, mx):
            log.append(("profile", name, tuple(mn), tuple(opt), tuple(mx)))

    class Config:
        def set_memory_pool_limit(self, pool, size):
            log.append(("memory_pool", pool.name, size))

        def set_flag(self, flag):
            log.append(("set_flag", trt.BuilderFlag(flag).name))

        def add_optimization_profile(self, profile):
            log.append(("add_profile",))

    class Builder:
        def __init__(self, logger):
            pass

        def create_network(self, flags=0):
            names = [f.name for f in trt.NetworkDefinitionCreationFlag if flags & (1 << f)]
            log.append(("create_network", tuple(names)))
            return Network(flags)

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            log.append(("build",))
            return b"fake engine"

    trt.Logger, trt.Builder, trt.OnnxParser = Logger, Builder, OnnxParser
    return trt


FAKE_TRTEXEC = r'''#!{python}
"""Fake trtexec {version}: records its arguments in $FAKE_TRTEXEC_LOG (one JSON list per call),
rejects options that release lacks ("Unknown option"), writes --saveEngine."""
import json, os, sys
options = {options!r}
args = sys.argv[1:]
if args == ["--help"]:
    if not os.environ.get("FAKE_TRTEXEC_NO_VERSION"):
        print("&&&& RUNNING TensorRT.trtexec [TensorRT v{number}] # trtexec --help")
    for opt in options:
        print(f"  {{opt}}{{' ' * (34 - len(opt))}}option of this release")
    for i in range(40000):   # the real help text is long: more than a pipe buffer here
        print(f"  (help text line {{i}})")
    sys.exit(0)
with open(os.environ["FAKE_TRTEXEC_LOG"], "a") as log:
    log.write(json.dumps(args) + "\n")
values = dict(a.split("=", 1) if "=" in a else (a, "") for a in args)
unknown = [a for a in values if a not in options]
if unknown:
    print("Unknown option: " + " ".join(unknown), file=sys.stderr)
    sys.exit(1)
if not os.path.isfile(values["--onnx"]):
    print("Cannot open ONNX file " + values["--onnx"], file=sys.stderr)
    sys.exit(1)
open(values["--saveEngine"], "wb").write(b"engine")
'''


def write_trtexec(folder: Path, version: str) -> Path:
    """An executable fake trtexec of ``version`` in ``folder``."""
    major, minor, patch = (int(v) for v in version.split("."))
    # NV_TENSORRT_VERSION: major*1000 + minor*100 + patch up to 9, major*10000 + ... from 10 on
    number = major * (10000 if major >= 10 else 1000) + minor * 100 + patch
    path = Path(folder) / "trtexec"
    path.write_text(
        FAKE_TRTEXEC.format(
            python=sys.executable,
            version=version,
            number=number,
            options=TRTEXEC_OPTIONS[_major(version)],
        )
    )
    path.chmod(0o755)
    return path


def read_log(path: Path) -> list[list[str]]:
    return (
        [json.loads(line) for line in Path(path).read_text().splitlines()]
        if Path(path).exists()
        else []
    )
