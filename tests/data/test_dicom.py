"""DICOM volumes with their scanner geometry (keras_seran.data.io.dicom): a series folder and an
enhanced multi-frame file are sorted along the slice normal and get a RAS+ affine that agrees
with nibabel's own DICOM reader; what cannot be one volume is refused with a reason."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from keras_seran.data.io import find_volumes, load_any, load_slice, load_volume
from keras_seran.errors import InputDataError

from . import dicom_cases as dc
from .dicom_cases import get_testdata_file, pydicom

nicom = pytest.importorskip("nibabel.nicom.dicomwrappers")


def _nibabel_affine(path) -> np.ndarray:
    """nibabel's affine (LPS) of one DICOM file, as RAS+."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dc.lps_to_ras(nicom.wrapper_from_data(pydicom.dcmread(path)).affine)


def test_series_is_sorted_and_placed_where_the_scanner_put_it(tmp_path):
    files = dc.write_series(tmp_path / "series", n=6, spacing=2.5)
    vol = load_volume(tmp_path / "series")
    assert vol.shape == (48, 64, 6) and vol.data.dtype == np.float32
    # sorted along the normal: slice k is file k's image, rescaled (slope 0.5, intercept 10)
    raw = dc.slab_slices()
    for k, f in enumerate(files):
        np.testing.assert_array_equal(vol.data[..., k], load_slice(f))
        np.testing.assert_allclose(vol.data[..., k], raw[k] * dc.SLOPE + dc.INTERCEPT)
    assert vol.scaled
    assert vol.zooms == pytest.approx((0.9, 1.1, 2.5))
    # in-plane axes and origin: as nibabel reads the first file (rows along ImageOrientation[3:])
    np.testing.assert_allclose(
        vol.affine[:, [0, 1, 3]], _nibabel_affine(files[0])[:, [0, 1, 3]], atol=1e-5
    )
    # slice axis: one step along the normal from each file's ImagePositionPatient to the next
    for k, f in enumerate(files):
        ipp = np.asarray(pydicom.dcmread(f).ImagePositionPatient, float)
        np.testing.assert_allclose(
            vol.affine @ [0, 0, k, 1], [-ipp[0], -ipp[1], ipp[2], 1], atol=1e-4
        )
    # a NIfTI header saying so: sform and qform "scanner", mm
    assert int(vol.header["sform_code"]) == 1 and int(vol.header["qform_code"]) == 1
    np.testing.assert_allclose(vol.header.get_best_affine(), vol.affine, atol=1e-4)


def test_enhanced_multiframe_is_one_volume_with_per_frame_positions(tmp_path):
    path = dc.write_enhanced(tmp_path / "mprage.dcm", n=16)
    vol = load_volume(path)
    assert vol.shape == (256, 256, 16)
    positions = dc.enhanced_positions(path)[::-1]  # stored in reverse: position order
    slab = np.asarray(__import__("nibabel").load(dc.samples.T1_AXIAL_SLAB).dataobj)
    slope = float(
        dc.philips_mprage()
        .PerFrameFunctionalGroupsSequence[0]
        .PixelValueTransformationSequence[0]
        .RescaleSlope
    )
    for k in range(16):
        np.testing.assert_allclose(vol.data[..., k], slab[:, k, :] * slope, rtol=1e-6)
        ipp = positions[k]
        np.testing.assert_allclose(
            vol.affine @ [0, 0, k, 1], [-ipp[0], -ipp[1], ipp[2], 1], atol=1e-4
        )
    assert vol.zooms == pytest.approx((1.0, 1.0, 1.0), abs=1e-4)
    # nibabel's multi-frame reader: the same voxels at the same places (its slices in the
    # opposite order; it leaves Philips' per-frame rescaling out)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = nicom.wrapper_from_data(pydicom.dcmread(path))
        theirs, their_affine = w.get_data(), dc.lps_to_ras(w.affine)
    for k in range(16):
        np.testing.assert_allclose(
            their_affine @ [0, 0, 15 - k, 1], vol.affine @ [0, 0, k, 1], atol=1e-3
        )
        np.testing.assert_allclose(theirs[..., 15 - k] * slope, vol.data[..., k], rtol=1e-5)
    # the same file through every reader: a volume, never a slice
    np.testing.assert_array_equal(load_any(path), vol.data)
    with pytest.raises(InputDataError, match="multi-frame DICOM holding 16 frames.*load_volume"):
        load_slice(path)
    folder = tmp_path / "one_file"
    folder.mkdir()
    shutil.copy(path, folder / "mprage.dcm")
    np.testing.assert_array_equal(load_volume(folder).data, vol.data)


