"""Parity helpers: real MR slices, pairs, the report and its table (no TensorFlow needed)."""

from __future__ import annotations

import numpy as np
import pytest

from keras_seran.contract import NETWORK_RANGE
from keras_seran.errors import InputDataError
from keras_seran.export import parity


def test_mr_slices_are_real_t1_normalised_as_the_input_contract():
    s = parity.load_mr_slices(indices=parity.PARITY_SLICES)
    assert s.shape == (4, 256, 256) and s.dtype == np.float32
    lo, hi = NETWORK_RANGE
    assert lo <= s.min() and s.max() <= hi
    assert s.std() > 0.1  # a real head, not a constant
    # the bright structures above the 99.5th percentile are kept, as the device will see them:
    # int8 calibrated on [0, 1] only would saturate on them
    assert 1.05 < s.max() and 0 < np.mean(s > 1) < 0.02


def test_calibration_sees_the_contract_range():
    lrs = np.concatenate([x.ravel() for x in parity.calibration_inputs(2)])
    assert lrs.max() > 1.05 and lrs.min() < 0


def test_calibration_and_parity_slices_do_not_overlap():
    assert not set(parity.CALIBRATION_SLICES) & set(parity.PARITY_SLICES)


def test_slice_pairs_shapes_and_bicubic_lr():
    pairs = parity.parity_pairs(2)
    assert len(pairs) == 4
    lr, hr = pairs[0]
    assert lr.shape == (1, 128, 128, 1) and hr.shape == (1, 256, 256, 1)
    # the LR is a downscale of the HR: its mean intensity is kept
    assert abs(lr.mean() - hr.mean()) < 0.01


@pytest.mark.parametrize("size", [(48, 40), (200, 150)])
def test_slice_pairs_fixed_size(size):
    ((lr, hr),) = parity.slice_pairs(parity.load_mr_slices(indices=[3]), 2, lr_size=size)
    assert lr.shape == (1, *size, 1) and hr.shape == (1, size[0] * 2, size[1] * 2, 1)


def test_fit_to_size_crops_and_pads():
    a = np.arange(20, dtype=np.float32).reshape(4, 5)
    assert parity.fit_to_size(a, (2, 3)).shape == (2, 3)
    assert parity.fit_to_size(a, (6, 9)).shape == (6, 9)
    np.testing.assert_array_equal(parity.fit_to_size(a, (4, 5)), a)


def test_missing_volume_is_named():
    with pytest.raises(InputDataError, match="nope.nii.gz"):
        parity.load_mr_slices("nope.nii.gz")


def _upscale(x):
    return np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)


def test_report_identity_noise_and_error():
    pairs = parity.parity_pairs(2)[:2]
    rng = np.random.default_rng(0)
    runners = {
        "same": _upscale,
        "noisy": lambda x: _upscale(x) + rng.normal(0, 0.02, _upscale(x).shape).astype(np.float32),
        "broken": lambda x: (_ for _ in ()).throw(RuntimeError("boom")),
        "wrong_shape": lambda x: x,
    }
    rep = parity.parity_report(
        _upscale,
        runners,
        pairs,
        2,
        {"same": "float32", "noisy": "int8", "broken": "float32", "wrong_shape": "float32"},
    )
    f = rep["formats"]
    assert f["same"]["max_abs_diff"] == 0 and f["same"]["ok"]
    assert abs(f["same"]["psnr_drop"]) < 1e-9
    assert f["noisy"]["psnr_drop"] > 0 and f["noisy"]["max_abs_diff"] > 0.02
    assert f["broken"]["ok"] is False and "boom" in f["broken"]["error"]
    assert f["wrong_shape"]["ok"] is False and "shape" in f["wrong_shape"]["error"]
    assert rep["keras"]["psnr"] > 20 and rep["bicubic"]["psnr"] > 20
    md = parity.parity_markdown(rep)
    assert "| same | float32 |" in md and "boom" in md and "| format |" in md


def _entry(max_abs, mean_abs, drop):
    return {"max_abs_diff": max_abs, "mean_abs_diff": mean_abs, "psnr_drop": drop}


def test_tolerances():
    ok = parity.check_tolerance(_entry(5e-5, 1e-6, 0.0), "float32")
    bad = parity.check_tolerance(_entry(5e-4, 1e-6, 0.0), "float32")
    assert ok["ok"] and not bad["ok"]
    assert parity.check_tolerance(_entry(1e-3, 5e-5, 0.0), "float16")["ok"]
    assert not parity.check_tolerance(_entry(1e-3, 5e-5, 0.06), "float16")["ok"]
    assert parity.check_tolerance(_entry(0.05, 5e-3, 0.2), "int8")["ok"]
    assert not parity.check_tolerance(_entry(0.05, 5e-3, 0.4), "int8")["ok"]


def test_tolerances_catch_a_different_output_of_equal_psnr():
    # a PSNR that does not drop is not enough: fp16 must also match Keras pixel for pixel, and an
    # int8 model must not differ by more than quantisation does on average
    assert not parity.check_tolerance(_entry(0.1, 4e-3, -0.01), "float16")["ok"]
    assert not parity.check_tolerance(_entry(0.1, 0.03, 0.0), "int8")["ok"]
    assert not parity.check_tolerance(_entry(0.1, 0.03, 0.0), "dynamic_int8")["ok"]


def test_tolerances_bound_the_psnr_change_both_ways():
    # an export that scores far better than Keras is not the Keras model either
    assert not parity.check_tolerance(_entry(0.05, 5e-3, -0.5), "int8")["ok"]
    assert parity.check_tolerance(_entry(0.05, 5e-3, -0.1), "int8")["ok"]
