"""Callbacks for long runs: atomic checkpoints that resume exactly, and best-model tracking.

A run directory holds::

    last.keras          model + optimizer state after the last checkpointed epoch
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


def read_json(path: Path, what: str) -> dict:
    """A JSON object from ``path``; InputDataError naming the file when it is unreadable."""
    from keras_seran.errors import InputDataError

    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InputDataError(path, f"{what} cannot be read ({type(exc).__name__}: {exc}); the "
                                   "run directory is damaged") from None
    if not isinstance(data, dict):
        raise InputDataError(path, f"{what} is not a JSON object; the run directory is damaged")
    return data


def read_state(run_dir: Path) -> dict | None:
    p = Path(run_dir) / STATE_FILE
    if not p.exists():
        return None
    state = read_json(p, "the training state")
    if not isinstance(state.get("epoch"), int):
        from keras_seran.errors import InputDataError

        raise InputDataError(p, "the training state has no completed-epoch count; the run "
                                "directory is damaged")
    return state


def trim_log(path: Path, epochs: int) -> None:
    """Keep the header and the rows of the first ``epochs`` epochs of a CSVLogger file: a resumed
    run repeats the epochs after its last checkpoint, and would log them twice."""
    path = Path(path)
    if not path.exists():
        return
    lines = path.read_text().splitlines(keepends=True)
    if not lines:
        return
    kept = [lines[0]]
    for line in lines[1:]:
        head = line.split(",", 1)[0].strip()
        if head.isdigit() and int(head) < epochs:
            kept.append(line)
    with atomic_path(path) as tmp:
        tmp.write_text("".join(kept))


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

    def __init__(self, run_dir: str | Path, every: int = 1, monitor: str = "val_psnr",
                 mode: str = "max", best: float | None = None):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.every = max(1, int(every))
        self.monitor = monitor
        self.sign = 1.0 if mode == "max" else -1.0
        self.best = best if best is not None else -math.inf * self.sign
        self._completed = self._saved = None   # epochs completed / saved in last.keras
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
        atomic_write_json({"epoch": completed, "best": self.best, "monitor": self.monitor,
                           "optimizer_iterations": int(self.model.optimizer.iterations.numpy())
                           if hasattr(self.model.optimizer.iterations, "numpy") else None,
                           "logs": {k: float(v) for k, v in logs.items()}},
                          self.run_dir / STATE_FILE)
        self._saved = completed
