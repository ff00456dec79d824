"""Training through plain ``model.fit``: loss, optimiser, schedule, callbacks, the trainer."""

from keras_seran.training.callbacks import RunCheckpoint
from keras_seran.training.optim import compile_model, make_optimizer, step_schedule
from keras_seran.training.trainer import build_model, train

__all__ = ["train", "build_model", "compile_model", "make_optimizer", "step_schedule",
           "RunCheckpoint"]
