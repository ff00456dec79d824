"""SuperResolver on real MR: shapes, geometry, intensities, dtypes, slice API and its errors."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from keras_seran.errors import InputDataError, UsageError
from keras_seran.inference import geometry as g
from keras_seran.inference.resolver import SuperResolver


def test_scale_inferred_and_checked(tiny_seran):
    assert SuperResolver(tiny_seran).scale == 2
    with pytest.raises(ValueError, match="upscales by 2"):
        SuperResolver(tiny_seran, scale=3)


def test_lazy_export():
    import keras_seran

    assert keras_seran.SuperResolver is SuperResolver


def test_predict_slice_any_range(tiny_seran, slab):
    """Robust normalisation: a*x + b in -> a*y + b out; shape (H*s, W*s) float32."""
    r = SuperResolver(tiny_seran)
    sl = np.asarray(slab.dataobj, dtype=np.float32)[:, 8, 64:192]
    y = r.predict_slice(sl)
    assert y.shape == (512, 256) and y.dtype == np.float32
    assert sl.min() <= y.min() and y.max() <= sl.max()  # clipped to the input range
    y2 = r.predict_slice(sl.astype(np.float64) * 37.5 - 1000.0)
    np.testing.assert_allclose(y2, y * 37.5 - 1000.0, atol=1e-3 * 37.5 * np.ptp(sl))
    const = r.predict_slice(np.full((10, 12), 7.0))
    assert const.shape == (20, 24) and np.all(const == 7.0)


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((4, 5, 6)), "2D image"),
        (np.zeros(5), "2D image"),
        (np.zeros((0, 5)), "empty"),
        (np.array([[1.0, np.nan], [0.0, 1.0]]), "NaN/Inf"),
        (np.array([[1.0, np.inf], [0.0, 1.0]]), "NaN/Inf"),
    ],
)
def test_predict_slice_errors(tiny_seran, bad, match):
    with pytest.raises(UsageError, match=match):
        SuperResolver(tiny_seran).predict_slice(bad)


def test_volume_real_lowres_geometry(tiny_seran, lowres):
    """Real 2x2x3 mm T1: thick axis 2 by default; 1x1x3 mm out, same FOV corners and centre."""
    img = lowres.slicer[:, :, 28:34]  # 6 slices keep the test fast
    out = SuperResolver(tiny_seran).predict_volume(img)
    assert isinstance(out, nib.Nifti1Image)
    assert out.shape == (256, 256, 6)
    assert out.get_data_dtype() == np.float32
    np.testing.assert_allclose(out.header.get_zooms(), (1.0, 1.0, 3.0))
    np.testing.assert_allclose(
        g.fov_corners(out.affine, out.shape), g.fov_corners(img.affine, img.shape), atol=1e-4
    )
    np.testing.assert_allclose(
        g.fov_centre(out.affine, out.shape), g.fov_centre(img.affine, img.shape), atol=1e-4
    )
    np.testing.assert_allclose(out.header.get_sform(), out.affine, atol=1e-4)
    qform, qcode = out.header.get_qform(coded=True)
    assert (qcode, out.header["sform_code"]) == (
        img.header.get_qform(coded=True)[1],
        img.header["sform_code"],
    )
    if qcode:
        np.testing.assert_allclose(qform, out.affine, atol=1e-4)
    data, src = np.asarray(out.dataobj), np.asarray(img.dataobj, dtype=np.float32)
    assert src.min() <= data.min() and data.max() <= src.max()  # original intensity range
    # (the intensity *level* is checked with a meaningful model in test_volume_bicubic_is_aligned_with_hr)


def test_volume_bicubic_is_aligned_with_hr(bicubic_model, slab):
    """Physical alignment: HR -> bicubic LR (with its geometry) -> x2 bicubic network lands back on
    the HR grid: the output affine is the HR affine and the content is not shifted."""
    from keras_seran.data.degrade import bicubic_downscale

    hr = np.asarray(slab.dataobj, dtype=np.float32)[:, 4:12, :]
    hr_img = nib.Nifti1Image(hr, slab.affine, slab.header)
    lr = np.moveaxis(bicubic_downscale(np.moveaxis(hr, 1, 0), 2), 0, 1)
    lr_img = g.downscaled_image(np.ascontiguousarray(lr), hr_img.affine, hr_img.header, 2, 1)
    out = SuperResolver(bicubic_model).predict_volume(lr_img, axis=1)
    assert out.shape == hr.shape
    np.testing.assert_allclose(out.affine, slab.affine, atol=1e-5)
    sr = np.asarray(out.dataobj)[8:-8, :, 8:-8]

    def err(dx, dz):
        ref = np.roll(hr, (dx, dz), axis=(0, 2))[8:-8, :, 8:-8]
        return float(np.mean(np.abs(sr - ref)))

    base = err(0, 0)
    assert base < 0.03 * np.ptp(hr)  # same intensity units and level as the HR volume
    assert all(base < err(dx, dz) for dx, dz in [(1, 0), (-1, 0), (0, 1), (0, -1)])


def test_volume_path_and_image_agree(tiny_seran, small_lowres_file):
    r = SuperResolver(tiny_seran)
    a = r.predict_volume(small_lowres_file, batch_size=3, progress=True)
    b = r.predict_volume(nib.load(str(small_lowres_file)), batch_size=10)
    np.testing.assert_allclose(np.asarray(a.dataobj), np.asarray(b.dataobj), rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(a.affine, b.affine)


def test_isotropic_default_axis_and_explicit_axis(bicubic_model, slab):
    img = slab.slicer[100:140, :, 100:130]  # 40x16x30, 1 mm iso
    r = SuperResolver(bicubic_model)
    assert r.predict_volume(img).shape == (80, 32, 30)  # isotropic: last axis is the slice axis
    out = r.predict_volume(img, axis=1)
    assert out.shape == (80, 16, 60)
    np.testing.assert_allclose(out.header.get_zooms(), (0.5, 1.0, 0.5))
    with pytest.raises(InputDataError, match="axis"):
        r.predict_volume(img, axis=3)


def test_default_axis_follows_the_affine_written_when_pixdim_disagrees(bicubic_model, lowres):
    """A header whose qform/pixdim says axis 0 is thick while its sform (nibabel's affine, from
    which the output geometry is built) says axis 2: the sform's thick axis is kept, so the
    written voxel sizes are in-plane halves of the input's, not a mix."""
    data = np.asarray(lowres.dataobj, np.float32)[40:80, 40:80, 20:30]  # real T1, 40x40x10
    img = nib.Nifti1Image(data, np.diag([1.5, 1.5, 4.0, 1.0]))  # sform: axis 2 thick
    img.set_qform(np.diag([4.0, 1.5, 1.5, 1.0]), code=1)  # qform: axis 0 thick
    assert img.header.get_zooms()[0] == 4.0 and np.allclose(img.affine, np.diag([1.5, 1.5, 4, 1]))
    out = SuperResolver(bicubic_model).predict_volume(img)
    assert out.shape == (80, 80, 10)
    np.testing.assert_allclose(g.voxel_sizes(out.affine), (0.75, 0.75, 4.0))


