"""Per-volume percentile normalisation on the real T1 slab: range, exact inverse, bad input."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from keras_seran.data.normalize import NormStats, fit_normalization, normalize
from keras_seran.errors import InputDataError


def test_percentiles_map_to_unit_range(slab_raw):
    y, st = normalize(slab_raw, (0.5, 99.5))
    lo, hi = np.percentile(slab_raw, [0.5, 99.5])
    assert (st.low, st.high) == (pytest.approx(lo), pytest.approx(hi))
    assert y.dtype == np.float32 and y.shape == slab_raw.shape
    assert y.min() == 0.0 and y.max() == 1.0
    # about 0.5 % of the voxels sit at the clipped top
    assert 0.001 < np.mean(y == 1.0) < 0.01


def test_invert_maps_back_to_file_units(slab_raw):
    y, st = normalize(slab_raw, (0.5, 99.5), clip=False)
    np.testing.assert_allclose(st.invert(y), slab_raw, atol=1e-3)
    yc, stc = normalize(slab_raw, (0.5, 99.5), clip=True)
    inside = (slab_raw >= stc.low) & (slab_raw <= stc.high)
    np.testing.assert_allclose(stc.invert(yc)[inside], slab_raw[inside], atol=1e-3)
    # clipped voxels come back as the percentile value, not their original one
    assert np.all(stc.invert(yc)[slab_raw > stc.high] == pytest.approx(stc.high))


def test_normstats_is_frozen_and_validated():
    st = NormStats(1.0, 3.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        st.low = 0.0  # type: ignore[misc]
    with pytest.raises(ValueError):
        NormStats(2.0, 2.0)
    np.testing.assert_allclose(st.apply(np.array([1.0, 2.0, 3.0, 5.0])), [0.0, 0.5, 1.0, 1.0])
    assert NormStats(1.0, 3.0, clip=False).apply(np.array([5.0]))[0] == pytest.approx(2.0)


def test_mostly_background_falls_back_to_min_max():
    a = np.zeros((100, 100), np.float32)
    a[0, :5] = [1, 2, 3, 4, 50]  # 0.05 % foreground: both percentiles are 0
    st = fit_normalization(a, (0.5, 99.5))
    assert (st.low, st.high) == (0.0, 50.0)


def test_constant_and_nonfinite_are_input_errors():
    with pytest.raises(InputDataError, match="vol.nii.gz: constant image"):
        fit_normalization(np.full((4, 4, 4), 3.0), path="vol.nii.gz")
    with pytest.raises(InputDataError, match="NaN/Inf"):
        normalize(np.array([[0.0, np.nan], [1.0, 2.0]]))
    with pytest.raises(ValueError, match="percentiles"):
        fit_normalization(np.arange(10.0), (99, 1))
