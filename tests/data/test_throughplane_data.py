"""Through-plane training pairs from real MR: thick along the rows only, deterministic."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from keras_seran.config import DataConfig, ThickSliceConfig
from keras_seran.data.slices import load_slice_sets
from keras_seran.data.throughplane import ThickSlicePatches, thick_slice_pair, thicken

CFG = ThickSliceConfig(patch_size=48, batch_size=6, noise_prob=0.0, seed=1)


@pytest.fixture(scope="module")
def fine(slab_slices):
    keep = DataConfig(val_fraction=0.0, percentiles=(0.0, 100.0), slice_axis=0)
    return load_slice_sets(slab_slices[::4], 2, keep)[0]


def test_pairs_are_blurred_along_rows_only(fine):
    ds = ThickSlicePatches(fine, CFG, steps_per_epoch=3)
    inp, tgt = ds[0]
    assert inp.shape == tgt.shape == (6, 48, 48, 1) and inp.dtype == np.float32
    rows = np.abs(np.diff(inp[..., 0], axis=1)).mean() / np.abs(np.diff(tgt[..., 0], axis=1)).mean()
    cols = np.abs(np.diff(inp[..., 0], axis=2)).mean() / np.abs(np.diff(tgt[..., 0], axis=2)).mean()
    assert rows < 0.6 and cols > rows + 0.15  # detail lost mostly along rows
    assert np.abs(inp - tgt).mean() > 0.005


def test_stream_is_a_function_of_seed_and_batch(fine):
    a = ThickSlicePatches(fine, CFG, steps_per_epoch=3)
    b = ThickSlicePatches(fine, CFG, steps_per_epoch=3)
    for k in (0, 2, 5):
        np.testing.assert_array_equal(a.batch(k)[0], b.batch(k)[0])
    assert not np.array_equal(a.batch(0)[1], a.batch(1)[1])
    c = ThickSlicePatches(fine, dataclasses.replace(CFG, seed=2), steps_per_epoch=3)
    assert not np.array_equal(c.batch(0)[1], a.batch(0)[1])
    assert np.array_equal(ThickSlicePatches(fine, CFG, 3, start_epoch=1)[0][1], a.batch(3)[1])


def test_whole_slice_pair_and_bad_configs(mr_slice):
    inp, tgt = thick_slice_pair(mr_slice[:250], 4)
    assert inp.shape == tgt.shape == (248, 256)
    np.testing.assert_allclose(thicken(tgt, 4), tgt.reshape(62, 4, 256).mean(axis=1), atol=1e-6)
    with pytest.raises(ValueError, match="patch_size"):
        ThickSliceConfig(patch_size=16, ratio=(2.0, 6.0))
    with pytest.raises(ValueError, match="profiles"):
        ThickSliceConfig(profiles=("triangle",))
    with pytest.raises(ValueError, match="ratio"):
        ThickSliceConfig(ratio=(4.0, 2.0))
