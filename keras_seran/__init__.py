"""keras_seran: SERAN (squeeze-and-excitation reasoning attention network) MR super-resolution.

Importing the package is light (no Keras, TensorFlow or JAX): the command line's ``--help`` and
``--version`` stay fast. Its public names load on first use (``keras_seran.models``,
``keras_seran.SuperResolver``, ...). The custom layers are registered with Keras's serialisation
as soon as Keras is imported, whichever comes first, so ``keras.saving.load_model`` reads a
``.keras`` file of this package after ``import keras_seran`` as it always did.
"""

__version__ = "0.1.0"

import importlib
import importlib.abc
import importlib.util
import sys

from keras_seran._lazy import lazy_names

_CONFIGS = (
    "SERANConfig",
    "SERAConfig",
    "DataConfig",
    "TrainConfig",
    "InferenceConfig",
    "ExportConfig",
)
_LAZY = {
    "layers": ".layers:",
    "models": ".models:",
    "metrics": ".metrics:",
    "SuperResolver": ".inference.resolver",
    **dict.fromkeys(_CONFIGS, ".config"),
}
__getattr__, __dir__ = lazy_names(__name__, _LAZY)


def _register_custom_objects() -> None:
    """Import the modules whose classes are registered Keras serialisables."""
    importlib.import_module("keras_seran.layers")
    importlib.import_module("keras_seran.metrics")


class _RegisterAfterKeras(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Loads ``keras`` with the loader the other finders give, then registers the custom
    layers; leaves ``sys.meta_path`` once Keras is loaded."""

    def find_spec(self, name, path=None, target=None):
        if name != "keras":
            return None
        for finder in sys.meta_path:
            spec = None if finder is self else finder.find_spec(name, path, target)
            if spec is not None:
                break
        if spec is None or spec.loader is None:
            return spec
        self._loader = spec.loader
        spec.loader = self
        return spec

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        module.__spec__.loader = module.__loader__ = self._loader
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        self._loader.exec_module(module)
        _register_custom_objects()


if "keras" in sys.modules:
    _register_custom_objects()
elif not any(isinstance(f, _RegisterAfterKeras) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterAfterKeras())


__all__ = [*_LAZY, "__version__"]
