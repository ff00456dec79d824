"""Training through plain ``model.fit``: loss, optimiser, schedule, callbacks, the trainer.

Names load on first use, so importing the subpackage (as ``keras-seran train --help`` does for
its command module) loads no Keras.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "RunCheckpoint": "keras_seran.training.callbacks",
    "compile_model": "keras_seran.training.optim",
    "make_optimizer": "keras_seran.training.optim",
    "step_schedule": "keras_seran.training.optim",
    "build_model": "keras_seran.training.trainer",
    "train": "keras_seran.training.trainer",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'keras_seran.training' has no attribute {name!r}")


__all__ = ["train", "build_model", "compile_model", "make_optimizer", "step_schedule",
           "RunCheckpoint"]
