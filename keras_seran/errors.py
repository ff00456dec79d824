"""Exceptions raised for bad user input: each names the file (when there is one) and the problem."""

from __future__ import annotations

from pathlib import Path


class KerasSeranError(Exception):
    """Base class of every error this package raises on purpose."""


class InputDataError(KerasSeranError, ValueError):
    """An input file or array cannot be used; ``str(err)`` reads ``"<path>: <problem>"``."""

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
