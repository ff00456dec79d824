"""The Python API's inputs: constant images, a channel axis, a bare numpy volume, NIfTI-2 and
big-endian files (nibabel's own test data), each handled as documented and as the command line
does."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nibabel.testing import data_path

from keras_seran.cli import main
from keras_seran.data.degrade import bicubic_upscale
from keras_seran.errors import InputDataError, UsageError
from keras_seran.inference import SuperResolver

NIBABEL_DATA = Path(data_path)


@pytest.fixture(scope="module")
def resolver() -> SuperResolver:
    """A numpy 'network' (bicubic x2): the API's handling of inputs needs no Keras model."""
    return SuperResolver(lambda x: bicubic_upscale(x[..., 0], 2)[..., None], scale=2)


@pytest.fixture(scope="module")
def t1_slice(slab) -> np.ndarray:
    """One real T1 slice (256, 256) in the file's units."""
    return np.asarray(slab.dataobj[:, 8, :], dtype=np.float32)


def test_a_constant_slice_is_normal_a_constant_volume_is_not(resolver, slab, tmp_path, capsys):
    # a slice: e.g. the empty background when looping over a volume's slices
    out = resolver.predict_slice(np.zeros((40, 30), np.int16))
    assert out.shape == (80, 60) and not out.any()
    np.testing.assert_array_equal(resolver.predict_slice(np.full((8, 8), 7.5)), 7.5)
    # a volume with constant slices inside it: super-resolved as usual
    a = np.asarray(slab.dataobj, dtype=np.float32)[:, :6, :].copy()
    a[:, 0, :] = 0.0
    img = resolver.predict_volume(nib.Nifti1Image(a, slab.affine), axis=1)
    assert img.shape == (512, 6, 512) and np.ptp(img.get_fdata()[:, 3, :]) > 0
    assert np.abs(img.get_fdata()[:, 0, :]).max() < 1e-3 * a.max()
    # a constant whole volume: the same error in the API and on the command line
    const = tmp_path / "const.nii.gz"
    nib.save(nib.Nifti1Image(np.full((16, 16, 4), 3, np.int16), np.eye(4)), const)
    with pytest.raises(InputDataError, match="constant image") as ei:
        resolver.predict_volume(const)
    assert main(["predict", str(const), str(tmp_path / "o.nii.gz")]) == 2
    assert capsys.readouterr().err.strip() == f"keras-seran predict: error: {ei.value}"
    with pytest.raises(InputDataError, match="constant image"):
        resolver.predict_volume(nib.Nifti1Image(np.zeros((16, 16, 4), np.float32), np.eye(4)))


def test_a_single_channel_axis_is_accepted_and_kept(resolver, t1_slice):
    plain = resolver.predict_slice(t1_slice)
    assert plain.shape == (512, 512)
    last = resolver.predict_slice(t1_slice[..., None])
    first = resolver.predict_slice(t1_slice[None])
    assert last.shape == (512, 512, 1) and first.shape == (1, 512, 512)
    np.testing.assert_array_equal(last[..., 0], plain)
    np.testing.assert_array_equal(first[0], plain)
    with pytest.raises(UsageError, match=r"2D image .*shape \(256, 256, 3\).*predict_volume"):
        resolver.predict_slice(np.repeat(t1_slice[..., None], 3, axis=-1))


def test_a_numpy_volume_gets_the_identity_geometry(resolver, slab):
    a = np.asarray(slab.dataobj)[:, :6, :]  # (256, 6, 256) uint8
    from_array = resolver.predict_volume(a, axis=1)
    from_image = resolver.predict_volume(nib.Nifti1Image(a, np.eye(4)), axis=1)
    assert isinstance(from_array, nib.Nifti1Image) and from_array.shape == (512, 6, 512)
    np.testing.assert_array_equal(from_array.get_fdata(), from_image.get_fdata())
    np.testing.assert_allclose(from_array.affine, from_image.affine)
    assert from_array.header.get_zooms() == (0.5, 1.0, 0.5)
    assert resolver.predict_volume(a).shape == (512, 12, 256)  # default: the last axis kept
    with pytest.raises(InputDataError, match="2D.*predict_slice"):
        resolver.predict_volume(a[:, 0, :])
    with pytest.raises(TypeError, match=r"list.*nib.Nifti1Image\(array, affine\).*numpy array"):
        resolver.predict_volume(a.tolist())


def test_nifti2_in_nifti2_out_with_nothing_on_stderr(resolver, tmp_path, capfd):
    src = nib.load(NIBABEL_DATA / "example_nifti2.nii.gz")
    assert isinstance(src, nib.Nifti2Image)
    one = tmp_path / "nifti2_3d.nii.gz"
    nib.save(src.slicer[..., 0], one)  # (32, 20, 12), 2x2x2.2 mm
    capfd.readouterr()
    summary = resolver.predict_file(one, tmp_path / "sr.nii.gz")
    out = nib.load(summary["output"])
    assert isinstance(out, nib.Nifti2Image) and int(out.header["sizeof_hdr"]) == 540
    assert out.shape == (64, 40, 12)
    # the same voxels and geometry as the NIfTI-1 route
    as_nifti1 = nib.Nifti1Image(np.asarray(nib.load(one).dataobj), nib.load(one).affine)
    ref = resolver.predict_volume(as_nifti1)
    np.testing.assert_allclose(out.get_fdata(), ref.get_fdata(), rtol=1e-6)
    np.testing.assert_allclose(out.affine, ref.affine, atol=1e-5)
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize(
    "name, stored", [("anatomical.nii", ">i2"), ("reoriented_anat_moved.nii", ">f4")]
)
@pytest.mark.parametrize("output_dtype", [None, "input"])
def test_big_endian_input_gives_little_endian_output(
    resolver, tmp_path, name, stored, output_dtype
):
    src = NIBABEL_DATA / name
    assert nib.load(src).get_data_dtype() == np.dtype(stored)
    result = resolver.predict_volume(src, output_dtype=output_dtype)
    want = np.dtype(stored).newbyteorder("<") if output_dtype == "input" else np.dtype("<f4")
    assert result.get_data_dtype() == want and result.header.endianness == "<"
    assert result.dataobj.dtype.isnative
    resolver.predict_file(src, tmp_path / "sr.nii", output_dtype=output_dtype)
    raw = (tmp_path / "sr.nii").read_bytes()
    assert int.from_bytes(raw[:4], "little") == 348  # little-endian header
    written = nib.load(tmp_path / "sr.nii")
    assert written.get_data_dtype() == want
    np.testing.assert_allclose(written.get_fdata(), result.get_fdata())
