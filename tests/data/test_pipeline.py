"""tf.data pipeline on real MR data: shapes, exact LR, subject-safe validation, determinism, fit."""

from __future__ import annotations

import warnings

import keras
import nibabel as nib
import numpy as np
import pytest
import tensorflow as tf

from keras_seran import samples
from keras_seran.config import DataConfig
from keras_seran.data import (
    degrade,
    load_slice_sets,
    make_datasets,
    make_representative_slices,
    normalize,
    validation_pairs,
)
from keras_seran.data.pipeline import tf_degrade_batch
from keras_seran.errors import InputDataError

SLAB = samples.T1_AXIAL_SLAB
BASE = DataConfig(slice_axis=1, patch_size=16, batch_size=4, val_fraction=0.2, val_gap=4)


def _cfg(**kw) -> DataConfig:
    import dataclasses

    return dataclasses.replace(BASE, **kw)


def _batches(ds, n):
    return [(lr.numpy(), hr.numpy()) for lr, hr in ds.take(n)]


def _contains(img: np.ndarray, patch: np.ndarray) -> bool:
    """Whether ``patch`` is an exact axis-aligned crop of ``img``.

    Prefilter: the 8-pixel run of the patch with the most contrast, searched in every row."""
    ph, pw = patch.shape
    if img.shape[0] < ph or img.shape[1] < pw:
        return False
    k = min(8, pw)
    runs = np.lib.stride_tricks.sliding_window_view(patch, k, axis=1)  # (ph, pw-k+1, k)
    r, c = np.unravel_index(np.argmax(runs.std(axis=-1)), runs.shape[:2])
    rows = img[r : img.shape[0] - ph + 1 + r, c : img.shape[1] - pw + 1 + c + k - 1]
    win = np.lib.stride_tricks.sliding_window_view(rows, k, axis=1)
    ys, xs = np.nonzero(np.all(win == patch[r, c : c + k], axis=-1))
    return any(np.array_equal(img[y : y + ph, x : x + pw], patch) for y, x in zip(ys, xs))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_batch_shapes_dtypes_and_exact_bicubic_lr(scale):
    train_ds, val_ds = make_datasets(SLAB, scale, _cfg())
    assert train_ds.cardinality() == tf.data.INFINITE_CARDINALITY
    p = 16
    for lr, hr in _batches(train_ds, 2):
        assert lr.shape == (4, p, p, 1) and hr.shape == (4, p * scale, p * scale, 1)
        assert lr.dtype == hr.dtype == np.float32
        assert 0.0 <= hr.min() and hr.max() <= 1.0 and hr.std() > 0.01
        np.testing.assert_allclose(lr[..., 0], degrade(hr[..., 0], scale, "bicubic"), atol=1e-5)
    lr, hr = next(iter(val_ds))
    assert lr.shape[0] == 1 and lr.shape[-1] == 1
    assert hr.shape[1] == lr.shape[1] * scale and hr.shape[2] == lr.shape[2] * scale
    np.testing.assert_allclose(
        lr.numpy()[0, ..., 0], degrade(hr.numpy()[0, ..., 0], scale), atol=1e-6
    )


@pytest.mark.parametrize("kind", ["blur", "kspace"])
def test_on_the_fly_lr_equals_numpy_degradation(kind):
    train_ds, _ = make_datasets(SLAB, 2, _cfg(degradation=kind), lr_mode="on_the_fly")
    lr, hr = _batches(train_ds, 1)[0]
    np.testing.assert_allclose(lr[..., 0], degrade(hr[..., 0], 2, kind), atol=1e-5)


def test_tf_degrade_batch_matches_numpy(mr_slice):
    hr = np.stack([mr_slice[:96, :96], mr_slice[100:196, 80:176]])[..., None]
    for kind in ("bicubic", "blur", "kspace"):
        out = tf_degrade_batch(tf.constant(hr), 3, kind).numpy()
        np.testing.assert_allclose(out[..., 0], degrade(hr[..., 0], 3, kind), atol=1e-5)


