"""The ``keras-seran`` command line: train, evaluate, predict, export, demo.

Each command lives next to the code it drives and exposes ``add_arguments(parser)`` and
``run(args) -> int`` (and ``needs_keras(args) -> bool`` when some of its runs do without Keras:
``predict --model BUNDLE_DIR`` loads no Keras, TensorFlow or JAX); ``add_arguments`` imports nothing heavy (its flags come from the typed
configs, :mod:`keras_seran.config`), so ``--help`` and ``--version`` never load Keras, TensorFlow or
JAX. This module wires the commands up and turns the package's own errors into a one-line message
and exit code 2 (no traceback). A command prints only its own words: the libraries' logging
(TensorFlow, absl, oneDNN, XLA) is silenced before they load, unless ``--verbose``.

Ctrl-C, SIGTERM and SIGHUP stop a command cleanly with one line ("interrupted") and the shell's
``128 + signal`` exit code: 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP. During start-up
(parsing and the heavy imports, before anything is written) the process exits at once. Once the
command runs, the signal raises KeyboardInterrupt (:class:`Terminated` for SIGTERM/SIGHUP) in the
running code, so every cleanup (temporary files, partial export bundles, folders made for outputs)
runs first.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import logging
import os
import signal
import sys
import threading
import warnings

from keras_seran.errors import KerasSeranError

COMMANDS = {
    "train": ("keras_seran.training.command", "train SERAN (or a baseline) on MR volumes"),
    "evaluate": (
        "keras_seran.evaluation.command",
        "PSNR/SSIM table of SERAN, baselines and bicubic on the bundled held-out "
        "benchmark sets or on your --data",
    ),
    "predict": ("keras_seran.inference.command", "super-resolve NIfTI volumes (file or folder)"),
    "export": (
        "keras_seran.export.command",
        "export a model to SavedModel, LiteRT, ONNX and TensorRT, each verified",
    ),
    "demo": ("keras_seran.inference.demo", "run the main job on the bundled real MR sample"),
}

_DESCRIPTION = __doc__.splitlines()[0].replace("``", "")
#: environment read by the libraries' C++ logging when they load (set unless --verbose)
QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "GRPC_VERBOSITY": "ERROR", "GLOG_minloglevel": "3"}
#: Python loggers of the libraries (absl's "WARNING:absl:..." lines and the like)
QUIET_LOGGERS = ("absl", "tensorflow", "jax", "h5py", "onnx", "tf2onnx")
#: the imports that make up start-up (Keras loads its backend: TensorFlow or JAX)
STARTUP_IMPORTS = ("keras",)
_INTERRUPTS = ("SIGINT", "SIGTERM", "SIGHUP")


class Terminated(KeyboardInterrupt):
    """SIGTERM/SIGHUP as a KeyboardInterrupt (so the cleanups run); ``signum`` says which."""

    def __init__(self, signum: int):
        self.signum = int(signum)
        super().__init__(signal.Signals(signum).name)


def _interrupt_message(prog: str, signum: int) -> str:
    name = "" if signum == signal.SIGINT else f" ({signal.Signals(signum).name})"
    return f"{prog}: interrupted{name}"


@contextlib.contextmanager
def _handling(handler):
    """While inside, ``handler`` receives SIGINT, SIGTERM and SIGHUP (main thread only; a signal
    set to be ignored, as SIGHUP under ``nohup``, stays ignored); the previous handlers come back
    on leaving."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    try:
        for sig in (getattr(signal, n) for n in _INTERRUPTS if hasattr(signal, n)):
            if signal.getsignal(sig) is signal.SIG_IGN:  # nohup: the user asked to ignore it
                continue
            previous[sig] = signal.signal(sig, handler)
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)


@contextlib.contextmanager
def _exit_at_once(prog: list[str]):
    """Start-up: nothing is written yet, so a signal ends the process at once with one line
    (``prog[0]``: the command's name, once known). No exception is raised: it could be lost
    (an exception raised in a garbage-collector callback, such as the one JAX registers, is only
    printed as "Exception ignored" and the run would go on), and a traceback of the import that
    was interrupted says nothing useful."""

    def handler(signum, frame):
        try:
            sys.stderr.write(_interrupt_message(prog[0], signum) + "\n")
            sys.stderr.flush()
        finally:
            os._exit(128 + signum)

    with _handling(handler):
        yield


def _in_gc_callback(frame) -> bool:
    """Whether ``frame`` runs inside a garbage-collector callback (an exception raised there is
    printed as "Exception ignored" and lost)."""
    codes = {getattr(getattr(cb, "__func__", cb), "__code__", None) for cb in gc.callbacks}
    codes.discard(None)
    while frame is not None and codes:
        if frame.f_code in codes:
            return True
        frame = frame.f_back
    return False


@contextlib.contextmanager
def _signals_interrupt():
    """While inside: SIGINT raises KeyboardInterrupt and SIGTERM/SIGHUP :class:`Terminated`, once
    (a repeated signal during the cleanup is ignored). A signal that arrives inside a
    garbage-collector callback is delivered again shortly after, outside it."""
    fired = []

    def handler(signum, frame):
        if fired:
            return
        if _in_gc_callback(frame):
            timer = threading.Timer(0.05, os.kill, (os.getpid(), signum))
            timer.daemon = True
            timer.start()
            return
        fired.append(signum)
        raise KeyboardInterrupt if signum == signal.SIGINT else Terminated(signum)

    with _handling(handler):
        yield


def quiet_libraries() -> None:
    """Silence the libraries' own logging before they load (a value the user set is kept)."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


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


def _add_verbose(parser: argparse.ArgumentParser, default) -> None:
    parser.add_argument(
        "--verbose",
        action="store_true",
        default=default,
        help="also show the libraries' logging (TensorFlow, absl, XLA)",
    )


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The full parser; given ``argv``, only the named command's module is imported."""
    wanted = None if argv is None else next((a for a in argv if a in COMMANDS), "")
    parser = argparse.ArgumentParser(prog="keras-seran", description=_DESCRIPTION)
    from keras_seran import __version__

    parser.add_argument("--version", action="version", version=f"keras-seran {__version__}")
    _add_verbose(parser, False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        if wanted is None or wanted == name:
            importlib.import_module(module).add_arguments(p)
            _add_verbose(p, argparse.SUPPRESS)  # after the command's name too
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    named = next((a for a in argv if a in COMMANDS), None)  # before parsing: for the message
    prog = ["keras-seran" + (f" {named}" if named else "")]
    with _exit_at_once(prog):
        args = build_parser(argv).parse_args(argv)
        prog[0] = f"keras-seran {args.command}"
        if not args.verbose:
            quiet_libraries()
        command = importlib.import_module(args._module)
        if getattr(command, "needs_keras", lambda a: True)(args):
            for module in STARTUP_IMPORTS:
                importlib.import_module(module)
    try:
        with _signals_interrupt(), _one_line_warnings(args.command):
            return int(command.run(args) or 0)
    except KerasSeranError as exc:
        print(f"{prog[0]}: error: {exc}", file=sys.stderr)
        return 2
    except Terminated as exc:
        print(_interrupt_message(prog[0], exc.signum), file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print(_interrupt_message(prog[0], signal.SIGINT), file=sys.stderr)
        return 128 + signal.SIGINT


if __name__ == "__main__":
    sys.exit(main())