def test_values_beyond_float32_are_named_as_such(tiny_seran, slab):
    """A finite float64 slice beyond float32's range was reported as NaN/Inf (the cast made
    them so)."""
    a = np.asarray(slab.dataobj, np.float64)[100:140, 8, 100:140] * 1e37
    with pytest.raises(UsageError, match="beyond the float32 range"):
        SuperResolver(tiny_seran).predict_slice(a)


def test_construction_errors_are_said_at_construction(tiny_seran):
    with pytest.raises(ValueError, match="percentiles"):
        SuperResolver(tiny_seran, percentiles=(99, 1))
    from keras_seran.models import seran

    explained = seran(2, "tiny", return_attention=True)
    with pytest.raises(ValueError, match="return_attention"):
        SuperResolver(explained)


def test_output_dtype(bicubic_model, lowres):
    img = lowres.slicer[:, :, 30:32]
    r = SuperResolver(bicubic_model)
    out = r.predict_volume(img, output_dtype="input")
    assert out.get_data_dtype() == np.int16
    d = np.asarray(out.dataobj)
    src = np.asarray(img.dataobj)
    assert d.dtype == np.int16 and src.min() <= d.min() and d.max() <= src.max()
    f = np.asarray(r.predict_volume(img).dataobj)
    np.testing.assert_array_equal(d, np.clip(np.rint(f), src.min(), src.max()).astype(np.int16))
    assert r.predict_volume(img, output_dtype="uint8").get_data_dtype() == np.uint8
    with pytest.raises(UsageError, match="dtype"):
        r.predict_volume(img, output_dtype="nonsense")


