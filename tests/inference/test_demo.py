"""``keras-seran demo`` end to end on the bundled real MR slab."""

from __future__ import annotations

import math
import time

import nibabel as nib
import numpy as np
from PIL import Image

from keras_seran import samples
from keras_seran.inference import geometry as g
from keras_seran.inference.demo import run_demo


def test_demo_shows_its_steps_unless_asked_not_to(tiny_seran, tmp_path, capsys):
    run_demo(tmp_path / "a", 2, model=tiny_seran, progress=True)
    lines = capsys.readouterr().out.splitlines()
    assert [line[:5] for line in lines] == ["[1/4]", "[2/4]", "[3/4]", "[4/4]"], lines
    assert "super-resolving 16 slices of 128x128 pixels" in lines[2]
    run_demo(tmp_path / "b", 2, model=tiny_seran, progress=False)
    assert capsys.readouterr().out == ""


def test_demo_without_matplotlib_writes_the_volumes_and_says_why_no_png(
    tiny_seran, tmp_path, monkeypatch, capsys
):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "matplotlib" else find_spec(name, *a),
    )
    r = run_demo(tmp_path / "demo", 2, model=tiny_seran, verbose=True)
    assert r["png"] is None and math.isfinite(r["psnr_seran"])
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == [
        "t1_slab_lr_x2.nii.gz",
        "t1_slab_seran_x2.nii.gz",
    ]
    assert "no before/after PNG: matplotlib is not installed" in capsys.readouterr().out


def test_run_demo_with_injected_model(tiny_seran, tmp_path):
    """The whole demo with a small untrained model (the real command uses the bundled weights)."""
    r = run_demo(tmp_path / "demo", 2, model=tiny_seran)
    for key in ("lr", "sr", "png"):
        assert (tmp_path / "demo" / r[key].split("/")[-1]).exists()
    hr = nib.load(str(samples.T1_AXIAL_SLAB))
    lr, sr = nib.load(r["lr"]), nib.load(r["sr"])
    assert lr.shape == (128, 16, 128) and sr.shape == (256, 16, 256)
    np.testing.assert_allclose(lr.header.get_zooms(), (2.0, 1.0, 2.0))
    np.testing.assert_allclose(sr.header.get_zooms(), (1.0, 1.0, 1.0))
    # LR and SR cover the HR field of view; SR lands exactly on the HR grid
    for img in (lr, sr):
        np.testing.assert_allclose(
            g.fov_corners(img.affine, img.shape), g.fov_corners(hr.affine, hr.shape), atol=1e-4
        )
    np.testing.assert_allclose(sr.affine, hr.affine, atol=1e-4)
    assert r["sr_affine_matches_hr"]
    for k in ("psnr_bicubic", "psnr_seran", "ssim_bicubic", "ssim_seran", "psnr_nearest"):
        assert math.isfinite(r[k])
    assert r["psnr_bicubic"] > r["psnr_nearest"] > 20  # sane metrics on real MR
    png = Image.open(r["png"])
    assert png.format == "PNG" and png.size[0] > 3 * png.size[1]
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == sorted(
        ["t1_slab_lr_x2.nii.gz", "t1_slab_seran_x2.nii.gz", "t1_slab_compare_x2.png"]
    )
    # running again overwrites its own files
    assert run_demo(tmp_path / "demo", 2, model=tiny_seran)["png"] == r["png"]


def test_demo_x3_crops_to_multiple(tmp_path):
    import keras

    from keras_seran.models import seran

    keras.utils.set_random_seed(3)
    r = run_demo(tmp_path, 3, model=seran(3, "tiny"))
    assert r["lr_shape"] == (85, 16, 85) and r["sr_shape"] == (255, 16, 255)
    assert r["sr_affine_matches_hr"]


def test_demo_command_with_bundled_weights(tmp_path, capsys):
    """``keras-seran demo`` as shipped: bundled weights, under a minute on a CPU."""
    from keras_seran.cli import main

    t0 = time.perf_counter()
    rc = main(["demo", "--out", str(tmp_path / "d")])
    out = capsys.readouterr().out
    assert rc == 0
    assert time.perf_counter() - t0 < 60
    assert "t1_slab_compare_x2.png" in out and "bicubic" in out and "SERAN" in out
    assert (tmp_path / "d" / "t1_slab_seran_x2.nii.gz").exists()


def test_demo_without_weights_is_a_clear_error(tmp_path, capsys, monkeypatch):
    from keras_seran import registry
    from keras_seran.cli import main

    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path / "no_weights")
    rc = main(["demo", "--out", str(tmp_path / "d")])
    err = capsys.readouterr().err
    assert rc == 2 and "seran_small_x2.weights.h5" in err and "weights" in err
    assert not (tmp_path / "d").exists()
