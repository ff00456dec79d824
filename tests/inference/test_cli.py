"""``keras-seran predict`` end to end through ``keras_seran.cli.main``: files, folders, bad input.

Every bad input must give rc 2, a one-line message naming the file and the problem, and leave no
output (no result and no temporary file) behind.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from keras_seran.cli import main
from keras_seran.inference import geometry as g

from .conftest import assert_no_output, list_files


def _predict(*args) -> int:
    return main(["predict", *map(str, args), "--no-progress"])


def test_predict_file(tiny_keras_file, small_lowres_file, tmp_path, capsys):
    out = tmp_path / "out" / "sr.nii.gz"
    rc = _predict(
        small_lowres_file, out, "--model", tiny_keras_file, "--device", "cpu", "--batch-size", "4"
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    img, src = nib.load(str(out)), nib.load(str(small_lowres_file))
    assert img.shape == (256, 256, 10)
    np.testing.assert_allclose(img.header.get_zooms(), (1.0, 1.0, 3.0))
    np.testing.assert_allclose(
        g.fov_corners(img.affine, img.shape), g.fov_corners(src.affine, src.shape), atol=1e-4
    )
    # summary: files, shapes, voxel sizes before/after, seconds
    assert "128x128x10" in captured.out and "256x256x10" in captured.out
    assert "2x2x3 mm" in captured.out and "1x1x3 mm" in captured.out
    assert "super-resolved 1 file(s) x2" in captured.out and " s" in captured.out
    assert list_files(tmp_path / "out") == ["sr.nii.gz"]


def test_existing_output_needs_overwrite(tiny_keras_file, small_lowres_file, tmp_path, capsys):
    out = tmp_path / "sr.nii.gz"
    out.write_bytes(b"keep me")
    rc = _predict(small_lowres_file, out, "--model", tiny_keras_file)
    err = capsys.readouterr().err
    assert rc == 2 and "sr.nii.gz" in err and "--overwrite" in err
    assert out.read_bytes() == b"keep me"
    assert _predict(small_lowres_file, out, "--model", tiny_keras_file, "--overwrite") == 0
    assert nib.load(str(out)).shape == (256, 256, 10)
    assert list_files(tmp_path) == ["sr.nii.gz"]


def test_output_into_existing_folder_and_tiles(
    tiny_keras_file, small_lowres_file, tmp_path, capsys
):
    rc = _predict(
        small_lowres_file,
        tmp_path,
        "--model",
        tiny_keras_file,
        "--tile-size",
        "80",
        "--overlap",
        "16",
        "--output-dtype",
        "input",
    )
    assert rc == 0, capsys.readouterr().err
    img = nib.load(str(tmp_path / small_lowres_file.name))
    assert img.shape == (256, 256, 10) and img.get_data_dtype() == np.int16


def test_max_memory(tiny_keras_file, small_lowres_file, tmp_path, capsys):
    rc = _predict(
        small_lowres_file, tmp_path / "m.nii", "--model", tiny_keras_file, "--max-memory", "8"
    )
    assert rc == 0, capsys.readouterr().err
    assert nib.load(str(tmp_path / "m.nii")).shape == (256, 256, 10)


def test_folder_mode(tiny_keras_file, slab, lowres, tmp_path, capsys):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    lowres.slicer[:, :, 30:33].to_filename(str(src / "a_lowres.nii.gz"))
    slab.slicer[64:192, 6:9, 64:192].to_filename(str(src / "sub" / "b_slab.nii"))
    (src / "readme.txt").write_text("not an image")
    out = tmp_path / "out"
    rc = _predict(src, out, "--model", tiny_keras_file, "--axis", "1")
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert list_files(out) == ["a_lowres.nii.gz", "sub/b_slab.nii"]
    assert nib.load(str(out / "a_lowres.nii.gz")).shape == (256, 128, 6)
    assert nib.load(str(out / "sub" / "b_slab.nii")).shape == (256, 3, 256)
    assert "super-resolved 2 file(s)" in captured.out
    # same folder again: refused before any work, nothing changed
    before = {p: (out / p).stat().st_mtime_ns for p in list_files(out)}
    assert _predict(src, out, "--model", tiny_keras_file) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert before == {p: (out / p).stat().st_mtime_ns for p in list_files(out)}
    # output folder == input folder: refused
    assert _predict(src, src, "--model", tiny_keras_file, "--overwrite") == 2
    assert "input" in capsys.readouterr().err


def test_folder_with_a_bad_file_continues(tiny_keras_file, lowres, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    lowres.slicer[:, :, 30:32].to_filename(str(src / "good.nii.gz"))
    (src / "bad.nii.gz").write_bytes(b"this is not a nifti file at all")
    out = tmp_path / "out"
    rc = _predict(src, out, "--model", tiny_keras_file)
    captured = capsys.readouterr()
    assert rc == 2
    assert "bad.nii.gz" in captured.err and "1 failed" in captured.out
    assert list_files(out) == ["good.nii.gz"]


# --------------------------------------------------------------------------------------------
# bad input: rc 2, the file named, the problem said, no output left


def _make_bad(kind: str, d: Path, good: Path) -> Path:
    aff = np.diag([2.0, 2.0, 3.0, 1.0])
    if kind == "missing":
        return d / "missing.nii.gz"
    if kind == "not_nifti_suffix":
        p = d / "scan.txt"
        p.write_text("hello")
        return p
    if kind == "not_nifti_content":
        p = d / "garbage.nii"
        p.write_bytes(os.urandom(2000))
        return p
    if kind == "corrupt_gzip":
        p = d / "truncated.nii.gz"
        raw = good.read_bytes()
        p.write_bytes(raw[: len(raw) // 2])
        return p
    if kind == "bad_gzip_header":
        p = d / "notgzip.nii.gz"
        p.write_bytes(b"\x1f\x8b" + os.urandom(500))
        return p
    p = d / f"{kind}.nii.gz"
    if kind == "2d":
        nib.Nifti1Image(np.ones((64, 64), np.float32), aff).to_filename(str(p))
    elif kind == "4d":
        nib.Nifti1Image(np.ones((16, 16, 4, 3), np.float32), aff).to_filename(str(p))
    elif kind == "nan":
        a = np.asarray(nib.load(str(good)).dataobj, dtype=np.float32)
        a[10, 20, 3] = np.nan
        a[11, 20, 3] = np.inf
        nib.Nifti1Image(a, aff).to_filename(str(p))
    elif kind == "zero_size":
        nib.Nifti1Image(np.ones((0, 16, 16), np.float32), aff).to_filename(str(p))
    elif kind == "thin":
        nib.Nifti1Image(np.random.rand(32, 1, 32).astype(np.float32), aff).to_filename(str(p))
    return p


BAD = {
    "missing": "does not exist|no such file",
    "not_nifti_suffix": "not a NIfTI",
    "not_nifti_content": "NIfTI",
    "corrupt_gzip": "corrupt|truncated",
    "bad_gzip_header": "corrupt|not a NIfTI|gzip",
    "2d": "2D",
    "4d": "4D",
    "nan": "NaN",
    "zero_size": "zero-size|no image data|shape",
    "thin": "1-voxel",
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_input(kind, tiny_keras_file, small_lowres_file, tmp_path, capsys):
    import re

    src_dir, out_dir = tmp_path / "in", tmp_path / "out"
    src_dir.mkdir()
    out_dir.mkdir()
    bad = _make_bad(kind, src_dir, small_lowres_file)
    out = out_dir / "new" / "result.nii.gz"
    rc = _predict(bad, out, "--model", tiny_keras_file)
    err = capsys.readouterr().err
    assert rc == 2
    lines = [ln for ln in err.strip().splitlines() if "error" in ln]
    assert len(lines) == 1, err
    assert lines[0].startswith("keras-seran predict: error:")
    assert bad.name in lines[0]
    assert re.search(BAD[kind], lines[0], re.IGNORECASE), lines[0]
    if kind in ("2d", "4d"):
        assert (
            "extract" in lines[0] or "single slice" in lines[0] or "load" in lines[0]
        )  # what to do
    assert_no_output(out_dir)
    assert not (out_dir / "new").exists()  # not even the output folder was created


def test_output_equal_to_input(small_lowres_file, tiny_keras_file, tmp_path, capsys):
    p = tmp_path / "scan.nii.gz"
    shutil.copy(small_lowres_file, p)
    before = p.read_bytes()
    for args in ([p, p], [p, p, "--overwrite"], [p, tmp_path, "--overwrite"]):
        rc = _predict(*args, "--model", tiny_keras_file)
        err = capsys.readouterr().err
        assert rc == 2 and "scan.nii.gz" in err and "input" in err
    assert p.read_bytes() == before
    assert list_files(tmp_path) == ["scan.nii.gz"]


def test_output_name_must_be_nifti(small_lowres_file, tiny_keras_file, tmp_path, capsys):
    rc = _predict(small_lowres_file, tmp_path / "result.png", "--model", tiny_keras_file)
    assert rc == 2 and "result.png" in capsys.readouterr().err
    assert_no_output(tmp_path)


def test_unwritable_output_folder(small_lowres_file, tiny_keras_file, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        probe = locked / ".probe"
        try:
            probe.write_bytes(b"")
            probe.unlink()
            can_write = True
        except OSError:
            can_write = False
        if can_write:
            pytest.skip(
                "running as root (or with CAP_DAC_OVERRIDE): a chmod 500 folder is "
                "still writable, so there is no unwritable folder to test"
            )
        rc = _predict(small_lowres_file, locked / "sr.nii.gz", "--model", tiny_keras_file)
        err = capsys.readouterr().err
        assert rc == 2 and "locked" in err and "writ" in err
        assert list_files(locked) == []
    finally:
        locked.chmod(0o700)


def test_unwritable_output_check_without_permissions(tmp_path, monkeypatch):
    """The folder check itself (works as root too): os.access says no, or creating a file fails."""
    from keras_seran import files
    from keras_seran.errors import OutputPathError

    monkeypatch.setattr(files.os, "access", lambda *a, **k: False)
    with pytest.raises(OutputPathError, match="not writable"):
        files.ensure_writable_dir(tmp_path)
    monkeypatch.undo()

    def fail(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(files.tempfile, "mkstemp", fail)
    with pytest.raises(OutputPathError, match="Permission denied"):
        files.ensure_writable_dir(tmp_path)


def test_failed_write_leaves_nothing(tmp_path, monkeypatch, lowres):
    """An error (or Ctrl-C) while writing removes the temporary file; the output never appears."""
    from keras_seran import files

    img = lowres.slicer[:, :, :2]
    real = nib.Nifti1Image.to_filename

    def half_then_fail(self, filename, **kw):
        real(self, filename, **kw)
        raise KeyboardInterrupt

    monkeypatch.setattr(nib.Nifti1Image, "to_filename", half_then_fail)
    with pytest.raises(KeyboardInterrupt):
        files.save_nifti(img, tmp_path / "x.nii.gz")
    assert list_files(tmp_path) == []


def test_scale_and_model_disagree(tiny_keras_file, small_lowres_file, tmp_path, capsys):
    rc = _predict(
        small_lowres_file, tmp_path / "o.nii.gz", "--model", tiny_keras_file, "--scale", "3"
    )
    err = capsys.readouterr().err
    assert rc == 2 and "tiny_x2.keras" in err and "upscales by 2" in err
    assert_no_output(tmp_path)


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--overlap", "-4", "--tile-size", "20"], "--overlap must be an integer >= 0, got -4"),
        (["--tile-size", "16"], "--tile-size 16 must be larger than overlap 16"),
        (["--output-dtype", "bogus"], "--output-dtype must be one of input, uint8"),
        (["--output-dtype", "float16"], "float64; got 'float16'"),
        (["--max-memory", "inf"], "--max-memory must be a finite number > 0, got inf"),
        (["--max-memory", "nan"], "--max-memory must be a finite number > 0, got nan"),
        (["--percentiles", "99", "1"], "--percentiles must be two numbers 0 <= low < high <= 100"),
        (["--data-consistency", "1.5"], "--data-consistency must be a finite number in [0, 1]"),
        (["--degradation", "kspace"], "--degradation picks one of the bundled models, and --model"),
    ],
)
def test_bad_options_fail_before_the_model_loads(
    extra, expected, small_lowres_file, tmp_path, capsys
):
    """A missing --model would be the error if the model were loaded first."""
    rc = _predict(
        small_lowres_file,
        tmp_path / "new" / "o.nii.gz",
        "--model",
        tmp_path / "absent.keras",
        *extra,
    )
    err = capsys.readouterr().err
    assert rc == 2 and expected in err and "absent.keras" not in err, err
    assert not (tmp_path / "new").exists()


def test_missing_kspace_weights_are_one_line_naming_the_file(small_lowres_file, tmp_path, capsys):
    """--degradation kspace picks the bundled k-space weights; while they are not installed, one
    line names the missing .weights.h5 and nothing is written."""
    from keras_seran.registry import Bundled

    weights = Bundled(scale=2, degradation="kspace")
    if weights.exists():
        pytest.skip("the kspace weights are installed")
    rc = _predict(small_lowres_file, tmp_path / "new" / "o.nii.gz", "--degradation", "kspace")
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and str(weights.weights_path) in err, err
    assert not (tmp_path / "new").exists()


def test_model_and_degradation_must_agree(small_lowres_file, tmp_path, capsys):
    rc = _predict(
        small_lowres_file, tmp_path / "o.nii.gz", "--model", "x2", "--degradation", "kspace"
    )
    err = capsys.readouterr().err
    assert rc == 2 and "--model x2 is trained on bicubic, not --degradation kspace" in err
    assert_no_output(tmp_path)


def test_data_consistency_reaches_the_network_output(
    tiny_keras_file, small_lowres_file, tmp_path, capsys
):
    plain, dc = tmp_path / "plain.nii.gz", tmp_path / "dc.nii.gz"
    assert _predict(small_lowres_file, plain, "--model", tiny_keras_file) == 0
    assert _predict(small_lowres_file, dc, "--model", tiny_keras_file, "--data-consistency") == 0, (
        capsys.readouterr().err
    )
    a, b = (np.asarray(nib.load(str(p)).dataobj) for p in (plain, dc))
    assert a.shape == b.shape == (256, 256, 10)
    assert np.abs(a - b).max() > 1e-3 * np.abs(a).max()


def test_memory_budget_smaller_than_the_overlap(
    tiny_keras_file, small_lowres_file, tmp_path, capsys
):
    rc = _predict(
        small_lowres_file,
        tmp_path / "o.nii.gz",
        "--model",
        tiny_keras_file,
        "--max-memory",
        "0.01",
        "--overlap",
        "100",
    )
    err = capsys.readouterr().err
    assert rc == 2 and "--max-memory" in err and "overlap 100" in err
    assert_no_output(tmp_path)


def test_failed_run_creates_no_folders(small_lowres_file, tmp_path, capsys):
    rc = _predict(
        small_lowres_file,
        tmp_path / "nd1" / "deep" / "x.nii.gz",
        "--model",
        tmp_path / "nope.keras",
    )
    assert rc == 2 and "nope.keras" in capsys.readouterr().err
    assert not (tmp_path / "nd1").exists()


def test_help_does_not_need_tensorflow_args():
    from keras_seran.cli import build_parser

    args = build_parser().parse_args(
        [
            "predict",
            "a.nii.gz",
            "b.nii.gz",
            "--tile-size",
            "64",
            "--max-memory",
            "500",
            "--device",
            "cpu",
        ]
    )
    assert args.tile_size == 64 and args.max_memory == 500 and args.device == "cpu"


def test_device_gpu_without_gpu_is_a_clear_error(
    small_lowres_file, tiny_keras_file, tmp_path, capsys
):
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is visible: --device gpu is valid here")
    rc = _predict(
        small_lowres_file, tmp_path / "o.nii.gz", "--model", tiny_keras_file, "--device", "gpu"
    )
    err = capsys.readouterr().err
    assert rc == 2 and "--device gpu" in err and "--device cpu" in err
    assert_no_output(tmp_path)


# ---------------------------------------------------------------------------------------------
# interrupted runs: Ctrl-C, SIGTERM, SIGHUP leave no temporary file and no empty folder


def _folder_of_copies(small_lowres_file, folder: Path, n: int = 2) -> Path:
    folder.mkdir()
    for i in range(n):
        shutil.copy(small_lowres_file, folder / f"v{i + 1}.nii.gz")
    return folder


def test_interrupt_before_the_first_write_leaves_no_folder(
    tiny_keras_file, small_lowres_file, tmp_path, monkeypatch, capsys
):
    """Ctrl-C while the first result is written: no temporary file, and the output folders made
    for it are removed again (they are still empty)."""
    src = _folder_of_copies(small_lowres_file, tmp_path / "in")
    real = nib.Nifti1Image.to_filename

    def half_then_interrupt(self, filename, **kw):
        real(self, filename, **kw)
        raise KeyboardInterrupt

    monkeypatch.setattr(nib.Nifti1Image, "to_filename", half_then_interrupt)
    rc = _predict(src, tmp_path / "out" / "deep", "--model", tiny_keras_file)
    assert rc == 130 and "interrupted" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert list_files(tmp_path) == ["in/v1.nii.gz", "in/v2.nii.gz"]


def test_sighup_cleans_up_and_restores_the_handler(
    tiny_keras_file, small_lowres_file, tmp_path, monkeypatch, capsys
):
    """SIGHUP mid-write runs the same cleanup as Ctrl-C; exit code 128 + 1; the caller's handler
    is back afterwards."""
    import signal
    import time

    if not hasattr(signal, "SIGHUP"):
        pytest.skip("no SIGHUP on this platform")
    real = nib.Nifti1Image.to_filename

    def half_then_hangup(self, filename, **kw):
        real(self, filename, **kw)
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(30)  # the handler raises here, long before the end

    def callers_handler(signum, frame):  # reached only if main installed none
        raise AssertionError("SIGHUP was not handled by keras_seran.cli.main")

    monkeypatch.setattr(nib.Nifti1Image, "to_filename", half_then_hangup)
    original = signal.signal(signal.SIGHUP, callers_handler)
    try:
        before = signal.getsignal(signal.SIGHUP), signal.getsignal(signal.SIGTERM)
        t0 = time.monotonic()
        rc = _predict(small_lowres_file, tmp_path / "out" / "sr.nii.gz", "--model", tiny_keras_file)
        after = signal.getsignal(signal.SIGHUP), signal.getsignal(signal.SIGTERM)
    finally:
        signal.signal(signal.SIGHUP, original)
    assert rc == 129 and "interrupted (SIGHUP)" in capsys.readouterr().err
    assert time.monotonic() - t0 < 25
    assert list_files(tmp_path) == [] and not (tmp_path / "out").exists()
    assert after == before


def test_an_ignored_sighup_stays_ignored(tiny_keras_file, small_lowres_file, tmp_path, capsys):
    """Under nohup (SIGHUP ignored) a hangup must not stop the command."""
    import signal

    if not hasattr(signal, "SIGHUP"):
        pytest.skip("no SIGHUP on this platform")
    real = nib.Nifti1Image.to_filename

    def write_after_hangup(self, filename, **kw):
        os.kill(os.getpid(), signal.SIGHUP)
        real(self, filename, **kw)

    original = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(nib.Nifti1Image, "to_filename", write_after_hangup)
            rc = _predict(small_lowres_file, tmp_path / "sr.nii.gz", "--model", tiny_keras_file)
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, original)
    assert rc == 0, capsys.readouterr().err
    assert (tmp_path / "sr.nii.gz").is_file()


_SLOW_WRITE = """
import pathlib, sys, time
import nibabel as nib
real = nib.Nifti1Image.to_filename
def slow(self, filename, **kw):
    real(self, filename, **kw)
    pathlib.Path(sys.argv[1]).write_text(str(filename))   # the temporary file is on disk now
    time.sleep(120)
