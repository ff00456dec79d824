"""Every custom layer of the package is registered and goes through the shared layer checks
(:func:`tests.layer_checks.run_layer_test`, parametrised by each test module's LAYER_CASES)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import keras

import keras_seran.layers
from keras_seran.layers.reasoning import PrimitiveReasoning
from tests.layers import test_blocks, test_reasoning, test_sera

#: bases that are not layers of their own (documented as "build one of its subclasses")
ABSTRACT_BASES = {PrimitiveReasoning}


def package_layer_classes() -> set[type]:
    """Every keras Layer subclass defined in a module of keras_seran.layers."""
    found = set()
    for info in pkgutil.iter_modules(keras_seran.layers.__path__, "keras_seran.layers."):
        module = importlib.import_module(info.name)
        found |= {
            obj
            for _, obj in inspect.getmembers(module, inspect.isclass)
            if issubclass(obj, keras.layers.Layer) and obj.__module__ == module.__name__
        }
    return found


def test_every_layer_is_registered_and_has_the_shared_layer_test():
    tested = {
        case.values[0]
        for module in (test_blocks, test_reasoning, test_sera)
        for case in module.LAYER_CASES
    }
    layers = package_layer_classes() - ABSTRACT_BASES
    exported = {getattr(keras_seran.layers, name) for name in keras_seran.layers.__all__}
    assert {c for c in exported if inspect.isclass(c)} - ABSTRACT_BASES <= layers
    unregistered = [
        c.__name__
        for c in layers
        if keras.saving.get_registered_name(c) != f"keras_seran>{c.__name__}"
    ]
    assert not unregistered, f"not registered under keras_seran: {unregistered}"
    untested = sorted(c.__name__ for c in layers - tested)
    assert not untested, f"no run_layer_test case (add one to LAYER_CASES): {untested}"