def test_output_dtype_input_keeps_scaled_integers_float(bicubic_model, lowres, tmp_path):
    """int16 stored with scl_slope 1e-4 (values ~0-0.3): rounding to int16 would leave 0 and 1."""
    src = np.asarray(lowres.slicer[:, :, 30:32].dataobj)
    img = nib.Nifti1Image(src.astype(np.int16), lowres.affine)
    img.header.set_slope_inter(1e-4, 0.0)
    p = tmp_path / "scaled.nii.gz"
    img.to_filename(str(p))
    out = SuperResolver(bicubic_model).predict_volume(p, output_dtype="input")
    d = np.asarray(out.dataobj)
    assert out.get_data_dtype() == np.float32
    assert len(np.unique(d)) > 100 and 0 < d.max() <= src.max() * 1e-4 * 1.001


def test_integer_output_that_would_destroy_the_data_is_refused(bicubic_model, lowres, monkeypatch):
    """uint8 of a CT-like range saturated 85 % of the voxels to 0; int16 of a scaled 0-2.5
    input kept 4 grey levels; both silently. Now refused before the network runs."""
    src = np.asarray(lowres.slicer[:, :, 30:32].dataobj).astype(np.float32)
    r = SuperResolver(bicubic_model)
    monkeypatch.setattr(r, "predict_normalized", lambda *a, **k: pytest.fail("network ran"))
    ct_like = nib.Nifti1Image(src * 12 - 1024, lowres.affine)
    with pytest.raises(InputDataError, match=r"beyond what uint8 holds"):
        r.predict_volume(ct_like, output_dtype="uint8")
    small_range = nib.Nifti1Image(src / src.max() * 2.5, lowres.affine)
    with pytest.raises(InputDataError, match="grey level"):
        r.predict_volume(small_range, output_dtype="int16")


def test_output_dtype_checked_before_work(bicubic_model, lowres, monkeypatch):
    r = SuperResolver(bicubic_model)
    monkeypatch.setattr(r, "predict_normalized", lambda *a, **k: pytest.fail("network ran"))
    for bad in ("float16", "complex64", "bool", "nonsense"):
        with pytest.raises(UsageError, match="output dtype"):
            r.predict_volume(lowres.slicer[:, :, 30:32], output_dtype=bad)


def test_spike_does_not_spread_through_the_attention(slab):
    """A hot pixel far beyond the tissue range bypasses the network (bicubic) instead of shifting
    SERA's image-wide attention: the far side of the slice barely moves, and the spike stays.
    (Measured: far side mean 6e-4 / max 9e-3 of the range; the network fed the raw spike: 9e-2 /
    0.6.)"""
    r = SuperResolver.from_pretrained(2, clip_output=False)  # (clipping uses the slice's max)
    sl = np.asarray(slab.dataobj, np.float32)[:, 8, :][::2, ::2]  # 128x128 real LR T1
    spiked = sl.copy()
    spiked[10, 10] = 50 * float(np.percentile(sl, 99.5))
    rng = float(sl.max() - sl.min())
    a, b = r.predict_slice(sl), r.predict_slice(spiked)
    far = np.abs(a - b)[128:, 128:] / rng
    assert far.mean() < 2e-3 and far.max() < 2e-2, (far.mean(), far.max())
    assert b[18:24, 18:24].max() > 5 * sl.max()  # the spike is kept
    lo, hi = np.percentile(sl, [0.5, 99.5])
    x0, x = ((np.stack([sl, spiked]) - lo) / (hi - lo)).astype(np.float32)
    raw = np.abs(r._run(x[None]) - r._run(x0[None]))[0, 128:, 128:] * (hi - lo) / rng
    assert raw.mean() > 20 * far.mean()  # what the bypass prevents


def test_network_alone_inside_the_range(slab):
    """The real LR slab normalised by its percentiles stays inside NETWORK_RANGE: nothing
    bypasses the network, the result is the network's alone."""
    from keras_seran.contract import NETWORK_RANGE
    from keras_seran.data.degrade import bicubic_downscale
    from keras_seran.data.normalize import normalize

    r = SuperResolver.from_pretrained(2)
    lr = bicubic_downscale(np.moveaxis(np.asarray(slab.dataobj, np.float32), 1, 0), 2)
    x = normalize(lr, clip=False)[0]
    assert NETWORK_RANGE[0] < x.min() and x.max() < NETWORK_RANGE[1]
    # one batch either way: oneDNN may round differently for another batch size
    np.testing.assert_array_equal(r.predict_normalized(x, batch_size=len(x)), r._run(x))


