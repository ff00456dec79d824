"""Imports inside ``keras_seran`` flow one way: down the order ``BUILDS_ON``, never sideways.

Every module of the package is parsed with ``ast`` (nothing is imported), and every import
counts, the lazy ones inside functions included. A module may import its own part (subpackage
or top-level module) and the parts its part builds on, directly or through others; nothing else.
The order is partial on purpose: inference, training and export all build on data and the
registry but not on each other, and evaluation builds on inference, not on training. The neutral
modules at the bottom (errors, contract, files, config, runs) hold what several parts share, so
no part has to reach sideways for it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "keras_seran"
ROOT = "keras_seran"  # the package's __init__ (the public facade)

#: Each part of the package and the parts it builds on directly.
BUILDS_ON: dict[str, tuple[str, ...]] = {
    "_lazy": (),  # public names that load on first use (every package __init__)
    "errors": (),  # every exception
    "contract": ("errors",),  # the network's input contract
    "files": ("errors",),  # atomic writes, output checks
    "config": ("contract",),  # typed configs (defaults from the contract)
    "runs": ("config", "files"),  # the run-folder format
    "samples": (),  # paths of the bundled sample images
    "devices": ("errors",),  # backends and accelerators
    "runtime": ("config",),  # export bundles run in LiteRT/onnxruntime/TensorRT
    "metrics": (),
    "layers": ("config",),
    "models": ("layers",),
    "registry": ("models",),  # bundled weights: name -> weights, card, network
    "data": ("config", "samples", "files"),  # files: which names are temporary files
    "inference": ("data", "registry", "files", "devices", "metrics", "runtime"),
    "training": ("data", "registry", "runs", "devices", "metrics"),
    "evaluation": ("inference", "runs"),
    "export": ("data", "registry", "files", "devices", "metrics", "runtime"),
    "cli": ("evaluation", "training", "export"),
    "__main__": ("cli",),  # python -m keras_seran
    ROOT: ("cli",),
}
#: What any module may take from the package root: metadata, not code.
ROOT_METADATA = {"__version__"}
#: Plumbing of the package's own layout that every part may use.
EVERYWHERE = {"_lazy"}
#: A lazy name's home in a package __init__: "keras_seran.x.y", ".y", ".y:attr" or ".y:".
LAZY_TARGET = re.compile(r"^(keras_seran|\.)[\w.]*(:\w*)?$")


def below(part: str) -> set[str]:
    """Every part ``part`` builds on, directly or through others."""
    seen: set[str] = set()
    todo = list(BUILDS_ON[part])
    while todo:
        p = todo.pop()
        if p not in seen:
            seen.add(p)
            todo += BUILDS_ON[p]
    return seen


def modules() -> dict[str, Path]:
    """{dotted module name: file} of every module of the package."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_module(dotted: str) -> bool:
    path = PACKAGE.parent.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def part_of(dotted: str) -> str:
    """``keras_seran.data.io`` -> ``data``; ``keras_seran`` -> ROOT."""
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else ROOT


def imports(module: str, path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, imported module, names taken from it) of every import of the package's own
    modules in ``path``, at any depth (lazy imports included); a name that is a submodule
    counts as importing that submodule."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name, []) for a in node.names if a.name.split(".")[0] == ROOT]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != ROOT:
                continue
            plain = []
            for a in node.names:
                if _is_module(f"{base}.{a.name}"):
                    out.append((node.lineno, f"{base}.{a.name}", []))
                else:
                    plain.append(a.name)
            if plain:
                out.append((node.lineno, base, plain))
        elif (
            path.name == "__init__.py"
            and isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and LAZY_TARGET.match(node.value)
        ):  # a lazy name (keras_seran._lazy): imported on first use
            target = node.value.partition(":")[0]
            if target.startswith("."):
                level = len(target) - len(target.lstrip("."))
                anchor = package.split(".")[: len(package.split(".")) - level + 1]
                target = ".".join(anchor + ([target.lstrip(".")] if target.lstrip(".") else []))
            if _is_module(target):
                out.append((node.lineno, target, []))
    return out


def test_every_part_of_the_package_has_its_place():
    missing = sorted({part_of(m) for m in modules()} - set(BUILDS_ON))
    assert not missing, f"place {missing} in BUILDS_ON of {Path(__file__).name}"
    assert not [p for p in BUILDS_ON if p in below(p)], "BUILDS_ON has a cycle"


def sideways_imports() -> list[str]:
    bad = []
    for module, path in modules().items():
        mine = part_of(module)
        for line, target, names in imports(module, path):
            theirs = part_of(target)
            if theirs == mine or theirs in EVERYWHERE:
                continue
            if theirs == ROOT and set(names) <= ROOT_METADATA and names:
                continue
            if theirs not in below(mine):
                where = "upwards" if mine in below(theirs) else "sideways"
                bad.append(
                    f"{path.relative_to(PACKAGE.parent)}:{line}: {module} imports "
                    f"{target} ({mine} -> {theirs}: {where})"
                )
    return bad


def test_imports_only_flow_down():
    bad = sideways_imports()
    assert not bad, "imports against BUILDS_ON:\n" + "\n".join(bad)


def test_no_module_uses_another_modules_private_names():
    """``from keras_seran.x import _name`` and ``x._name`` of another module of the package."""
    bad = []
    for module, path in modules().items():
        tree = ast.parse(path.read_text())
        aliases = set()  # local names bound to modules of the package
        for line, target, names in imports(module, path):
            bad += [
                f"{module}:{line}: imports {target}.{n}"
                for n in names
                if n.startswith("_") and not n.startswith("__") and target != module
            ]
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.split(".")[0] == ROOT
            ):
                aliases |= {
                    a.asname or a.name for a in node.names if _is_module(f"{node.module}.{a.name}")
                }
            elif isinstance(node, ast.Import):
                aliases |= {
                    a.asname for a in node.names if a.asname and a.name.split(".")[0] == ROOT
                }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                bad.append(f"{module}:{node.lineno}: uses {node.value.id}.{node.attr}")
    assert not bad, "private names used across modules:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    "source, target",
    [
        ("training", "inference"),
        ("evaluation", "training"),
        ("export", "inference"),
        ("data", "registry"),
        ("config", "data"),
    ],
)
def test_the_check_catches_a_sideways_import(source, target, tmp_path, monkeypatch):
    """The check itself: an import added against BUILDS_ON is reported with its file."""
    import shutil

    copy = tmp_path / "keras_seran"
    shutil.copytree(
        PACKAGE, copy, ignore=shutil.ignore_patterns("weights", "sample", "__pycache__")
    )
    victim = copy / f"{source}.py"
    if not victim.exists():  # a subpackage: its first module
        victim = next(p for p in sorted((copy / source).glob("*.py")) if p.name != "__init__.py")
    victim.write_text(victim.read_text() + f"\n\ndef _late():\n    import keras_seran.{target}\n")
    monkeypatch.setitem(globals(), "PACKAGE", copy)
    bad = sideways_imports()
    assert len(bad) == 1 and victim.name in bad[0] and f"{source} -> {target}" in bad[0], bad
