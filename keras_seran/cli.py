"""The ``keras-seran`` command line: train, evaluate, predict, export, demo.

Each command lives next to the code it drives and exposes ``add_arguments(parser)`` and
``run(args) -> int``; command modules import their heavy extras (nibabel, ONNX, LiteRT, the
weights) inside ``run`` only. Keras itself loads with the package (``import keras_seran``
registers the custom layers), so even ``--help`` takes a few seconds. This module wires the
commands up and turns the package's own errors into a one-line message and exit code 2 (no
traceback).

Ctrl-C, SIGTERM and SIGHUP all stop a command the same way: the signal raises KeyboardInterrupt
(:class:`Terminated` for SIGTERM/SIGHUP) in the running code, so every cleanup (temporary files,
partial export bundles, folders made for outputs) runs; the exit code is then the shell's
``128 + signal``: 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
import threading
import warnings

from keras_seran.errors import KerasSeranError

COMMANDS = {
    "train": ("keras_seran.training.command", "train SERAN (or a baseline) on MR volumes"),
    "evaluate": ("keras_seran.evaluation.command",
                 "PSNR/SSIM table of SERAN, baselines and bicubic on the bundled held-out "
                 "benchmark sets or on your --data"),
    "predict": ("keras_seran.inference.command", "super-resolve NIfTI volumes (file or folder)"),
    "export": ("keras_seran.export.command",
               "export a model to SavedModel, LiteRT, ONNX and TensorRT, each verified"),
    "demo": ("keras_seran.inference.demo", "run the main job on the bundled real MR sample"),
}

_DESCRIPTION = __doc__.splitlines()[0].replace("``", "")


class Terminated(KeyboardInterrupt):
    """SIGTERM/SIGHUP as a KeyboardInterrupt (so the cleanups run); ``signum`` says which."""

    def __init__(self, signum: int):
        self.signum = int(signum)
        super().__init__(signal.Signals(signum).name)


@contextlib.contextmanager
def _signals_interrupt():
    """While inside: SIGTERM and SIGHUP raise :class:`Terminated` once (a repeated signal during
    the cleanup is ignored); the previous handlers come back on leaving. Main thread only. A
    signal set to be ignored (``nohup`` ignores SIGHUP) stays ignored."""
    names = [n for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n)]
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = []

    def handler(signum, frame):
        if not fired:
            fired.append(signum)
            raise Terminated(signum)

    previous = {}
    try:
        for n in names:
            sig = getattr(signal, n)
            if signal.getsignal(sig) is signal.SIG_IGN:   # nohup: the user asked to ignore it
                continue
            previous[sig] = signal.signal(sig, handler)
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)


@contextlib.contextmanager
def _one_line_warnings(command: str):
    """While inside, the package's own warnings print as one line, like its errors
    (``keras-seran predict: warning: ...``), not with a source file and line; others as usual."""
    package = os.path.dirname(os.path.abspath(__file__))
    default = warnings.formatwarning

    def formatwarning(message, category, filename, lineno, line=None):
        if os.path.abspath(filename).startswith(package + os.sep):
            return f"keras-seran {command}: warning: {message}\n"
        return default(message, category, filename, lineno, line)

    warnings.formatwarning = formatwarning
    try:
        yield
    finally:
        warnings.formatwarning = default


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The full parser; given ``argv``, only the named command's module is imported."""
    wanted = None if argv is None else next((a for a in argv if a in COMMANDS), "")
    parser = argparse.ArgumentParser(prog="keras-seran", description=_DESCRIPTION)
    from keras_seran import __version__
    parser.add_argument("--version", action="version", version=f"keras-seran {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        if wanted is None or wanted == name:
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
    try:
        with _signals_interrupt(), _one_line_warnings(args.command):
            return int(importlib.import_module(args._module).run(args) or 0)
    except KerasSeranError as exc:
        print(f"keras-seran {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except Terminated as exc:
        print(f"keras-seran {args.command}: interrupted ({exc})", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print(f"keras-seran {args.command}: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT


if __name__ == "__main__":
    sys.exit(main())
