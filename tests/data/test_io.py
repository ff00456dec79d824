"""Readers: real NIfTI/PNG/DICOM files load with the right shape and units; bad files fail clearly."""

from __future__ import annotations

import gzip
import shutil

import nibabel as nib
import numpy as np
import pytest

from keras_seran import samples
from keras_seran.data import io as dio
from keras_seran.data.io import find_volumes, load_slice, load_volume, parse_ixi_name
from keras_seran.errors import InputDataError


def _save(path, arr, affine=None):
    nib.save(nib.Nifti1Image(np.asarray(arr), np.eye(4) if affine is None else affine), path)
    return path


def _expect_error(fn, path, *phrases):
    with pytest.raises(InputDataError) as ei:
        fn(path)
    msg = str(ei.value)
    assert str(path) in msg, msg
    for ph in phrases:
        assert ph.lower() in msg.lower(), msg
    return ei.value


# ---------------------------------------------------------------------------------------------
# good files


def test_load_bundled_slab_matches_nibabel():
    vol = load_volume(samples.T1_AXIAL_SLAB)
    raw = np.asarray(nib.load(samples.T1_AXIAL_SLAB).dataobj)
    assert vol.data.shape == (256, 16, 256) and vol.data.dtype == np.float32
    np.testing.assert_array_equal(vol.data, raw.astype(np.float32))
    assert vol.zooms == (1.0, 1.0, 1.0)
    assert vol.affine.shape == (4, 4) and vol.header is not None
    assert vol.path == str(samples.T1_AXIAL_SLAB)


def test_load_anisotropic_int16_volume_keeps_zooms():
    vol = load_volume(samples.T1_LOWRES)
    assert vol.data.shape == (128, 128, 62)
    assert vol.zooms == (2.0, 2.0, 3.0)


def test_nifti_scaling_applied(tmp_path, slab_raw):
    img = nib.Nifti1Image(slab_raw[:, :4].astype(np.int16), np.eye(4))
    img.header.set_slope_inter(2.0, 10.0)
    p = tmp_path / "scaled.nii"
    nib.save(img, p)
    np.testing.assert_allclose(load_volume(p).data, slab_raw[:, :4] * 2.0 + 10.0)


def test_scaled_integers_are_flagged(tmp_path, slab_raw):
    img = nib.Nifti1Image(slab_raw[:, :4].astype(np.int16), np.eye(4))
    plain = tmp_path / "plain.nii"
    nib.save(img, plain)
    img.header.set_slope_inter(1e-4, 0.0)
    scaled = tmp_path / "scaled.nii"
    nib.save(img, scaled)
    assert not load_volume(plain).scaled and load_volume(scaled).scaled


def _patched_header(tmp_path, slab_raw, offset, fmt, value):
    """A valid .nii of real MR with one header field overwritten at byte ``offset``."""
    import struct

    p = tmp_path / "patched.nii"
    nib.save(nib.Nifti1Image(slab_raw[:, :4].astype(np.int16), np.eye(4)), p)
    raw = bytearray(p.read_bytes())
    raw[offset : offset + struct.calcsize(fmt)] = struct.pack(fmt, value)
    p.write_bytes(bytes(raw))
    return p


def test_bad_header_fields(tmp_path, slab_raw):
    """An unknown datatype code (nibabel's HeaderDataError) and a NaN voxel size are named."""
    _expect_error(load_volume, _patched_header(tmp_path, slab_raw, 70, "<h", 9999), "NIfTI")
    _expect_error(
        load_volume,
        _patched_header(tmp_path, slab_raw, 80, "<f", float("nan")),
        "voxel sizes",
        "not finite",
    )


def test_4d_with_one_volume_is_squeezed(tmp_path, slab_raw):
    p = _save(tmp_path / "one.nii.gz", slab_raw[:, :4, :, None])
    assert load_volume(p).data.shape == (256, 4, 256)


def test_load_png_slice():
    a = load_slice(samples.BRAINWEB_T1)
    assert a.shape == (217, 181) and a.dtype == np.float32 and a.max() > a.min()


def test_load_npy_and_single_slice_nifti(tmp_path, slab_raw):
    np.save(tmp_path / "s.npy", slab_raw[:, 8, :])
    np.testing.assert_array_equal(load_slice(tmp_path / "s.npy"), slab_raw[:, 8, :])
    p = _save(tmp_path / "s.nii.gz", slab_raw[:, 8:9, :])
    np.testing.assert_array_equal(load_slice(p), slab_raw[:, 8, :])


