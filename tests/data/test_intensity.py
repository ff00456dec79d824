"""Contrast augmentation: random intensity tables on real MR, numpy and tf.data alike."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from keras_seran import samples
from keras_seran.config import DataConfig
from keras_seran.data import degrade, load_slice_sets, make_datasets
from keras_seran.data.intensity import apply_contrast_tables, contrast_tables, random_contrast
from keras_seran.data.pipeline import tf_random_contrast
from keras_seran.data.pydataset import PatchPyDataset

SLAB = samples.T1_AXIAL_SLAB
CFG = DataConfig(slice_axis=1, patch_size=16, batch_size=4, val_fraction=0.2, val_gap=4, seed=3)


@pytest.fixture(scope="module")
def t1_slices() -> np.ndarray:
    """Four real normalised T1 slices (4, 256, 256) in [0, 1]."""
    train, _ = load_slice_sets(SLAB, 2, CFG)
    return np.stack(train.slices[:4]).astype(np.float32)


def test_tables_fix_zero_reach_one_and_keep_unchosen_rows_identity():
    rng = np.random.default_rng(0)
    u = rng.random((200, 6), dtype=np.float32)
    tables = contrast_tables(u, prob=0.5)
    chosen = u[:, 0] < 0.5
    assert 50 < chosen.sum() < 150
    np.testing.assert_array_equal(tables[:, 0], 0.0)
    np.testing.assert_allclose(tables.max(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(
        tables[~chosen], np.tile(np.linspace(0, 1, 6), ((~chosen).sum(), 1)), atol=1e-7
    )
    # chosen rows: the free knots are the uniforms divided by their maximum
    np.testing.assert_allclose(
        tables[chosen, 1:], u[chosen, 1:] / u[chosen, 1:].max(axis=1, keepdims=True), rtol=1e-6
    )
    assert np.all(contrast_tables(u, 0.0) == contrast_tables(np.ones_like(u) * 0.99, 0.5))


def test_identity_table_keeps_a_real_slice_and_knots_are_hit_exactly(t1_slices):
    x = t1_slices[:2]
    identity = np.tile(np.linspace(0, 1, 5, dtype=np.float32), (2, 1))
    np.testing.assert_allclose(apply_contrast_tables(x, identity), x, atol=1e-6)
    table = np.array([[0.0, 1.0, 0.5, 0.25, 0.0]], np.float32)
    pts = np.array([[0.0, 0.25, 0.5, 0.75, 1.0, 0.375, 1.7, -0.2]], np.float32)
    np.testing.assert_allclose(
        apply_contrast_tables(pts, table), [[0.0, 1.0, 0.5, 0.25, 0.0, 0.75, 0.0, 0.0]], atol=1e-6
    )


def test_a_decreasing_table_turns_t1_contrast_around_and_keeps_background_dark(t1_slices):
    """T1 -> T2-like: brighter tissue becomes darker, background (0) stays 0."""
    x = t1_slices[:1]
    table = np.array([[0.0, 1.0, 0.8, 0.6, 0.4, 0.2]], np.float32)
    y = apply_contrast_tables(x, table)
    head = x > 0.3
    assert head.mean() > 0.1
    assert np.corrcoef(x[head], y[head])[0, 1] < -0.9
    assert np.all(y[x <= 0] == 0)


def test_tf_remap_equals_the_numpy_rule(t1_slices):
    hr = t1_slices[:, 40:104, 40:104, None]
    seed = tf.constant([7, 11], tf.int64)
    out = tf_random_contrast(tf.constant(hr), 0.6, 6, seed).numpy()
    u = tf.random.stateless_uniform([4, 6], seed=seed).numpy()
    want = apply_contrast_tables(hr[..., 0], contrast_tables(u, 0.6))
    np.testing.assert_allclose(out[..., 0], want, atol=1e-6)
    np.testing.assert_array_equal(tf_random_contrast(tf.constant(hr), 0.0, 6, seed).numpy(), hr)


def test_pipeline_remaps_hr_before_degrading_and_keeps_positions():
    plain, _ = make_datasets(SLAB, 2, CFG)
    aug, _ = make_datasets(SLAB, 2, dataclasses.replace(CFG, contrast_augment=1.0))
    for step, ((lr0, hr0), (lr1, hr1)) in enumerate(zip(plain.take(2), aug.take(2))):
        hr0, lr1, hr1 = hr0.numpy(), lr1.numpy(), hr1.numpy()
        # same patches, remapped by the tables of the stateless seed (seed + 2, step)
        u = tf.random.stateless_uniform([4, 6], seed=tf.constant([CFG.seed + 2, step], tf.int64))
        want = apply_contrast_tables(hr0[..., 0], contrast_tables(u.numpy(), 1.0))
        np.testing.assert_allclose(hr1[..., 0], want, atol=1e-6)
        assert np.abs(hr1 - hr0).max() > 0.05
        # the pair stays exact: LR is the degradation of the remapped HR
        np.testing.assert_allclose(lr1[..., 0], degrade(hr1[..., 0], 2), atol=1e-5)


def test_pydataset_remaps_hr_before_degrading(t1_slices):
    train, _ = load_slice_sets(SLAB, 2, CFG)
    plain = PatchPyDataset(train, 2, CFG, steps_per_epoch=2)
    aug = PatchPyDataset(
        train, 2, dataclasses.replace(CFG, contrast_augment=1.0), steps_per_epoch=2
    )
    (_, hr0), (lr1, hr1) = plain[0], aug[0]
    np.testing.assert_allclose(lr1[..., 0], degrade(hr1[..., 0], 2), atol=1e-6)
    assert np.abs(hr1 - hr0).max() > 0.05
    assert np.all(hr1[hr0 <= 0] == 0)  # background stays dark: same patches, remapped
    rng = np.random.default_rng(1)
    np.testing.assert_array_equal(random_contrast(hr0[..., 0], 0.0, 6, rng), hr0[..., 0])
    assert np.abs(random_contrast(hr0[..., 0], 1.0, 6, rng) - hr0[..., 0]).max() > 0.05


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"contrast_augment": 1.5}, "probability"),
        ({"contrast_augment": -0.1}, "probability"),
        ({"contrast_knots": 2}, "contrast_knots"),
    ],
)
def test_config_rejects_bad_values(kw, match):
    with pytest.raises(ValueError, match=match):
        DataConfig(**kw)


def test_precomputed_lr_cannot_be_remapped():
    cfg = dataclasses.replace(CFG, degradation="kspace", contrast_augment=0.5)
    with pytest.raises(ValueError, match="on-the-fly LR"):
        make_datasets(SLAB, 2, cfg)
    train, _ = load_slice_sets(SLAB, 2, CFG)
    with pytest.raises(ValueError, match="on-the-fly LR"):
        PatchPyDataset(train, 2, cfg)
