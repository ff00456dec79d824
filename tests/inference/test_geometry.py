"""Geometry of the upscaled grid: affine, header, field of view (pure numpy + nibabel)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from keras_seran.inference import geometry as g


def _random_affine(seed: int, zooms=(2.0, 2.0, 3.0)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    a = np.eye(4)
    a[:3, :3] = q * np.asarray(zooms)
    a[:3, 3] = rng.uniform(-120, 120, size=3)
    return a


@pytest.mark.parametrize(
    "zooms, axis",
    [
        ((2, 2, 3), 2),
        ((3, 2, 2), 0),
        ((2, 1, 2), 1),
        ((1, 1, 1), 2),
        ((1.0, 1.0004, 1.0), 2),
        ((0.9, 1.2, 5.0), 2),
        ((5.0, 1.2, 0.9), 0),
    ],
)
def test_choose_slice_axis(zooms, axis):
    assert g.choose_slice_axis(zooms) == axis


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_field_of_view_preserved(scale, axis):
    """Outer corners of the FOV and its centre are at the same world coordinates after upscaling."""
    aff = _random_affine(scale * 10 + axis)
    shape = (37, 20, 11)
    out_shape = [n * scale if a != axis else n for a, n in enumerate(shape)]
    new = g.upscale_affine(aff, scale, g.inplane_axes(axis))
    np.testing.assert_allclose(g.fov_corners(new, out_shape), g.fov_corners(aff, shape), atol=1e-9)
    np.testing.assert_allclose(g.fov_centre(new, out_shape), g.fov_centre(aff, shape), atol=1e-9)
    vs_in, vs_out = g.voxel_sizes(aff), g.voxel_sizes(new)
    for a in range(3):
        assert vs_out[a] == pytest.approx(vs_in[a] if a == axis else vs_in[a] / scale)
    # first output voxel centre sits at input coordinate (0 + 0.5)/s - 0.5 along in-plane axes
    vox0 = np.array([(0.5 / scale - 0.5) if a != axis else 0.0 for a in range(3)])
    np.testing.assert_allclose(new[:3, 3], g.apply_affine(aff, vox0[None])[0], atol=1e-9)
    # downscaling is the inverse
    np.testing.assert_allclose(g.downscale_affine(new, scale, g.inplane_axes(axis)), aff, atol=1e-9)


def test_header_of_real_lowres(lowres, tmp_path):
    """Bundled real 2x2x3 mm T1 (qform code 2, sform code 1): codes kept, both forms, zooms, on disk."""
    s, axis = 2, g.choose_slice_axis(lowres.header.get_zooms())
    assert axis == 2
    data = np.zeros((256, 256, 62), dtype=np.float32)
    out = g.upscaled_image(data, lowres.affine, lowres.header, s, axis)
    p = tmp_path / "up.nii.gz"
    out.to_filename(str(p))
    back = nib.load(str(p))
    assert back.shape == (256, 256, 62)
    assert back.get_data_dtype() == np.float32
    np.testing.assert_allclose(back.header.get_zooms()[:3], (1.0, 1.0, 3.0))
    assert int(back.header["qform_code"]) == int(lowres.header["qform_code"]) == 2
    assert int(back.header["sform_code"]) == int(lowres.header["sform_code"]) == 1
    expect = g.upscale_affine(lowres.affine, s, (0, 1))
    np.testing.assert_allclose(back.affine, expect, atol=1e-4)
    np.testing.assert_allclose(back.header.get_qform(), expect, atol=1e-4)
    np.testing.assert_allclose(back.header.get_sform(), expect, atol=1e-4)
    np.testing.assert_allclose(
        g.fov_corners(back.affine, back.shape),
        g.fov_corners(lowres.affine, lowres.shape),
        atol=1e-4,
    )
    np.testing.assert_allclose(
        g.fov_centre(back.affine, back.shape), g.fov_centre(lowres.affine, lowres.shape), atol=1e-4
    )
    assert back.header.get_xyzt_units() == lowres.header.get_xyzt_units()


def test_qform_and_sform_mapped_separately():
    """A header whose sform differs from its qform (e.g. a shear): each is mapped on its own."""
    q = _random_affine(3, (1.0, 1.0, 4.0))
    sform = q.copy()
    sform[0, 1] += 0.2  # shear: only the sform can hold it
    hdr = nib.Nifti1Header()
    hdr.set_data_shape((10, 12, 8))
    hdr.set_qform(q, code=1)
    hdr.set_sform(sform, code=2)
    out = g.upscaled_header(hdr, (30, 36, 8), 3, (0, 1), sform)
    np.testing.assert_allclose(out.get_sform(), g.upscale_affine(sform, 3, (0, 1)), atol=1e-6)
    np.testing.assert_allclose(out.get_qform(), g.upscale_affine(q, 3, (0, 1)), atol=1e-4)
    assert (int(out["qform_code"]), int(out["sform_code"])) == (1, 2)


def test_missing_or_stale_header():
    aff = _random_affine(5, (1.5, 1.5, 1.5))
    img = g.upscaled_image(np.zeros((20, 20, 4), np.float32), aff, None, 2, 2)
    np.testing.assert_allclose(img.affine, g.upscale_affine(aff, 2, (0, 1)))
    np.testing.assert_allclose(img.header.get_zooms(), (0.75, 0.75, 1.5), rtol=1e-6)
    # a header that disagrees with the image's affine: the affine wins
    hdr = nib.Nifti1Header()
    hdr.set_data_shape((10, 10, 4))
    hdr.set_sform(np.eye(4), code=1)
    img = g.upscaled_image(np.zeros((20, 20, 4), np.float32), aff, hdr, 2, 2)
    np.testing.assert_allclose(
        img.header.get_best_affine(), g.upscale_affine(aff, 2, (0, 1)), atol=1e-6
    )


def test_downscaled_image_roundtrip(slab):
    lr = g.downscaled_image(np.zeros((64, 16, 64), np.float32), slab.affine, slab.header, 4, 1)
    np.testing.assert_allclose(lr.header.get_zooms(), (4.0, 1.0, 4.0))
    np.testing.assert_allclose(
        g.fov_corners(lr.affine, lr.shape), g.fov_corners(slab.affine, slab.shape), atol=1e-6
    )
    up = g.upscaled_image(np.zeros((256, 16, 256), np.float32), lr.affine, lr.header, 4, 1)
    np.testing.assert_allclose(up.affine, slab.affine, atol=1e-6)
    assert int(up.header["sform_code"]) == int(slab.header["sform_code"])


def test_slice_timing_cleared_only_when_the_slice_axis_is_resampled(lowres):
    """dim_info says axis 2 is the acquisition's slice axis, with slice timing for its 62
    slices: upscaling axes 0 and 1 keeps that timing; upscaling axis 2 (a slice axis chosen by
    hand) would leave 62 slice times on 124 slices, so the fields are cleared."""
    data = np.asarray(lowres.dataobj, np.float32)[:32, :32, :6]
    img = nib.Nifti1Image(data, lowres.affine)
    img.header.set_dim_info(0, 1, 2)
    img.header["slice_code"], img.header["slice_end"] = 1, 5
    img.header["slice_duration"] = 0.08
    up = g.upscaled_image(np.zeros((64, 64, 6), np.float32), img.affine, img.header, 2, 2)
    assert up.header.get_dim_info() == (0, 1, 2) and up.header["slice_end"] == 5
    assert len(up.header.get_slice_times()) == 6
    up = g.upscaled_image(np.zeros((32, 64, 12), np.float32), img.affine, img.header, 2, 0)
    assert up.header.get_dim_info() == (0, 1, None)
    assert up.header["slice_end"] == 0 and up.header["slice_duration"] == 0
    assert up.header["descrip"].tobytes().startswith(b"keras_seran x2 super-resolution")
