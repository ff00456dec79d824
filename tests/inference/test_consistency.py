"""k-space data consistency on a real slice: the measured spectrum is kept, the rest untouched."""

from __future__ import annotations

import numpy as np
import pytest

from keras_seran.data.degrade import bicubic_upscale, kspace_downscale, kspace_upscale
from keras_seran.inference.consistency import kspace_consistency


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_full_consistency_reproduces_the_measurement(mr_slice, scale):
    hr = mr_slice[: 240, : 240]
    lr = kspace_downscale(hr, scale)
    estimate = bicubic_upscale(lr, scale)                     # any estimate of HR
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
