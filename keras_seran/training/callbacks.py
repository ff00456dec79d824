"""Callbacks for long runs: atomic checkpoints that resume exactly, and best-model tracking.

A run directory holds::

    last.keras          model + optimizer state after the last completed checkpoint epoch
    best.keras          model with the best validation PSNR so far
    training_state.json {"epoch": completed epochs, "best": best monitored value, ...}
    log.csv, tensorboard/

Every file is written to a temporary name in the same folder and moved into place with
``os.replace``, so a run killed at any moment leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import keras

from keras_seran.inference.writer import atomic_path

STATE_FILE = "training_state.json"
LAST = "last.keras"
BEST = "best.keras"


def atomic_save_model(model: keras.Model, path: Path) -> None:
    """Save a ``.keras`` file so that ``path`` is either the old file or the complete new one."""
    with atomic_path(path) as tmp:
        model.save(tmp)


def atomic_write_json(data: dict, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")


def read_state(run_dir: Path) -> dict | None:
    p = Path(run_dir) / STATE_FILE
    return json.loads(p.read_text()) if p.exists() else None


class RunCheckpoint(keras.callbacks.Callback):
    """Write ``last.keras`` every ``every`` epochs and ``best.keras`` on a new best ``monitor``.

    The state file is written after the model file, so the epoch it records always has a
    complete checkpoint behind it.
    """

    def __init__(self, run_dir: str | Path, every: int = 1, monitor: str = "val_psnr",
                 mode: str = "max", best: float | None = None):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.every = max(1, int(every))
        self.monitor = monitor
        self.sign = 1.0 if mode == "max" else -1.0
        self.best = best if best is not None else -math.inf * self.sign

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        completed = epoch + 1
        value = logs.get(self.monitor)
        improved = value is not None and self.sign * (value - self.best) > 0
        if improved:
            self.best = float(value)
            atomic_save_model(self.model, self.run_dir / BEST)
        if completed % self.every == 0 or improved:
            atomic_save_model(self.model, self.run_dir / LAST)
            atomic_write_json({"epoch": completed, "best": self.best, "monitor": self.monitor,
                               "optimizer_iterations": int(self.model.optimizer.iterations.numpy())
                               if hasattr(self.model.optimizer.iterations, "numpy") else None,
                               "logs": {k: float(v) for k, v in logs.items()}},
                              self.run_dir / STATE_FILE)