def test_load_dicom_file_and_series(tmp_path):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    src = get_testdata_file("MR_small.dcm")  # real 64x64 T2-weighted slice, int16
    one = load_slice(src)
    ds = pydicom.dcmread(src)
    assert one.shape == (64, 64)
    np.testing.assert_allclose(
        one,
        ds.pixel_array * float(getattr(ds, "RescaleSlope", 1))
        + float(getattr(ds, "RescaleIntercept", 0)),
    )
    # A 3-slice series written in scrambled order must come back sorted by position.
    series = tmp_path / "series"
    series.mkdir()
    normal = np.cross(
        np.asarray(ds.ImageOrientationPatient[:3], float),
        np.asarray(ds.ImageOrientationPatient[3:], float),
    )
    for k, name in zip([2, 0, 1], ["a.dcm", "b.dcm", "c.dcm"]):
        d = pydicom.dcmread(src)
        d.ImagePositionPatient = list(np.asarray(ds.ImagePositionPatient, float) + 5.0 * k * normal)
        px = d.pixel_array.copy()
        px[0, 0] = 1000 + k  # marks the slice order
        d.PixelData = px.tobytes()
        d.save_as(series / name)
    vol = load_volume(series)
    assert vol.data.shape == (64, 64, 3)
    slope = float(getattr(ds, "RescaleSlope", 1))
    inter = float(getattr(ds, "RescaleIntercept", 0))
    np.testing.assert_allclose(vol.data[0, 0, :], (1000 + np.arange(3)) * slope + inter)
    assert vol.zooms[2] == pytest.approx(5.0)


# ---------------------------------------------------------------------------------------------
# bad files


def test_missing_file(tmp_path):
    _expect_error(load_volume, tmp_path / "nope.nii.gz", "does not exist")
    _expect_error(load_slice, tmp_path / "nope.png", "does not exist")


