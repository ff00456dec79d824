"""keras_seran: SERAN (squeeze-and-excitation reasoning attention network) MR super-resolution."""

__version__ = "0.1.0"

from keras_seran import layers, metrics, models  # noqa: E402  (registers custom objects)
from keras_seran.config import DataConfig, SERAConfig, SERANConfig, TrainConfig  # noqa: E402


def __getattr__(name):
    # Inference pulls in nibabel and the weights registry: import it on first use.
    if name == "SuperResolver":
        from keras_seran.inference import SuperResolver
        return SuperResolver
    raise AttributeError(f"module 'keras_seran' has no attribute {name!r}")


__all__ = ["layers", "models", "SuperResolver", "SERANConfig", "SERAConfig", "DataConfig",
           "TrainConfig", "__version__"]
