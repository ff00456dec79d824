"""PSNR/SSIM: the numpy protocol and the Keras metrics agree, and match known values."""

from __future__ import annotations

import numpy as np
import pytest

from keras_seran.metrics import PSNRMetric, SSIMMetric, psnr, ssim


def test_psnr_known_value_and_border(mr_slice):
    hr = mr_slice[64:192, 64:192].astype(np.float64)
    noisy = hr + 0.01  # MSE exactly 1e-4 -> 40 dB
    assert psnr(noisy, hr) == pytest.approx(40.0, abs=1e-6)
    spoiled = noisy.copy()
    spoiled[:2, :] = 5.0  # damage only inside a 2-pixel border
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


def test_ssim_metric_refuses_images_smaller_than_its_window(mr_slice):
    hr = mr_slice[None, 100:114, 100:114, None]  # 14 px: 10 px after a 2-pixel border
    with pytest.raises(ValueError, match="at least 11x11 after cropping the 2-pixel border"):
        SSIMMetric(border=2).update_state(hr, hr)
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(hr[0, ..., 0], hr[0, ..., 0], border=2)
    metric = SSIMMetric(border=2)  # 15 px: 11 after the crop, defined
    metric.update_state(
        mr_slice[None, 100:115, 100:115, None], mr_slice[None, 100:115, 100:115, None]
    )
    assert float(metric.result()) == pytest.approx(1.0)


def test_psnr_metric_differs_from_the_protocol_only_as_documented(mr_slice):
    """The docstring's two differences: the metric caps a perfect image at 120 dB (psnr: inf)
    and scores the unclipped prediction (the evaluation clips it to [0, 1])."""
    hr = mr_slice[64:128, 64:128].astype(np.float32)
    metric = PSNRMetric()
    metric.update_state(hr[None, ..., None], hr[None, ..., None])
    assert psnr(hr, hr) == float("inf") and float(metric.result()) == pytest.approx(120.0)
    over = hr + 0.05
    over[:8] = 1.2  # overshoots 1 in a few rows
    metric = PSNRMetric()
    metric.update_state(hr[None, ..., None], over[None, ..., None])
    assert float(metric.result()) == pytest.approx(psnr(over, hr), rel=1e-5)
    assert psnr(np.clip(over, 0, 1), hr) > float(metric.result())


def test_overshoot_fraction_on_real_mr(mr_slice):
    from keras_seran.data.degrade import bicubic_upscale, kspace_downscale, kspace_upscale
    from keras_seran.metrics import overshoot_fraction

    lr = kspace_downscale(mr_slice, 2)
    nearest = np.repeat(np.repeat(lr, 2, 0), 2, 1)
    assert overshoot_fraction(lr, nearest, 2) == 0.0  # copies of its own pixels
    assert overshoot_fraction(lr, bicubic_upscale(lr, 2), 2) < 0.002
    halo = nearest.copy()
    halo[100:110, 50:200] = lr.max() * 1.3  # a bright band over tissue
    assert overshoot_fraction(lr, halo, 2) == pytest.approx(1500 / halo.size, rel=0.05)
    zf = kspace_upscale(lr, 2)
    assert 0 < overshoot_fraction(lr, zf, 2, tolerance=0.0)  # ringing of zero-filling
    with pytest.raises(ValueError, match="times 2"):
        overshoot_fraction(lr, zf[:-1], 2)
