"""k-space data consistency on a real slice: the measured spectrum is kept, the rest untouched."""

from __future__ import annotations

import numpy as np
import pytest

from keras_seran.data.degrade import bicubic_upscale, kspace_downscale, kspace_upscale
from keras_seran.inference.consistency import kspace_consistency


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_full_consistency_reproduces_the_measurement(mr_slice, scale):
    hr = mr_slice[:240, :240]
    lr = kspace_downscale(hr, scale)
    estimate = bicubic_upscale(lr, scale)  # any estimate of HR
    dc = kspace_consistency(estimate, lr, scale)
    np.testing.assert_allclose(kspace_downscale(dc, scale), lr, atol=1e-5)
    # what lies outside the measured centre is the estimate's own
    high = dc - kspace_upscale(kspace_downscale(dc, scale), scale)
    high_est = estimate - kspace_upscale(kspace_downscale(estimate, scale), scale)
    np.testing.assert_allclose(high, high_est, atol=1e-5)
    # and zero-filling is already consistent: nothing changes
    zf = kspace_upscale(lr, scale)
    np.testing.assert_allclose(kspace_consistency(zf, lr, scale), zf, atol=1e-5)


def test_blending_moves_part_of_the_way_and_batches(mr_slice):
    hr = mr_slice[:128, :128]
    lr = kspace_downscale(hr, 2)
    est = bicubic_upscale(lr, 2)
    half = kspace_consistency(est, lr, 2, weight=0.5)
    full = kspace_consistency(est, lr, 2)
    np.testing.assert_allclose(half, 0.5 * (est + full), atol=1e-5)
    np.testing.assert_array_equal(kspace_consistency(est, lr, 2, weight=0.0), est)
    batch = kspace_consistency(np.stack([est, est]), np.stack([lr, lr]), 2)
    np.testing.assert_allclose(batch[1], full, atol=1e-6)
    with pytest.raises(ValueError, match="weight"):
        kspace_consistency(est, lr, 2, weight=1.5)
    with pytest.raises(ValueError, match="times 2"):
        kspace_consistency(est, lr[:-1], 2)


def test_the_resolver_applies_it_to_the_network_output(tiny_seran, mr_slice):
    """SuperResolver(data_consistency=w) on a k-space-truncated real slice: with w = 1 the output
    holds the measured spectrum exactly, with w = 0.5 half way, without it the network's own."""
    from keras_seran.inference.resolver import SuperResolver

    lr = kspace_downscale(mr_slice[:128, :128], 2)[None]  # normalised LR, (1, 64, 64)
    plain = SuperResolver(tiny_seran).predict_normalized(lr)
    full = SuperResolver(tiny_seran, data_consistency=1.0).predict_normalized(lr)
    half = SuperResolver(tiny_seran, data_consistency=0.5).predict_normalized(lr)
    miss = np.abs(kspace_downscale(plain, 2) - lr).max()
    assert miss > 1e-2  # the network alone differs
    np.testing.assert_allclose(kspace_downscale(full, 2), lr, atol=1e-4)
    np.testing.assert_allclose(
        kspace_downscale(half, 2) - lr, 0.5 * (kspace_downscale(plain, 2) - lr), atol=1e-4
    )
    with pytest.raises(ValueError, match="data_consistency"):
        SuperResolver(tiny_seran, data_consistency=2)
