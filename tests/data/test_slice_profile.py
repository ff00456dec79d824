"""Thick-slice acquisition matrices: exact profiles, block centres, cubic interpolation."""

from __future__ import annotations

import numpy as np
import pytest

from keras_seran.data.degrade import imresize_weights
from keras_seran.data.slice_profile import (
    block_centres,
    cubic_matrix,
    profile_matrix,
    thick_slice_matrix,
)


def test_boxcar_of_integer_thickness_averages_its_block(mr_slice):
    a = profile_matrix(256, block_centres(64, 4.0), 4.0)
    thick = a @ mr_slice
    np.testing.assert_allclose(thick, mr_slice.reshape(64, 4, 256).mean(axis=1), atol=1e-6)


def test_non_integer_boxcar_weights_are_voxel_overlaps():
    a = profile_matrix(10, block_centres(3, 2.5), 2.5)  # slices [-0.5, 2), [2, 4.5), ...
    np.testing.assert_allclose(a[0, :3], np.array([1, 1, 0.5]) / 2.5)
    np.testing.assert_allclose(a[1, 2:5], np.array([0.5, 1, 1]) / 2.5)
    np.testing.assert_allclose(a.sum(axis=1), 1.0)


def test_gaussian_profile_has_the_asked_fwhm():
    a = profile_matrix(201, np.array([100.0]), 8.0, "gaussian")[0]
    half = a.max() / 2
    above = np.nonzero(a >= half)[0]
    assert 7 <= above[-1] - above[0] + 1 <= 9  # FWHM 8 voxels
    assert a.sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="profile"):
        profile_matrix(10, np.array([2.0]), 2.0, "triangle")


def test_cubic_matrix_is_imresize_without_antialiasing():
    for m, n in ((16, 64), (13, 50), (62, 186)):
        r = n / m
        np.testing.assert_allclose(
            cubic_matrix((np.arange(n) + 0.5) / r - 0.5, m),
            imresize_weights(m, n, r, antialias=False),
            atol=1e-12,
        )


def test_thick_slice_degradation_keeps_smooth_signals_and_blurs_edges(mr_slice):
    a, u = thick_slice_matrix(96, 4.0, gap=0.0, offset=1.3)
    assert a.shape[1] == 96 and u.shape == (96, a.shape[0])
    ramp = np.linspace(0, 1, 96)
    # away from the ends, where the last slice is cut by the patch edge and cubic extrapolates
    inner = slice(8, -12)
    np.testing.assert_allclose((u @ a @ ramp)[inner], ramp[inner], atol=1e-6)
    patch = mr_slice[80:176, 80:176]
    out = u @ a @ patch
    assert np.abs(np.diff(out, axis=0)).mean() < np.abs(np.diff(patch, axis=0)).mean()
    np.testing.assert_allclose(
        np.abs(np.diff(out, axis=1)).mean(), np.abs(np.diff(patch, axis=1)).mean(), rtol=0.35
    )
    with pytest.raises(ValueError, match="fewer than two"):
        thick_slice_matrix(8, 6.0)
