"""Training through plain ``model.fit``: loss, optimiser, schedule, callbacks, the trainer.

Names load on first use, so importing the subpackage (as ``keras-seran train --help`` does for
its command module) loads no Keras.
"""

from __future__ import annotations

from keras_seran._lazy import lazy_names

#: module -> the names it gives
_FROM = {
    "keras_seran.training.callbacks": ("RunCheckpoint",),
    "keras_seran.training.optim": ("compile_model", "make_optimizer", "step_schedule"),
    "keras_seran.training.trainer": ("build_model", "train"),
}
_LAZY = {name: module for module, names in _FROM.items() for name in names}


__getattr__, __dir__ = lazy_names(__name__, _LAZY)


__all__ = [
    "train",
    "build_model",
    "compile_model",
    "make_optimizer",
    "step_schedule",
    "RunCheckpoint",
]
