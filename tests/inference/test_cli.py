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
    rc = _predict(small_lowres_file, out, "--model", tiny_keras_file, "--device", "cpu",
                  "--batch-size", "4")
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    img, src = nib.load(str(out)), nib.load(str(small_lowres_file))
    assert img.shape == (256, 256, 10)
    np.testing.assert_allclose(img.header.get_zooms(), (1.0, 1.0, 3.0))
    np.testing.assert_allclose(g.fov_corners(img.affine, img.shape),
                               g.fov_corners(src.affine, src.shape), atol=1e-4)
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


def test_output_into_existing_folder_and_tiles(tiny_keras_file, small_lowres_file, tmp_path, capsys):
    rc = _predict(small_lowres_file, tmp_path, "--model", tiny_keras_file, "--tile-size", "80",
                  "--overlap", "16", "--output-dtype", "input")
    assert rc == 0, capsys.readouterr().err
    img = nib.load(str(tmp_path / small_lowres_file.name))
    assert img.shape == (256, 256, 10) and img.get_data_dtype() == np.int16


def test_max_memory(tiny_keras_file, small_lowres_file, tmp_path, capsys):
    rc = _predict(small_lowres_file, tmp_path / "m.nii", "--model", tiny_keras_file,
                  "--max-memory", "8")
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
        assert "extract" in lines[0] or "single slice" in lines[0] or "load" in lines[0]  # what to do
    assert_no_output(out_dir)
    assert not (out_dir / "new").exists()          # not even the output folder was created


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
            pytest.skip("running as root (or with CAP_DAC_OVERRIDE): a chmod 500 folder is "
                        "still writable, so there is no unwritable folder to test")
        rc = _predict(small_lowres_file, locked / "sr.nii.gz", "--model", tiny_keras_file)
        err = capsys.readouterr().err
        assert rc == 2 and "locked" in err and "writ" in err
        assert list_files(locked) == []
    finally:
        locked.chmod(0o700)


def test_unwritable_output_check_without_permissions(tmp_path, monkeypatch):
    """The folder check itself (works as root too): os.access says no, or creating a file fails."""
    from keras_seran.errors import OutputPathError
    from keras_seran.inference import writer

    monkeypatch.setattr(writer.os, "access", lambda *a, **k: False)
    with pytest.raises(OutputPathError, match="not writable"):
        writer.ensure_writable_dir(tmp_path)
    monkeypatch.undo()

    def fail(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(writer.tempfile, "mkstemp", fail)
    with pytest.raises(OutputPathError, match="Permission denied"):
        writer.ensure_writable_dir(tmp_path)


def test_failed_write_leaves_nothing(tmp_path, monkeypatch, lowres):
    """An error (or Ctrl-C) while writing removes the temporary file; the output never appears."""
    from keras_seran.inference import writer

    img = lowres.slicer[:, :, :2]
    real = nib.Nifti1Image.to_filename

    def half_then_fail(self, filename, **kw):
        real(self, filename, **kw)
        raise KeyboardInterrupt

    monkeypatch.setattr(nib.Nifti1Image, "to_filename", half_then_fail)
    with pytest.raises(KeyboardInterrupt):
        writer.save_nifti(img, tmp_path / "x.nii.gz")
    assert list_files(tmp_path) == []


def test_scale_and_model_disagree(tiny_keras_file, small_lowres_file, tmp_path, capsys):
    rc = _predict(small_lowres_file, tmp_path / "o.nii.gz", "--model", tiny_keras_file,
                  "--scale", "3")
    err = capsys.readouterr().err
    assert rc == 2 and "tiny_x2.keras" in err and "upscales by 2" in err
    assert_no_output(tmp_path)


@pytest.mark.parametrize("extra, expected", [
    (["--overlap", "-4", "--tile-size", "20"], "--overlap must be 0 or more"),
    (["--output-dtype", "bogus"], "--output-dtype 'bogus'"),
    (["--output-dtype", "float16"], "--output-dtype 'float16'"),
])
def test_bad_options_fail_before_the_model_loads(extra, expected, small_lowres_file, tmp_path,
                                                 capsys):
    """A missing --model would be the error if the model were loaded first."""
    rc = _predict(small_lowres_file, tmp_path / "new" / "o.nii.gz", "--model",
                  tmp_path / "absent.keras", *extra)
    err = capsys.readouterr().err
    assert rc == 2 and expected in err and "absent.keras" not in err
    assert not (tmp_path / "new").exists()


def test_memory_budget_smaller_than_the_overlap(tiny_keras_file, small_lowres_file, tmp_path,
                                                capsys):
    rc = _predict(small_lowres_file, tmp_path / "o.nii.gz", "--model", tiny_keras_file,
                  "--max-memory", "0.01", "--overlap", "100")
    err = capsys.readouterr().err
    assert rc == 2 and "--max-memory" in err and "overlap 100" in err
    assert_no_output(tmp_path)


def test_failed_run_creates_no_folders(small_lowres_file, tmp_path, capsys):
    rc = _predict(small_lowres_file, tmp_path / "nd1" / "deep" / "x.nii.gz", "--model",
                  tmp_path / "nope.keras")
    assert rc == 2 and "nope.keras" in capsys.readouterr().err
    assert not (tmp_path / "nd1").exists()


def test_help_does_not_need_tensorflow_args():
    from keras_seran.cli import build_parser

    args = build_parser().parse_args(["predict", "a.nii.gz", "b.nii.gz", "--tile-size", "64",
                                      "--max-memory", "500", "--device", "cpu"])
    assert args.tile_size == 64 and args.max_memory == 500 and args.device == "cpu"


def test_device_gpu_without_gpu_is_a_clear_error(small_lowres_file, tiny_keras_file, tmp_path,
                                                 capsys):
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is visible: --device gpu is valid here")
    rc = _predict(small_lowres_file, tmp_path / "o.nii.gz", "--model", tiny_keras_file,
                  "--device", "gpu")
    err = capsys.readouterr().err
    assert rc == 2 and "--device gpu" in err and "--device cpu" in err
    assert_no_output(tmp_path)