def test_precomputed_lr_is_cut_from_whole_slice_degradation():
    cfg = _cfg(augment=False)
    train_ds, _ = make_datasets(SLAB, 2, cfg, lr_mode="precomputed")
    lr, hr = _batches(train_ds, 1)[0]
    # Bicubic reaches 2 LR pixels: inside that border a patch cut from the whole-slice LR equals
    # the degradation of the HR patch; whole-slice kspace LR (the "auto" mode) also has the shapes.
    np.testing.assert_allclose(
        lr[:, 2:-2, 2:-2, 0], degrade(hr[..., 0], 2)[:, 2:-2, 2:-2], atol=1e-5
    )
    ks, _ = make_datasets(SLAB, 2, _cfg(degradation="kspace"))
    lr_k, hr_k = _batches(ks, 1)[0]
    assert lr_k.shape == (4, 16, 16, 1) and hr_k.shape == (4, 32, 32, 1)
    assert abs(lr_k.mean() - hr_k.mean()) < 0.02


def test_same_seed_same_batches_different_seed_different():
    a = _batches(make_datasets(SLAB, 2, _cfg(seed=1))[0], 3)
    b = _batches(make_datasets(SLAB, 2, _cfg(seed=1))[0], 3)
    c = _batches(make_datasets(SLAB, 2, _cfg(seed=2))[0], 3)
    for (la, ha), (lb, hb) in zip(a, b):
        np.testing.assert_array_equal(la, lb)
        np.testing.assert_array_equal(ha, hb)
    assert not any(np.array_equal(ha, hc) for (_, ha), (_, hc) in zip(a, c))


def test_start_batch_continues_the_stream_exactly():
    """A resumed run (start_batch=k) sees exactly batch k onwards of the uninterrupted stream."""
    cfg = _cfg(seed=3, noise_sigma=0.02)
    full = _batches(make_datasets(SLAB, 2, cfg)[0], 5)
    resumed = _batches(make_datasets(SLAB, 2, cfg, start_batch=3)[0], 2)
    for (lf, hf), (lr, hr) in zip(full[3:], resumed):
        np.testing.assert_array_equal(lf, lr)
        np.testing.assert_array_equal(hf, hr)
    assert not np.array_equal(full[0][1], resumed[0][1])


def test_augmentation_uses_flips_and_rotations():
    # With augmentation off every HR patch is an axis-aligned crop of a training slice; with it on,
    # some are not (a rotated/flipped crop).
    train, _ = load_slice_sets(SLAB, 2, _cfg())

    def found(patch):
        return any(_contains(s, patch) for s in train.slices)

    plain = _batches(make_datasets(SLAB, 2, _cfg(augment=False, seed=5))[0], 1)[0][1][..., 0]
    assert all(found(p) for p in plain)
    aug = _batches(make_datasets(SLAB, 2, _cfg(augment=True, seed=5, batch_size=8))[0], 1)[0][1][
        ..., 0
    ]
    assert not all(found(p) for p in aug)

    # ... and each augmented patch is one of the 8 dihedral transforms of a training crop
    def dihedral(p):
        return [np.rot90(q, k) for q in (p, p[:, ::-1]) for k in range(4)]

    assert all(any(found(np.ascontiguousarray(q)) for q in dihedral(p)) for p in aug)


def test_noise_is_added_deterministically():
    cfg = _cfg(noise_sigma=0.02, seed=3)
    lr1, hr1 = _batches(make_datasets(SLAB, 2, cfg)[0], 1)[0]
    lr2, _ = _batches(make_datasets(SLAB, 2, cfg)[0], 1)[0]
    np.testing.assert_array_equal(lr1, lr2)
    clean = degrade(hr1[..., 0], 2)
    resid = lr1[..., 0] - clean
    assert 0.005 < np.abs(resid).mean() < 0.05 and lr1.min() >= 0


def test_validation_never_from_a_training_volume(ixi_dir):
    cfg = DataConfig(
        slice_axis=1,
        patch_size=24,
        batch_size=8,
        val_fraction=0.25,
        augment=False,
        min_foreground=0.0,
        seed=11,
    )
    train_ds, val_ds = make_datasets(ixi_dir, 2, cfg)
    train, val = load_slice_sets(ixi_dir, 2, cfg)
    val_subjects = {f.split("/")[-1][:6] for f in val.source_files}
    files = sorted(ixi_dir.glob("*.nii.gz"))
    vols = {
        f.name: normalize(np.asarray(nib.load(f).dataobj, np.float32), cfg.percentiles)[0]
        for f in files
    }
    is_val = {name: name[:6] in val_subjects for name in vols}
    assert any(is_val.values()) and not all(is_val.values())

    def owners(img2d):
        hits = set()
        for name, v in vols.items():
            for k in range(v.shape[1]):
                if _contains(v[:, k, :], img2d):
                    hits.add(name)
        return hits

    n_val = 0
    for lr, hr in val_ds:
        who = owners(hr.numpy()[0, ..., 0])
        assert who and all(is_val[w] for w in who), who
        n_val += 1
    assert n_val == len(val) > 0
    n_checked = 0
    for _, hr in _batches(train_ds, 3):
        for patch in hr[..., 0]:
            if (patch > 0.05).mean() < 0.5:
                continue  # background patches match anywhere: not informative
            n_checked += 1
            who = owners(patch)
            assert who and not any(is_val[w] for w in who), who
    assert n_checked >= 4