def test_not_a_nifti(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("hello")
    _expect_error(load_volume, p, "not a NIfTI")
    fake = tmp_path / "fake.nii.gz"
    fake.write_bytes(gzip.compress(b"this is not a nifti header" * 20))
    _expect_error(load_volume, fake, "cannot read as NIfTI")


def test_truncated_gz(tmp_path):
    data = samples.T1_AXIAL_SLAB.read_bytes()
    p = tmp_path / "IXI099-Guys-0001-T1.nii.gz"
    p.write_bytes(data[: len(data) // 2])
    _expect_error(load_volume, p, "truncated or corrupt")


def test_truncated_uncompressed_nii(tmp_path, slab_raw):
    full = _save(tmp_path / "full.nii", slab_raw[:, :4].astype(np.uint8))
    p = tmp_path / "cut.nii"
    p.write_bytes(full.read_bytes()[:100_000])
    _expect_error(load_volume, p, "truncated or corrupt")


def test_4d_with_several_volumes(tmp_path):
    p = _save(
        tmp_path / "dwi.nii.gz", np.random.default_rng(0).random((8, 8, 8, 3)).astype(np.float32)
    )
    _expect_error(load_volume, p, "4D", "3 volumes")


def test_one_voxel_thick_axis(tmp_path, slab_raw):
    p = _save(tmp_path / "thin.nii.gz", slab_raw[:, 8:9, :])
    _expect_error(load_volume, p, "1-voxel-thick", "load_slice")


def test_zero_size_axis(tmp_path):
    p = tmp_path / "empty.npy"
    np.save(p, np.zeros((8, 0, 8), np.float32))
    _expect_error(load_volume, p, "zero-size axis")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_inf_voxels(tmp_path, slab_raw, bad):
    a = slab_raw[:, :4].copy()
    a[10, 1, 10] = bad
    a[11, 2, 12] = bad
    p = _save(tmp_path / "bad.nii.gz", a)
    _expect_error(load_volume, p, "2 NaN/Inf")


def test_constant_volume_and_slice(tmp_path):
    p = _save(tmp_path / "const.nii.gz", np.full((8, 8, 8), 7, np.int16))
    _expect_error(load_volume, p, "constant image")
    q = tmp_path / "const.npy"
    np.save(q, np.zeros((32, 32), np.float32))
    _expect_error(load_slice, q, "constant image")


def test_corrupt_png(tmp_path):
    p = tmp_path / "broken.png"
    p.write_bytes(samples.BRAINWEB_T1.read_bytes()[:200])
    _expect_error(load_slice, p, "cannot read")


# ---------------------------------------------------------------------------------------------
# names and folders


@pytest.mark.parametrize(
    "name, expected",
    [
        ("IXI002-Guys-0828-T1.nii.gz", ("IXI002", "T1")),
        ("IXI012-HH-1211-T2.nii.gz", ("IXI012", "T2")),
        ("IXI013-IOP-0889-PD.nii", ("IXI013", "PD")),
        ("IXI002-Guys-0828-DTI-00.nii.gz", ("IXI002", "DTI")),
        ("/data/IXI/IXI100-Guys-0747-MRA.nii.gz", ("IXI100", "MRA")),
        ("subject1_T1.nii.gz", None),
        ("IXI02-Guys-0828-T1.nii.gz", None),
    ],
)
def test_parse_ixi_name(name, expected):
    assert parse_ixi_name(name) == expected


@pytest.mark.parametrize(
    "names,subject",
    [
        (
            [
                "IXI002-Guys-0828-T1.nii.gz",
                "IXI002-Guys-0828-T1_brain.nii.gz",
                "ixi002-Guys-0828-T2.nii.gz",
                "IXI002-Guys-0828-DTI-00.nii.gz",
            ],
            "IXI002",
        ),
        (
            [
                "sub-01_T1w.nii.gz",
                "sub-01_FLAIR.nii.gz",
                "sub-01_ses-2_T2starw.nii",
                "sub-01_T1map.nii",
            ],
            "sub-01",
        ),
    ],
)
def test_subject_of_keeps_every_file_of_a_subject_together(names, subject):
    """Names outside the contrast patterns (a skull-stripped IXI file, BIDS FLAIR) used to be
    subjects of their own, so a split could put one subject on both sides."""
    assert {dio.subject_of(n) for n in names} == {subject}
    assert dio.subject_of("data/IXI0021-x.nii") == "data/IXI0021-x.nii"  # not an IXI id
    assert dio.subject_of("sub-02_T1w.nii.gz") != subject


def test_parse_contrast_bids():
    assert dio.parse_contrast("sub-01_ses-1_T1w.nii.gz") == ("sub-01", "T1")
    assert dio.parse_contrast("sub-07_T2w.nii") == ("sub-07", "T2")


def test_find_volumes_folder_glob_contrast(ixi_dir):
    every = find_volumes(ixi_dir)
    assert [p.name for p in every] == sorted(p.name for p in every) and len(every) == 6
    t1 = find_volumes(ixi_dir, contrast="t1")
    assert len(t1) == 4 and all(p.name.endswith("-T1.nii.gz") for p in t1)
    t2 = find_volumes(str(ixi_dir / "IXI*-T2.nii.gz"))
    assert [p.name for p in t2] == ["IXI012-Guys-0828-T2.nii.gz", "IXI013-HH-1212-T2.nii.gz"]
    assert find_volumes([t2[0], t2[1], t2[0]]) == t2


def test_find_volumes_errors(ixi_dir, tmp_path):
    with pytest.raises(InputDataError, match="contrasts found: \\['T1', 'T2'\\]") as ei:
        find_volumes(ixi_dir, contrast="PD")
    assert str(ixi_dir) in str(ei.value)
    with pytest.raises(InputDataError, match="no such file"):
        find_volumes(tmp_path / "missing")
    with pytest.raises(InputDataError, match="matches no file"):
        find_volumes(str(tmp_path / "*.nii.gz"))
    with pytest.raises(InputDataError, match="no NIfTI"):
        find_volumes(tmp_path)


def test_dicom_folder_is_found_as_one_series(tmp_path):
    pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    d = tmp_path / "dcm"
    d.mkdir()
    shutil.copy(get_testdata_file("MR_small.dcm"), d / "1.dcm")
    assert find_volumes(d) == [d]


@pytest.mark.shared_data
def test_shared_volumes_load(shared_data):
    vol = load_volume(shared_data / "t1_head_256iso.nii.gz")
    assert vol.data.shape == (256, 256, 256) and vol.data.dtype == np.float32
    assert vol.zooms == (1.0, 1.0, 1.0)
    assert 0 <= vol.data.min() < vol.data.max() <= 255
    pd = load_slice(shared_data / "brainweb_pd_slice.png")
    assert pd.shape == (217, 181)


def test_values_beyond_float32_are_named_as_such(tmp_path, slab_raw):
    """A float64 file with finite values too large for float32: no NaN/Inf advice, no warning."""
    import warnings

    a = slab_raw[:, :4].astype(np.float64)
    a[10, 1, 10] = 1e39
    a[11, 2, 12] = -3e300
    p = _save(tmp_path / "huge.nii.gz", a)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        err = _expect_error(load_volume, p, "2 voxel value(s) beyond the float32 range", "3e+300")
    assert "NaN" not in str(err)


def test_find_volumes_skips_hidden_files(tmp_path):
    """Leftovers of interrupted writes (.keras-seran-tmp-..., and the earlier
    .NAME.XXXXXXXX.tmp.nii.gz) and hidden folders are no inputs."""
    shutil.copy(samples.T1_LOWRES, tmp_path / "v1.nii.gz")
    (tmp_path / ".v2.nii.gz.ab12cd34.tmp.nii.gz").write_bytes(samples.T1_LOWRES.read_bytes()[:500])
    (tmp_path / ".keras-seran-tmp-99@host.ab12cd34-v4.nii.gz").write_bytes(
        samples.T1_LOWRES.read_bytes()[:500]
    )
    (tmp_path / ".cache").mkdir()
    shutil.copy(samples.T1_LOWRES, tmp_path / ".cache" / "v3.nii.gz")
    assert find_volumes(tmp_path) == [tmp_path / "v1.nii.gz"]
    (tmp_path / "v1.nii.gz").unlink()
    with pytest.raises(InputDataError, match="no NIfTI"):
        find_volumes(tmp_path)