def test_in_memory_bad_volumes(tiny_seran):
    r = SuperResolver(tiny_seran)
    nan = np.ones((8, 8, 3), np.float32)
    nan[1, 2, 0] = np.nan
    with pytest.raises(InputDataError, match="NaN"):
        r.predict_volume(nib.Nifti1Image(nan, np.eye(4)))
    with pytest.raises(InputDataError, match="4D"):
        r.predict_volume(nib.Nifti1Image(np.ones((8, 8, 3, 2), np.float32), np.eye(4)))
    with pytest.raises(InputDataError, match="2D"):
        r.predict_volume(nib.Nifti1Image(np.ones((8, 8), np.float32), np.eye(4)))


def test_from_file(tiny_keras_file, slab):
    r = SuperResolver.from_file(tiny_keras_file)
    assert r.scale == 2
    with pytest.raises(InputDataError, match="upscales by 2"):
        SuperResolver.from_file(tiny_keras_file, scale=4)
    with pytest.raises(InputDataError, match="no such model file"):
        SuperResolver.from_file(tiny_keras_file.with_name("missing.keras"))


def test_from_pretrained(slab):
    r = SuperResolver.from_pretrained(2)
    sl = np.asarray(slab.dataobj, dtype=np.float32)[:, 8, :]
    assert r.predict_slice(sl[::2, ::2]).shape == (256, 256)


def test_pretrained_degradation_goes_to_the_registry(tmp_path, monkeypatch):
    """``degradation`` picks the weights file; a bundled name carries it; a name whose scale
    disagrees with ``scale`` is refused before any loading."""
    from keras_seran import registry

    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(InputDataError, match="seran_small_x3_kspace.weights.h5: no bundled"):
        SuperResolver.from_pretrained(3, degradation="kspace")
    with pytest.raises(InputDataError, match="edsr_small_x2_kspace.weights.h5: no bundled"):
        SuperResolver.from_spec("edsr-x2-kspace")
    with pytest.raises(UsageError, match="upscales by 2 but --scale 4"):
        SuperResolver.from_spec("x2-kspace", scale=4)


@pytest.mark.shared_data
def test_shared_256_volume(bicubic_model, shared_t1_256, tmp_path):
    """Real 256^3 T1: whole-volume x2 (the fast local model), geometry, range, written atomically."""
    r = SuperResolver(bicubic_model)
    out_path = tmp_path / "sr.nii"  # uncompressed: gzip of 256 MB float32 takes ~15 s
    summary = r.predict_file(shared_t1_256, out_path, batch_size=32)
    assert summary["shape_in"] == (256, 256, 256) and summary["shape_out"] == (512, 512, 256)
    back = nib.load(str(out_path))
    src = nib.load(str(shared_t1_256))
    np.testing.assert_allclose(back.header.get_zooms(), (0.5, 0.5, 1.0))
    np.testing.assert_allclose(
        g.fov_corners(back.affine, back.shape), g.fov_corners(src.affine, src.shape), atol=1e-4
    )
    np.testing.assert_allclose(
        g.fov_centre(back.affine, back.shape), g.fov_centre(src.affine, src.shape), atol=1e-4
    )
    mid = np.asarray(back.dataobj[:, :, 128])
    assert 0 <= mid.min() and mid.max() <= 248
    assert [p.name for p in tmp_path.iterdir()] == ["sr.nii"]


def test_a_numpy_batch_function_is_a_network(tiny_seran, lowres):
    """The resolver's network contract: (N, h, w, 1) float32 -> (N, h*s, w*s, 1), numpy; a
    function running the Keras model gives the Keras model's result."""
    from keras_seran.inference.network import Network, as_network

    calls = []

    def network(x):
        calls.append(x.shape)
        assert x.dtype == np.float32 and x.ndim == 4 and x.shape[-1] == 1
        return np.asarray(tiny_seran(x, training=False))

    img = lowres.slicer[40:90, 30:100, 30:32]
    by_function = SuperResolver(network)
    assert by_function.scale == 2 and isinstance(by_function.network, Network)
    got = np.asarray(by_function.predict_volume(img, axis=2).dataobj)
    want = np.asarray(SuperResolver(tiny_seran).predict_volume(img, axis=2).dataobj)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4 * np.ptp(want))
    assert (2, 50, 70, 1) in calls  # one batch of both slices
    keras_net = as_network(tiny_seran)
    assert keras_net.name == tiny_seran.name and keras_net.bytes_per_pixel > 0
    assert as_network(keras_net) is keras_net
    with pytest.raises(ValueError, match="upscales by 2, not by the requested scale 3"):
        SuperResolver(network, scale=3)
    with pytest.raises(ValueError, match=r"maps \(1, 12, 12, 1\) to \(1, 12, 12\)"):
        SuperResolver(lambda x: x[..., 0])
    with pytest.raises(TypeError, match="batch function"):
        SuperResolver("not a network")