nib.Nifti1Image.to_filename = slow
from keras_seran.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_sigterm_mid_write_leaves_nothing(tiny_keras_file, small_lowres_file, tmp_path):
    """``kill -TERM`` of a folder predict while it writes: exit 143, the temporary file and the
    output folder made for it are gone, and the input folder is untouched."""
    import signal
    import subprocess
    import sys
    import time

    src = _folder_of_copies(small_lowres_file, tmp_path / "in")
    script, marker = tmp_path / "slow_write.py", tmp_path / "writing.txt"
    script.write_text(_SLOW_WRITE)
    proc = subprocess.Popen(
        [
            sys.executable,
            str(script),
            str(marker),
            "predict",
            str(src),
            str(tmp_path / "out"),
            "--model",
            str(tiny_keras_file),
            "--no-progress",
            "--device",
            "cpu",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    try:
        deadline = time.monotonic() + 240
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert marker.exists(), proc.communicate(timeout=5)
        tmp_file = Path(marker.read_text())
        assert tmp_file.name.startswith(".keras-seran-tmp-") and tmp_file.exists()
        assert tmp_file.name.endswith("-v1.nii.gz")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert "keras-seran predict: interrupted (SIGTERM)" in err and "Traceback" not in err
    assert not tmp_file.exists() and not (tmp_path / "out").exists()
    assert sorted(list_files(src)) == ["v1.nii.gz", "v2.nii.gz"]


def test_top_level_help_has_no_markup():
    from keras_seran.cli import build_parser

    text = build_parser(["--help"]).format_help()
    assert "The keras-seran command line" in text and "``" not in text


def test_the_package_warnings_print_as_one_line_like_its_errors():
    """A warning of keras_seran's own (e.g. a --max-memory below the smallest tile) prints as
    'keras-seran predict: warning: ...', not with a source file and line; others as usual."""
    import warnings

    import keras_seran.inference.resolver as resolver
    from keras_seran.cli import _one_line_warnings

    default = warnings.formatwarning
    with _one_line_warnings("predict"):
        ours = warnings.formatwarning("budget too small", UserWarning, resolver.__file__, 325)
        theirs = warnings.formatwarning("other", UserWarning, os.__file__, 7)
    assert ours == "keras-seran predict: warning: budget too small\n"
    assert os.__file__ in theirs and "other" in theirs
    assert warnings.formatwarning is default
