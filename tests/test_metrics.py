"""PSNR/SSIM: the numpy protocol and the Keras metrics agree, and match known values."""

from __future__ import annotations

import numpy as np
import pytest

from keras_seran.metrics import PSNRMetric, SSIMMetric, psnr, ssim


def test_psnr_known_value_and_border(mr_slice):
    hr = mr_slice[64:192, 64:192].astype(np.float64)
    noisy = hr + 0.01                        # MSE exactly 1e-4 -> 40 dB
    assert psnr(noisy, hr) == pytest.approx(40.0, abs=1e-6)
    spoiled = noisy.copy()
    spoiled[:2, :] = 5.0                     # damage only inside a 2-pixel border
    assert psnr(spoiled, hr, border=2) == pytest.approx(40.0, abs=1e-6)
    assert psnr(spoiled, hr, border=0) < 30


def test_ssim_identity_and_degradation(mr_slice):
    hr = mr_slice[64:192, 64:192]
    assert ssim(hr, hr) == pytest.approx(1.0)
    blurred = (hr + np.roll(hr, 1, 0) + np.roll(hr, 1, 1) + np.roll(hr, 1, (0, 1))) / 4
    assert 0.5 < ssim(blurred, hr) < 0.99


def test_keras_metrics_match_numpy(slab_slices):
    hr = slab_slices[:3, 60:124, 60:130]
    rng = np.random.default_rng(0)
    est = np.clip(hr + 0.02 * rng.standard_normal(hr.shape), 0, 1).astype("float32")
    for metric, fn in ((PSNRMetric(border=3), psnr), (SSIMMetric(border=3), ssim)):
        metric.update_state(hr[..., None], est[..., None])
        expected = np.mean([fn(e, h, border=3) for e, h in zip(est, hr)])
        assert float(metric.result()) == pytest.approx(expected, rel=1e-4)