def test_validation_pairs_equal_val_dataset():
    cfg = _cfg()
    _, val_ds = make_datasets(SLAB, 3, cfg)
    lrs, hrs = validation_pairs(SLAB, 3, cfg)
    got = list(val_ds)
    assert len(got) == len(lrs) == len(hrs) > 0
    for (lr, hr), l2, h2 in zip(got, lrs, hrs):
        np.testing.assert_array_equal(lr.numpy()[0, ..., 0], l2)
        np.testing.assert_array_equal(hr.numpy()[0, ..., 0], h2)
        assert h2.shape == (255, 255) and l2.shape == (85, 85)  # 256 cropped to a multiple of 3


def test_representative_slices():
    reps = make_representative_slices(SLAB, n=3, scale=2, config=_cfg())
    assert len(reps) == 3
    for r in reps:
        assert r.shape == (1, 128, 128, 1) and r.dtype == np.float32
        assert -0.1 < r.min() and r.max() < 1.1


def test_no_val_and_errors(tmp_path):
    train_ds, val_ds = make_datasets(SLAB, 2, _cfg(val_fraction=0.0))
    assert val_ds is None and next(iter(train_ds))[0].shape == (4, 16, 16, 1)
    with pytest.raises(InputDataError, match="does not exist|no such file"):
        make_datasets(tmp_path / "missing.nii.gz", 2, _cfg())
    with pytest.raises(InputDataError, match="no training slice left"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        make_datasets(SLAB, 4, _cfg(slice_axis=0, patch_size=48))


def test_model_fit_runs_on_the_datasets():
    train_ds, val_ds = make_datasets(SLAB, 2, _cfg())
    inp = keras.Input((None, None, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    x = keras.layers.UpSampling2D(2)(x)
    out = keras.layers.Conv2D(1, 3, padding="same")(x)
    model = keras.Model(inp, out)
    model.compile("adam", "mae")
    hist = model.fit(
        train_ds, steps_per_epoch=3, epochs=1, validation_data=val_ds, shuffle=False, verbose=0
    )
    assert np.isfinite(hist.history["loss"][0]) and np.isfinite(hist.history["val_loss"][0])


@pytest.mark.shared_data
def test_shared_256iso_volume_scale4(shared_data):
    cfg = DataConfig(slice_axis=1, patch_size=24, batch_size=4, seed=0)
    train_ds, val_ds = make_datasets(shared_data / "t1_head_256iso.nii.gz", 4, cfg)
    lr, hr = next(iter(train_ds))
    assert lr.shape == (4, 24, 24, 1) and hr.shape == (4, 96, 96, 1)
    np.testing.assert_allclose(lr.numpy()[..., 0], degrade(hr.numpy()[..., 0], 4), atol=1e-5)
    vlr, vhr = next(iter(val_ds))
    assert vhr.shape == (1, 256, 256, 1) and vlr.shape == (1, 64, 64, 1)


@pytest.mark.shared_data
def test_shared_lowres_and_pngs_together(shared_data):
    cfg = DataConfig(slice_axis=2, patch_size=16, batch_size=2, val_fraction=0.34)
    srcs = [
        shared_data / "t1_lowres_2x2x3mm.nii.gz",
        shared_data / "brainweb_t1_slice.png",
        shared_data / "brainweb_pd_slice.png",
    ]
    train_ds, val_ds = make_datasets(srcs, 2, cfg)
    lr, hr = next(iter(train_ds))
    assert lr.shape == (2, 16, 16, 1) and hr.shape == (2, 32, 32, 1)
    assert val_ds is not None and next(iter(val_ds))[0].shape[0] == 1
