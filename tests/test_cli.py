"""The command line as a newcomer meets it, in real processes: ``--help`` and ``--version`` are
quiet and load no Keras/TensorFlow/JAX, a normal command prints no library logging, and Ctrl-C
during start-up gives one line and exit code 130 with nothing written."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import pytest

from keras_seran import samples
from keras_seran.cli import COMMANDS

REPO_ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("tensorflow", "keras", "jax", "torch")
#: The console script's own code (``keras-seran = keras_seran.cli:main``), then what it loaded.
ENTRY = "import sys; from keras_seran.cli import main; sys.exit(main())"
ENTRY_REPORTING_MODULES = f"""
import sys
from keras_seran.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
sys.stdout.write("\\nloaded: " + ",".join(m for m in {HEAVY!r} if m in sys.modules) + "\\n")
sys.exit(code)
"""


def _env() -> dict:
    """This checkout first on the path, and none of the logging settings the tests use: the
    command line itself must keep the libraries quiet."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("TF_CPP_MIN_LOG_LEVEL", "GRPC_VERBOSITY", "GLOG_minloglevel")
    }
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def _run(code: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=REPO_ROOT,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize(
    "argv", [["--help"], ["--version"]] + [[name, "--help"] for name in COMMANDS], ids=" ".join
)
def test_help_and_version_are_quiet_and_load_no_framework(argv):
    proc = _run(ENTRY_REPORTING_MODULES, *argv)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    text, _, loaded = proc.stdout.rpartition("\nloaded: ")
    assert loaded.strip() == "", f"{' '.join(argv)} imported {loaded.strip()}"
    if argv == ["--version"]:
        from keras_seran import __version__

        assert text.strip() == f"keras-seran {__version__}"
    else:
        assert text.startswith("usage: keras-seran")


@pytest.fixture(scope="module")
def small_input(tmp_path_factory) -> Path:
    """Four slices of the bundled real low-resolution T1 (128 x 128, 2 x 2 x 3 mm)."""
    path = tmp_path_factory.mktemp("in") / "t1_four_slices.nii.gz"
    nib.load(str(samples.T1_LOWRES)).slicer[:, :, 29:33].to_filename(str(path))
    return path


def test_a_command_prints_no_library_logging(small_input, tmp_path):
    """predict with the bundled weights: its own lines on stdout, nothing on stderr (TensorFlow's
    cpu_feature_guard, absl and oneDNN lines used to come first)."""
    out = tmp_path / "sr.nii.gz"
    proc = _run(ENTRY, "predict", str(small_input), str(out), "--no-progress", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert f"wrote {out}" in proc.stdout
    assert nib.load(str(out)).shape == (256, 256, 4)


def _caught(pid: int) -> int:
    """The signals process ``pid`` handles (SigCgt of /proc/PID/status), as a bit mask."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return int(line.split()[1], 16)
    return 0


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize(
    "delay, sig",
    [
        (0.0, signal.SIGINT),
        (0.3, signal.SIGINT),
        (1.0, signal.SIGINT),
        (2.0, signal.SIGINT),
        (0.5, signal.SIGTERM),
    ],
)
def test_an_interrupt_during_start_up_exits_cleanly(delay, sig, tmp_path):
    """Ctrl-C while the command imports its frameworks (TensorFlow, which brings JAX along when
    both are installed): one line, exit 128 + signal, no traceback, nothing written. The signal
    is sent ``delay`` s after the command installed its handlers (Python handles SIGINT from its
    own start, SIGTERM only once the command line catches it)."""
    out_dir = tmp_path / "out"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            ENTRY,
            "predict",
            str(samples.T1_LOWRES),
            str(out_dir / "sr.nii.gz"),
            "--no-progress",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 120
        while not _caught(proc.pid) & (1 << (signal.SIGTERM - 1)) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.01)
        time.sleep(delay)
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    name = "" if sig == signal.SIGINT else f" ({signal.Signals(sig).name})"
    assert proc.returncode == 128 + sig, stderr
    assert stderr == f"keras-seran predict: interrupted{name}\n"
    assert stdout == ""
    assert not out_dir.exists() and sorted(p.name for p in tmp_path.iterdir()) == []


def test_an_interrupt_inside_a_gc_callback_is_not_lost():
    """JAX registers a garbage-collector callback; an exception raised inside one is printed as
    "Exception ignored" and lost, so a Ctrl-C that lands there used to let the run go on. While
    a command runs, such an interrupt is delivered again outside the callback."""
    from keras_seran.cli import _signals_interrupt

    lost = []
    fired = []

    def busy_callback(phase, info):  # like jax's _xla_gc_callback: Python code in the gc
        if phase == "start" and not fired:
            fired.append(phase)
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(100_000):  # the handler runs here, inside the callback
                pass

    hook = sys.unraisablehook
    sys.unraisablehook = lost.append
    gc.callbacks.append(busy_callback)
    try:
        # the failure it guards against: Python's own handler raises inside the callback
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            gc.collect()
        finally:
            signal.signal(signal.SIGINT, previous)
        assert [type(u.exc_value) for u in lost] == [KeyboardInterrupt]
        lost.clear()
        fired.clear()
        with pytest.raises(KeyboardInterrupt), _signals_interrupt():
            gc.collect()
            time.sleep(5)  # the interrupt arrives again here
    finally:
        gc.callbacks.remove(busy_callback)
        sys.unraisablehook = hook
    assert lost == [] and fired


def test_verbose_is_accepted_before_and_after_the_command():
    from keras_seran.cli import build_parser

    for argv in (["--verbose", "demo"], ["demo", "--verbose"]):
        assert build_parser(argv).parse_args(argv).verbose is True
    assert build_parser(["demo"]).parse_args(["demo"]).verbose is False


def test_quiet_libraries_keeps_what_the_user_set(monkeypatch):
    import logging

    from keras_seran.cli import quiet_libraries

    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "1")
    monkeypatch.delenv("GRPC_VERBOSITY", raising=False)
    absl = logging.getLogger("absl")
    monkeypatch.setattr(absl, "level", logging.NOTSET)
    quiet_libraries()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "1" and os.environ["GRPC_VERBOSITY"] == "ERROR"
    assert absl.level == logging.ERROR


def test_import_keras_seran_registers_the_layers_once_keras_loads(tmp_path):
    """``import keras_seran`` loads no Keras, and ``keras.saving.load_model`` still reads a
    .keras file of the package's layers after it (the custom layers register with Keras)."""
    from keras_seran.models import seran

    path = tmp_path / "tiny.keras"
    seran(2, "tiny").save(path)
    code = f"""
import sys
import keras_seran
assert "keras" not in sys.modules, "import keras_seran loaded keras"
import keras
model = keras.saving.load_model({str(path)!r}, compile=False)
print(type(model.get_layer("group0_sera")).__name__)
"""
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "SERABlock"