def _error(fn, path, *phrases):
    with pytest.raises(InputDataError) as ei:
        fn(path)
    msg = str(ei.value)
    assert "\n" not in msg and str(path) in msg, msg
    for ph in phrases:
        assert ph.lower() in msg.lower(), msg
    return msg


def test_mosaics_are_refused_with_dcm2niix_advice(tmp_path):
    folder = dc.mosaic_folder(tmp_path / "dwi")
    for fn, path in [
        (load_volume, folder),
        (load_any, folder),
        (load_volume, folder / "0.dcm"),
        (load_slice, folder / "0.dcm"),
        (load_any, folder / "0.dcm"),
    ]:
        _error(fn, path, "Siemens mosaic", "dcm2niix")
    assert find_volumes(folder) == [folder]  # found as one series, then refused


def test_what_is_not_one_volume_is_refused(tmp_path):
    # a missing slice
    dc.write_series(tmp_path / "gap", n=6, skip=(3,))
    _error(load_volume, tmp_path / "gap", "not evenly spaced", "missing")
    # two series in one folder
    dc.write_series(tmp_path / "mixed", n=3)
    shutil.copy(get_testdata_file("CT_small.dcm"), tmp_path / "mixed" / "ct.dcm")
    _error(load_volume, tmp_path / "mixed", "2 DICOM series", "folder of its own")
    # two images at every position (echoes / repeats)
    dc.write_enhanced(tmp_path / "echoes.dcm", n=8, repeats=2)
    _error(
        load_volume,
        tmp_path / "echoes.dcm",
        "16 images at only 8 slice position",
        "several volumes",
    )
    # one image alone: a slice, in a folder or named
    one = tmp_path / "one"
    one.mkdir()
    shutil.copy(get_testdata_file("MR_small.dcm"), one / "a.dcm")
    _error(load_volume, one, "single 2D DICOM image", "load_slice")
    _error(load_volume, one / "a.dcm", "one 2D DICOM image", "folder", "load_slice")
    assert load_slice(one / "a.dcm").shape == (64, 64)
    # no geometry (a secondary capture without position/orientation)
    nogeo = tmp_path / "nogeo"
    for f in dc.write_series(nogeo, n=3):
        ds = pydicom.dcmread(f)
        del ds.ImagePositionPatient
        ds.save_as(f)
    _error(load_volume, nogeo, "lacks ImagePositionPatient", "load_slice")
    # colour, and a legacy multi-frame without per-frame positions
    _error(load_slice, get_testdata_file("SC_rgb_small_odd.dcm"), "colour")
    _error(load_volume, get_testdata_file("rtdose.dcm"), "RTDOSE")


def test_a_gantry_tilt_stays_in_the_affine(tmp_path):
    """Slices shifted in-plane from one to the next (a tilted CT gantry): the slice axis of the
    affine follows the positions, it is not forced onto the normal."""
    files = dc.write_series(tmp_path / "tilt", n=4, spacing=2.0)
    shift = 0.3 * dc.ROW_DIR
    for k, f in enumerate(files):
        ds = pydicom.dcmread(f)
        ds.ImagePositionPatient = [
            float(v) for v in np.asarray(ds.ImagePositionPatient, float) + k * shift
        ]
        ds.save_as(f)
    vol = load_volume(tmp_path / "tilt")
    step = 2.0 * dc.NORMAL + shift
    np.testing.assert_allclose(vol.affine[:3, 2], [-step[0], -step[1], step[2]], atol=1e-5)
    assert int(vol.header["qform_code"]) == 0 and int(vol.header["sform_code"]) == 1
