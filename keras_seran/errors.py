"""Every exception this package raises on purpose (a :class:`KerasSeranError`).

The command line prints any of them as one line, ``keras-seran CMD: error: <message>``, and exits
with code 2 (:mod:`keras_seran.cli`). Two exceptions live elsewhere on purpose:
``keras_seran.cli.Terminated`` (SIGTERM/SIGHUP turned into a KeyboardInterrupt by the command
line itself, never raised by library code) and
``keras_seran.export.tensorrt_engine.TensorRTUnavailable`` (that module loads without the package
on a Jetson, so it cannot import this one; the bundle catches it and skips the format).
"""

from __future__ import annotations

from pathlib import Path


class KerasSeranError(Exception):
    """Base class of every error this package raises on purpose."""


class InputDataError(KerasSeranError, ValueError):
    """An input file or image cannot be used; ``str(err)`` reads ``"<path>: <problem>"``
    (``path`` None: an image in memory, and the message is the problem alone)."""

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class OutputPathError(KerasSeranError, ValueError):
    """An output location cannot be written (unwritable folder, equal to the input, ...)."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class UsageError(KerasSeranError, ValueError):
    """A request that cannot be met and is not about one file: a bad option or argument, an
    in-memory array that is not an image, a backend or device that lacks what was asked."""


class RuntimeUnavailable(UsageError):
    """A runtime an export bundle needs (LiteRT, onnxruntime, TensorRT) is not installed here,
    or lacks its device (TensorRT without a CUDA GPU); the message names what to install."""


class ExportCheckError(KerasSeranError, RuntimeError):
    """An exported artifact failed a structural check (non-builtin LiteRT ops, ONNX ops that
    TensorRT cannot parse, an invalid ONNX graph, a parity tolerance in ``strict`` mode)."""
