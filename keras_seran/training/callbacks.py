"""The checkpoint callback of long runs: atomic checkpoints that resume exactly, and the best model.

What the files are is the run folder's format, :mod:`keras_seran.runs`.
"""

from __future__ import annotations

import math
from pathlib import Path

import keras

from keras_seran.files import atomic_save_model
from keras_seran.runs import BEST, LAST, write_state


class RunCheckpoint(keras.callbacks.Callback):
    """Write ``last.keras`` every ``every`` epochs, at the end of training (the last epoch, also
    after an early stop, is never lost between two intervals), and ``best.keras`` on a new best
    ``monitor``.

    The state file is written after the model file, so the epoch it records always has a
    complete checkpoint behind it. A run killed in the moment between the two writes (the state
    is a few hundred bytes) leaves ``last.keras`` one checkpoint ahead of the state: resuming
    then repeats that interval's epochs from the newer weights (nothing is lost; the optimizer's
    step count runs ahead of the epoch counter by that interval).
    """

    def __init__(
        self,
        run_dir: str | Path,
        every: int = 1,
        monitor: str = "val_psnr",
        mode: str = "max",
        best: float | None = None,
    ):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.every = max(1, int(every))
        self.monitor = monitor
        self.sign = 1.0 if mode == "max" else -1.0
        self.best = best if best is not None else -math.inf * self.sign
        self._completed = self._saved = None  # epochs completed / saved in last.keras
        self._logs: dict = {}

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        completed = epoch + 1
        self._completed, self._logs = completed, dict(logs)
        value = logs.get(self.monitor)
        improved = value is not None and self.sign * (value - self.best) > 0
        if improved:
            self.best = float(value)
            atomic_save_model(self.model, self.run_dir / BEST)
        if completed % self.every == 0 or improved:
            self._save_last(completed, logs)

    def on_train_end(self, logs=None):
        if self._completed is not None and self._completed != self._saved:
            self._save_last(self._completed, self._logs)

    def _save_last(self, completed: int, logs: dict) -> None:
        """``last.keras`` then the state naming its epoch, each atomically."""
        atomic_save_model(self.model, self.run_dir / LAST)
        write_state(
            self.run_dir,
            {
                "epoch": completed,
                "best": self.best,
                "monitor": self.monitor,
                "optimizer_iterations": int(self.model.optimizer.iterations.numpy())
                if hasattr(self.model.optimizer.iterations, "numpy")
                else None,
                "logs": {k: float(v) for k, v in logs.items()},
            },
        )
        self._saved = completed
