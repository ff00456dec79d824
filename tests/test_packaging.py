"""The install extras are coherent: the user install has no dev stack, every module the package
imports is declared by the core or by one extra, and ``[dev]`` is every extra but ``[gpu]``."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import tomllib
from packaging.requirements import Requirement

REPO_ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
EXTRAS = PROJECT["optional-dependencies"]
#: import name -> the distributions that provide it
PROVIDERS = {
    "PIL": {"pillow"},
    "ai_edge_litert": {"ai-edge-litert"},
    "onnxconverter_common": {"onnxconverter-common"},
    "tensorflow": {"tensorflow", "tensorflow-cpu"},
}
#: imported but installed apart: TensorRT comes with JetPack / NVIDIA's wheels, PyTorch is a
#: Keras backend the package supports but does not install
NOT_DECLARED = {"tensorrt", "torch"}
BACKENDS = {"tensorflow", "tensorflow-cpu", "jax", "torch"}


def _names(requirements: list[str]) -> set[str]:
    return {Requirement(r).name.lower() for r in requirements}


def _own_extras(requirements: list[str]) -> set[str]:
    return {
        e
        for r in requirements
        if Requirement(r).name == PROJECT["name"]
        for e in Requirement(r).extras
    }


def _third_party_imports() -> set[str]:
    found = set()
    for path in (REPO_ROOT / "keras_seran").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m != "keras_seran"}


def test_the_core_has_no_backend_and_nothing_only_tests_use():
    core = _names(PROJECT["dependencies"])
    assert not core & BACKENDS
    assert "opencv-python-headless" not in core and "scipy" not in core  # tests only


def test_every_imported_module_is_declared():
    declared = _names(PROJECT["dependencies"]).union(*map(_names, EXTRAS.values()))
    missing = [
        m
        for m in sorted(_third_party_imports() - NOT_DECLARED)
        if not PROVIDERS.get(m, {m.lower()}) & declared
    ]
    assert missing == []


def test_dev_is_every_extra_but_gpu_and_the_references_exist():
    for name, requirements in EXTRAS.items():
        assert _own_extras(requirements) <= set(EXTRAS), name
    assert _own_extras(EXTRAS["dev"]) == set(EXTRAS) - {"dev", "gpu"}
    assert {"pytest", "scipy", "opencv-python-headless"} <= _names(EXTRAS["dev"])


def test_tensorflow_comes_from_tf_or_gpu_never_both():
    """tensorflow-cpu and tensorflow[and-cuda] hold the same package: no extra pulls both."""
    for name, requirements in EXTRAS.items():
        assert not {"tf", "gpu"} <= _own_extras(requirements), name
    tf = [Requirement(r) for r in EXTRAS["tf"] if Requirement(r).name.startswith("tensorflow")]
    linux_x86 = {"platform_system": "Linux", "platform_machine": "x86_64"}
    mac_arm = {"platform_system": "Darwin", "platform_machine": "arm64"}
    assert [r.name for r in tf if r.marker.evaluate(linux_x86)] == ["tensorflow-cpu"]
    assert [r.name for r in tf if r.marker.evaluate(mac_arm)] == ["tensorflow"]


def test_keras_comes_with_a_backend_and_the_runtime_extra_has_none():
    """The console install ([runtime]: an export bundle in LiteRT/onnxruntime) brings neither
    Keras nor a backend; every backend extra brings Keras."""
    assert "keras" not in _names(PROJECT["dependencies"])
    for backend in ("tf", "gpu", "jax"):
        assert "keras" in _names(EXTRAS[backend]), backend
    runtime = _names(EXTRAS["runtime"])
    assert {"ai-edge-litert", "onnxruntime"} <= runtime and not runtime & (BACKENDS | {"keras"})
    assert {"numpy", "nibabel"} <= _names(PROJECT["dependencies"])
