"""keras_seran._lazy: every package's lazy public names resolve, are listed, and nothing else is
made up."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = [
    "keras_seran",
    "keras_seran.data",
    "keras_seran.inference",
    "keras_seran.training",
    "keras_seran.evaluation",
    "keras_seran.export",
]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_lazy_name_resolves_and_is_listed(package):
    pkg = importlib.import_module(package)
    names = pkg._LAZY
    assert names and set(names) <= set(pkg.__all__) and set(names) <= set(dir(pkg))
    for name in names:
        value = getattr(pkg, name)
        home = names[name]
        if home.endswith(":"):  # the module itself
            assert value.__name__ == importlib.import_module(home[:-1], package).__name__
        else:
            assert getattr(value, "__name__", name).split(".")[-1] in (name, home.split(":")[-1])
    with pytest.raises(AttributeError, match=rf"module '{package}' has no attribute 'no_such'"):
        pkg.no_such  # noqa: B018


def test_the_helper_resolves_each_form():
    from keras_seran._lazy import lazy_names

    getattr_, dir_ = lazy_names(
        "keras_seran",
        {"cfg": ".config:", "Infer": ".config:InferenceConfig", "check_number": ".config"},
    )
    import keras_seran.config as config

    assert getattr_("cfg") is config
    assert getattr_("Infer") is config.InferenceConfig
    assert getattr_("check_number") is config.check_number
    assert {"cfg", "Infer", "check_number", "__version__"} <= set(dir_())
