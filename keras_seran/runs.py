"""The run folder of ``keras-seran train``: its file names, and reading and writing its records.

A run directory holds::

    last.keras           model + optimizer state after the last checkpointed epoch
    best.keras           model with the best validation PSNR so far
    training_state.json  {"epoch": completed epochs, "best": best monitored value, ...}
    run_config.json      arch, preset, scale, sources, "data" / "train" settings, resumes
    log.csv, tensorboard/

A checkpoint is the pair ``last.keras`` + ``training_state.json``, the state written after the
model, so the epoch it records always has a complete model behind it. Every file is written
atomically (:mod:`keras_seran.files`): a run killed at any moment keeps its previous checkpoint.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from keras_seran.config import DataConfig, TrainConfig, to_dict
from keras_seran.errors import InputDataError, OutputPathError
from keras_seran.files import atomic_path, atomic_write_json, read_json

LAST = "last.keras"
BEST = "best.keras"
STATE_FILE = "training_state.json"
RUN_CONFIG = "run_config.json"
LOG = "log.csv"
TENSORBOARD = "tensorboard"

_DAMAGED = "the run directory is damaged"


def prepare_run_dir(run_dir: Path, resume: bool) -> dict | None:
    """Check the run directory: the saved state when resuming; refuse to clobber a checkpoint.

    When only one file of the checkpoint pair is there (a run killed between the two writes of
    its first checkpoint, a file deleted by hand) it can be neither resumed nor overwritten: the
    error names the file that is there and says which to delete to start afresh, so no state
    leaves the user stuck. Raises OutputPathError; creates ``run_dir`` for a fresh run.
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise OutputPathError(run_dir, "is a file, not a run directory; choose another --out")
    has_last, has_state = (run_dir / LAST).exists(), (run_dir / STATE_FILE).exists()
    if has_last != has_state:
        there, missing = (LAST, STATE_FILE) if has_last else (STATE_FILE, LAST)
        verb = "resumed" if resume else "overwritten"
        raise OutputPathError(
            run_dir,
            f"holds {there} but no {missing}: an incomplete "
            f"checkpoint, which cannot be {verb}; delete {there} to "
            "start a fresh run here (without --resume), or choose "
            "another --out",
        )
    if resume:
        if not has_last:
            raise OutputPathError(
                run_dir,
                f"nothing to resume: no {LAST} or {STATE_FILE} here; "
                "start a fresh run (without --resume)",
            )
        return read_state(run_dir)
    if has_last:
        raise OutputPathError(
            run_dir,
            "already holds a training checkpoint; pass --resume to "
            "continue it or choose another --out",
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    probe = run_dir / ".write-test"
    try:
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise OutputPathError(run_dir, f"cannot write here ({exc.strerror})") from None
    return None


def read_state(run_dir: str | Path) -> dict | None:
    """``training_state.json`` of a run (None when absent); InputDataError when damaged."""
    p = Path(run_dir) / STATE_FILE
    if not p.exists():
        return None
    state = read_json(p, "the training state", _DAMAGED)
    if not isinstance(state.get("epoch"), int):
        raise InputDataError(
            p, "the training state has no completed-epoch count; the run directory is damaged"
        )
    return state


def write_state(run_dir: str | Path, state: dict) -> None:
    """Write ``training_state.json`` (after ``last.keras``: see the module docstring)."""
    atomic_write_json(state, Path(run_dir) / STATE_FILE)


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


def describe_sources(sources: Any) -> Any:
    """The JSON form of ``sources`` in run_config.json."""
    if isinstance(sources, (list, tuple)):
        return [str(s) for s in sources]
    return "<array>" if hasattr(sources, "shape") else str(sources)


def write_run_config(run_dir: str | Path, settings: dict) -> None:
    """Write a fresh run's settings to ``run_config.json``."""
    atomic_write_json(settings, Path(run_dir) / RUN_CONFIG)


def load_run_config(run_dir: str | Path) -> dict:
    """The saved settings of a run; OutputPathError when ``run_dir`` is not a run directory,
    InputDataError when its ``run_config.json`` is damaged."""
    path = Path(run_dir) / RUN_CONFIG
    if not path.exists():
        raise OutputPathError(run_dir, f"not a training run directory (no {RUN_CONFIG})")
    return read_json(path, "the run's settings", _DAMAGED)


def load_data_config(run_dir: str | Path) -> DataConfig:
    """The DataConfig a run was made with; InputDataError naming its run_config.json when the
    data settings are missing or invalid."""
    where = Path(run_dir) / RUN_CONFIG
    saved = load_run_config(run_dir).get("data")
    if not isinstance(saved, dict):
        raise InputDataError(where, "has no data settings")
    try:
        return DataConfig(**saved)
    except (TypeError, ValueError) as exc:
        raise InputDataError(where, f"bad data settings: {exc}") from None


def record_resume(
    run_dir: str | Path, train_cfg: TrainConfig, epoch: int, sources: Any = None
) -> None:
    """Write the settings a resumed run continues with into ``run_config.json`` (the train
    section, and the data sources when they moved; the data settings and the model cannot
    change on resume) and note when it was resumed and from which sources."""
    saved = load_run_config(run_dir)
    saved["train"] = to_dict(train_cfg)
    entry = {"at_epoch": int(epoch), "time": time.strftime("%F %T")}
    described = describe_sources(sources) if sources is not None else None
    if described is not None and described != saved.get("sources"):
        entry["previous_sources"] = saved.get("sources")
        saved["sources"] = described
    saved.setdefault("resumed", []).append(entry)
    atomic_write_json(saved, Path(run_dir) / RUN_CONFIG)
