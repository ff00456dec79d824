"""Every entry point treats an input the same way: ``keras-seran predict``,
``SuperResolver.predict_volume``, the training data (``train --data``), ``load_volume`` and
``load_slice``. A DICOM series or multi-frame file is read with its scanner geometry and the
result written as NIfTI where the scan was; what cannot be one volume (a mosaic, a gap, two
series) gets one and the same message everywhere; other formats get advice that fits them."""

from __future__ import annotations

import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from keras_seran import samples
from keras_seran.cli import main
from keras_seran.config import DataConfig
from keras_seran.data.degrade import bicubic_upscale
from keras_seran.data.io import load_slice, load_volume
from keras_seran.data.slices import load_slice_sets
from keras_seran.errors import InputDataError
from keras_seran.inference import SuperResolver
from keras_seran.inference import geometry as g

from ..data import dicom_cases as dc
from ..data.dicom_cases import get_testdata_file
from .conftest import list_files


def _numpy_resolver() -> SuperResolver:
    return SuperResolver(lambda x: bicubic_upscale(x[..., 0], 2)[..., None], scale=2)


def _metaimage(path: Path) -> Path:
    """A real MetaImage (.mha): header lines and the raw bytes of 4 slices of the T1 slab."""
    a = np.asarray(nib.load(samples.T1_AXIAL_SLAB).dataobj)[:, :4, :]
    head = (
        f"ObjectType = Image\nNDims = 3\nDimSize = {a.shape[0]} {a.shape[1]} {a.shape[2]}\n"
        "ElementSpacing = 1 1 1\nElementType = MET_UCHAR\nElementDataFile = LOCAL\n"
    )
    path.write_bytes(head.encode() + np.ascontiguousarray(a.transpose(2, 1, 0)).tobytes())
    return path


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (input, a pattern its message must hold) for inputs that are not one volume."""
    gap = tmp_path / "gap"
    dc.write_series(gap, n=6, skip=(2,))
    mixed = tmp_path / "mixed"
    dc.write_series(mixed, n=3)
    (mixed / "ct.dcm").write_bytes(Path(get_testdata_file("CT_small.dcm")).read_bytes())
    mosaic = dc.mosaic_folder(tmp_path / "dwi")
    return {
        "mosaic folder": (mosaic, r"Siemens mosaic.*dcm2niix"),
        "mosaic file": (mosaic / "1.dcm", r"Siemens mosaic.*dcm2niix"),
        "missing slice": (gap, r"not evenly spaced.*missing"),
        "two series": (mixed, r"2 DICOM series.*folder of its own"),
        "echoes": (dc.write_enhanced(tmp_path / "echoes.dcm", n=6, repeats=2), r"several volumes"),
    }


def _entry_points(tmp_path: Path):
    """name -> function(input) running that entry point on one input; each raises or returns."""
    out = tmp_path / "results"

    def cli(path):
        rc = main(["predict", str(path), str(out) + "/", "--no-progress"])
        return rc

    return {
        "load_volume": load_volume,
        "predict_volume": lambda p: _numpy_resolver().predict_volume(p),
        "train --data": lambda p: load_slice_sets([p], 2, DataConfig(val_fraction=0.0)),
        "keras-seran predict": cli,
    }


def test_what_is_not_one_volume_gets_the_same_message_everywhere(tmp_path, capsys):
    for case, (path, pattern) in _bad_inputs(tmp_path).items():
        messages = {}
        for name, run in _entry_points(tmp_path).items():
            if name == "keras-seran predict":
                assert run(path) == 2, case
                err = capsys.readouterr().err.strip()
                assert err.startswith("keras-seran predict: error: ") and "\n" not in err, err
                messages[name] = err.split("error: ", 1)[1]
            else:
                with pytest.raises(InputDataError) as ei:
                    run(path)
                messages[name] = str(ei.value)
        assert len(set(messages.values())) == 1, (case, messages)
        msg = messages["load_volume"]
        assert str(path) in msg and re.search(pattern, msg), (case, msg)
    assert not (tmp_path / "results").exists()


def test_a_dicom_series_is_predicted_where_the_scanner_put_it(tmp_path, tiny_keras_file, capsys):
    series = tmp_path / "t1_series"
    dc.write_series(series, n=6, spacing=2.5)
    vol = load_volume(series)
    want_affine = g.upscale_affine(vol.affine, 2, (0, 1))  # thick axis 2 kept
    # the API
    api = _numpy_resolver().predict_volume(series)
    assert api.shape == (96, 128, 6)
    np.testing.assert_allclose(api.affine, want_affine, atol=1e-5)
    # the command line: a folder holding one series is one volume, written as <name>.nii.gz
    rc = main(
        [
            "predict",
            str(series),
            str(tmp_path / "out") + "/",
            "--model",
            str(tiny_keras_file),
            "--no-progress",
            "--device",
            "cpu",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    assert list_files(tmp_path / "out") == ["t1_series.nii.gz"]
    written = nib.load(tmp_path / "out" / "t1_series.nii.gz")
    assert written.shape == (96, 128, 6)
    np.testing.assert_allclose(written.affine, want_affine, atol=1e-4)
    assert int(written.header["sform_code"]) == 1  # scanner coordinates
    np.testing.assert_allclose(
        g.fov_centre(written.affine, written.shape), g.fov_centre(vol.affine, vol.shape), atol=1e-3
    )
    # training reads the same volume: its slices
    train, _ = load_slice_sets(
        [series], 2, DataConfig(val_fraction=0.0, slice_axis=2, patch_size=16)
    )
    assert len(train.slices) == 6 and train.slices[0].shape == (48, 64)


def test_a_multiframe_file_through_the_command_line(tmp_path, tiny_keras_file, capsys):
    path = dc.write_enhanced(tmp_path / "mprage.dcm", n=8)
    rc = main(
        [
            "predict",
            str(path),
            str(tmp_path / "sr.nii.gz"),
            "--model",
            str(tiny_keras_file),
            "--no-progress",
            "--device",
            "cpu",
            "--axis",
            "2",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    out = nib.load(tmp_path / "sr.nii.gz")
    assert out.shape == (512, 512, 8)
    np.testing.assert_allclose(
        out.affine, g.upscale_affine(load_volume(path).affine, 2, (0, 1)), atol=1e-4
    )


def test_other_formats_get_advice_that_fits_them(tmp_path, capsys):
    png = samples.BRAINWEB_T1
    mha = _metaimage(tmp_path / "t1.mha")
    one_dcm = get_testdata_file("MR_small.dcm")
    cases = {
        png: r"2D PNG image.*load_slice.*predict_slice",
        mha: r"MetaImage.*SimpleITK",
        Path(one_dcm): r"one 2D DICOM image.*folder.*load_slice",
    }
    for path, pattern in cases.items():
        with pytest.raises(InputDataError) as ei:
            load_volume(path)
        msg = str(ei.value)
        assert re.search(pattern, msg) and str(path) in msg, msg
        if path != Path(one_dcm):
            assert "dcm2niix" not in msg, msg
        with pytest.raises(InputDataError) as ei:
            _numpy_resolver().predict_volume(path)
        assert str(ei.value) == msg
        assert main(["predict", str(path), str(tmp_path / "o.nii.gz")]) == 2
        assert capsys.readouterr().err.strip() == f"keras-seran predict: error: {msg}"
    # what each is: a PNG and one DICOM image are slices; an MHA is neither
    assert load_slice(png).ndim == 2 and load_slice(one_dcm).shape == (64, 64)
    with pytest.raises(InputDataError, match="MetaImage.*SimpleITK"):
        load_slice(mha)
    assert not (tmp_path / "o.nii.gz").exists()
