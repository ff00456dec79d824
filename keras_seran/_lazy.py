"""Public names that load on first use (PEP 562), for the package ``__init__`` modules.

Importing ``keras_seran`` or one of its subpackages must stay cheap (no Keras, TensorFlow, ONNX):
the command line's ``--help`` imports them. Each ``__init__`` lists its lazy names once and
takes its ``__getattr__`` / ``__dir__`` from :func:`lazy_names`.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping


def lazy_names(
    package: str, names: Mapping[str, str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` whose public ``names`` load on first use.

    Args:
        package: the package's ``__name__``.
        names: public name -> where it lives: ``"module"`` (the attribute of the same name in
            that module), ``"module:attr"`` (another attribute) or ``"module:"`` (the module
            itself). A module starting with ``.`` is relative to ``package``.
    """

    def __getattr__(name: str) -> object:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attr = names[name].partition(":")
        value = importlib.import_module(module, package)
        if names[name].endswith(":"):
            return value
        return getattr(value, attr or name)

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *names})

    return __getattr__, __dir__
