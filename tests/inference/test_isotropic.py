"""In-plane SR then through-plane restoration of a real thick-slice stack: the API
(``predict_volume(isotropic=True)``) and the command line (``predict --isotropic``)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from keras_seran import SuperResolver
from keras_seran.cli import main
from keras_seran.inference.geometry import fov_corners, voxel_sizes
from keras_seran.inference.throughplane import ThroughPlaneResolver, interpolate_axis


def _identity(batch: np.ndarray) -> np.ndarray:
    return np.asarray(batch, np.float32)


def test_inplane_then_through_plane_gives_a_1mm_grid_over_the_same_field_of_view(
    tiny_seran, lowres
):
    img = lowres.slicer[:, :, 26:36]  # 2 x 2 x 3 mm, 10 slices
    out = SuperResolver(tiny_seran).predict_volume(
        img, isotropic=True, through_plane=ThroughPlaneResolver(_identity)
    )
    assert out.shape == (256, 256, 30)
    np.testing.assert_allclose(voxel_sizes(out.affine), [1.0, 1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(
        fov_corners(out.affine, out.shape), fov_corners(img.affine, img.shape), atol=1e-4
    )


def test_an_identity_restoration_leaves_the_interpolation(tiny_seran, lowres):
    """With an identity through-plane network the isotropic result is the in-plane result
    interpolated (cubic) along the thick axis: the two stages compose, nothing else is added."""
    img = lowres.slicer[:, :, 26:36]
    sr = SuperResolver(tiny_seran)
    inplane = np.asarray(sr.predict_volume(img).dataobj, np.float32)
    iso = np.asarray(
        sr.predict_volume(
            img, isotropic=True, through_plane=ThroughPlaneResolver(_identity)
        ).dataobj
    )
    expected = np.clip(interpolate_axis(inplane, 2, 30, "cubic"), inplane.min(), inplane.max())
    span = float(inplane.max() - inplane.min())
    assert np.max(np.abs(iso - expected)) < 1e-3 * span


def test_adaptation_changes_the_through_plane_network_only_for_that_scan(lowres):
    import keras

    from keras_seran.models.throughplane import seran_through_plane

    keras.utils.set_random_seed(5)
    tp = ThroughPlaneResolver(seran_through_plane("tiny"))
    img = lowres.slicer[:, :, 26:36]
    before = [w.copy() for w in tp.model.get_weights()]
    plain = np.asarray(tp.predict_volume(img).dataobj)
    adapted = np.asarray(tp.predict_volume(img, adapt_steps=2).dataobj)
    assert plain.shape == adapted.shape == (128, 128, 15)
    assert not np.allclose(plain, adapted)
    assert all(np.array_equal(a, b) for a, b in zip(before, tp.model.get_weights()))


def test_adaptation_learns_from_a_stack_with_a_thin_field_of_view():
    """A stack only 16 voxels across in-plane (the bundled slab as a 4 mm coronal stack) still
    gives adaptation pairs: patches as large as the thin side, thick along their rows."""
    from keras_seran import samples
    from keras_seran.data import load_volume, normalize
    from keras_seran.inference.adapt import adaptation_pairs

    vol = normalize(load_volume(samples.T1_AXIAL_SLAB).data)[0]  # (256, 16, 256)
    x, y = adaptation_pairs(vol, axis=2, thickness=4.0, steps=3).batch(0)
    assert x.shape == y.shape and x.shape[1:] == (16, 16, 1)
    assert np.isfinite(x).all() and not np.allclose(x, y)
    # thick slices along the rows: each patch keeps its mean, loses its row detail
    np.testing.assert_allclose(x.mean(axis=(1, 2)), y.mean(axis=(1, 2)), atol=0.05)
    assert np.abs(np.diff(x, axis=1)).mean() < np.abs(np.diff(y, axis=1)).mean()


def test_cli_isotropic_input_is_refused_before_any_model_loads(slab, tmp_path, capsys):
    src, out = tmp_path / "iso.nii.gz", tmp_path / "out" / "iso_sr.nii.gz"
    nib.save(slab, src)  # 1 mm isotropic
    assert main(["predict", str(src), str(out), "--isotropic", "--axis", "1"]) == 2
    err = capsys.readouterr().err
    assert str(src) in err and "nothing to do" in err
    assert not out.exists() and not out.parent.exists()


@pytest.mark.parametrize("extra", [["--target-spacing", "1"], ["--adapt-steps", "10"]])
def test_cli_through_plane_options_need_isotropic(extra, small_lowres_file, tmp_path, capsys):
    assert main(["predict", str(small_lowres_file), str(tmp_path / "o.nii.gz"), *extra]) == 2
    assert "isotropic" in capsys.readouterr().err


def test_cli_ratio_beyond_the_network_is_refused(small_lowres_file, tmp_path, capsys):
    out = tmp_path / "o.nii.gz"
    code = main(
        [
            "predict",
            str(small_lowres_file),
            str(out),
            "--isotropic",
            "--scale",
            "4",
            "--target-spacing",
            "0.3",
        ]
    )
    assert code == 2 and "ratio" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("extra", [[], ["--scale", "2"]])
def test_cli_missing_through_plane_weights_stop_before_any_work(
    extra, small_lowres_file, tmp_path, capsys, monkeypatch
):
    from keras_seran import registry

    weights = tmp_path / "weights"
    weights.mkdir()
    for f in registry.WEIGHTS_DIR.glob("seran_small_x2_kspace*"):  # in-plane weights stay
        (weights / f.name).write_bytes(f.read_bytes())
    monkeypatch.setattr(registry, "WEIGHTS_DIR", weights)
    out = tmp_path / "out" / "iso.nii.gz"
    assert main(["predict", str(small_lowres_file), str(out), "--isotropic", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "seran_small_throughplane.weights.h5" in err[0]
    assert not out.exists() and not out.parent.exists()


@pytest.mark.parametrize("ratio, profile", [(4, "boxcar"), (3, "gaussian")])
def test_bundled_through_plane_weights_beat_cubic_on_a_held_out_thick_stack(ratio, profile):
    """The bundled weights on the bundled slab (held out of their training) made into a thick
    coronal stack: closer to the 1 mm truth over the head than cubic interpolation (measured
    +1.1 dB at 4 mm boxcar, +1.9 dB at 3 mm Gaussian; docs/throughplane.md)."""
    from keras_seran import samples
    from keras_seran.data import load_volume, normalize
    from keras_seran.data.slice_profile import block_centres, profile_matrix

    vol = normalize(load_volume(samples.T1_AXIAL_SLAB).data)[0]  # (256, 16, 256)
    n = vol.shape[2] - vol.shape[2] % ratio
    truth = vol[:, :, :n]
    acquire = profile_matrix(n, block_centres(n // ratio, ratio), ratio, profile)
    thick = np.einsum("kn,ijn->ijk", acquire, truth).astype(np.float32)
    cubic = interpolate_axis(thick, 2, n, "cubic")
    restored = ThroughPlaneResolver.from_pretrained().restore(cubic, 2)
    head = truth > 0.05

    def psnr(v):
        return 10 * np.log10(1 / np.mean((np.clip(v, 0, None)[head] - truth[head]) ** 2))

    assert psnr(restored) - psnr(cubic) >= 0.8


def test_cli_isotropic_with_the_bundled_weights(small_lowres_file, tmp_path, capsys):
    """predict --isotropic alone: 2 x 2 x 3 mm -> 2 x 2 x 2 mm over the same field of view, in
    the input's intensity range."""
    out = tmp_path / "iso.nii.gz"
    assert main(["predict", str(small_lowres_file), str(out), "--isotropic", "--no-progress"]) == 0
    src, img = nib.load(small_lowres_file), nib.load(out)
    assert img.shape == (128, 128, 15)
    np.testing.assert_allclose(voxel_sizes(img.affine), [2.0, 2.0, 2.0], atol=1e-6)
    np.testing.assert_allclose(
        fov_corners(img.affine, img.shape), fov_corners(src.affine, src.shape), atol=1e-4
    )
    data, lr = np.asarray(img.dataobj, np.float32), np.asarray(src.dataobj, np.float32)
    assert lr.min() <= data.min() and data.max() <= lr.max() and data.std() > 0.2 * lr.std()
