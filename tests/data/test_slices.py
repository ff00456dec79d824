"""Slice extraction and subject-safe splits on the real T1 slab and an IXI-style folder."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from keras_seran import samples
from keras_seran.config import DataConfig
from keras_seran.data.io import parse_ixi_name
from keras_seran.data.normalize import normalize
from keras_seran.data.slices import (
    extract_slices,
    load_scored_slices,
    load_slice_sets,
    split_single_volume,
    split_volumes,
)
from keras_seran.errors import InputDataError, UsageError


@pytest.fixture(scope="module")
def slab01(slab_raw):
    return normalize(slab_raw, (0.5, 99.5))[0]


def test_extract_slices_axis_and_threshold(slab01):
    sl, idx = extract_slices(slab01, axis=1, min_foreground=0.0, threshold=0.05)
    assert sl.shape == (16, 256, 256) and sl.dtype == np.float32
    np.testing.assert_array_equal(idx, np.arange(16))
    np.testing.assert_array_equal(sl[5], slab01[:, 5, :])
    # along axis 0 many sagittal rows are pure background: they are dropped
    sl0, idx0 = extract_slices(slab01, axis=0, min_foreground=0.1, threshold=0.05)
    frac = (slab01 > 0.05).mean(axis=(1, 2))
    np.testing.assert_array_equal(idx0, np.nonzero(frac >= 0.1)[0])
    assert 0 < len(idx0) < 256 and sl0.shape[1:] == (16, 256)
    assert len(extract_slices(slab01, 1, min_foreground=0.99, threshold=0.05)[1]) == 0


def test_split_volumes_by_subject():
    names = [
        f"IXI{100 + i:03d}-Guys-{i:04d}-{c}.nii.gz" for i in range(10) for c in ("T1", "T2", "PD")
    ]
    train, val = split_volumes(names, val_fraction=0.2, seed=3)
    assert len(val) == 2 * 3 and len(train) == 8 * 3
    sub_train = {parse_ixi_name(n)[0] for n in train}
    sub_val = {parse_ixi_name(n)[0] for n in val}
    assert not sub_train & sub_val and len(sub_val) == 2  # every contrast of a subject together
    assert split_volumes(names, 0.2, seed=3) == (train, val)
    assert any(split_volumes(names, 0.2, seed=s)[1] != val for s in range(4, 10))
    assert split_volumes(names, 0.0, seed=3) == (names, [])
    # at least one subject on each side, even for extreme fractions
    assert len(split_volumes(names[:6], 0.9, seed=0)[0]) == 3
    with pytest.raises(InputDataError, match="at least two subjects"):
        split_volumes(names[:3], 0.5)


def test_split_single_volume_contiguous_with_gap():
    tr, va = split_single_volume(100, 0.1, gap=8)
    np.testing.assert_array_equal(va, np.arange(90, 100))
    np.testing.assert_array_equal(tr, np.arange(0, 82))
    assert va.min() - tr.max() == 9  # 8 slices dropped in between
    with pytest.warns(UserWarning, match="gap reduced"):
        tr, va = split_single_volume(6, 0.2, gap=8)
    assert len(tr) >= 1 and tr.max() < va.min()
    with pytest.raises(UsageError, match="too few"):
        split_single_volume(1, 0.5, gap=0)


def test_single_volume_slab_split_never_mixes(slab_raw):
    cfg = DataConfig(slice_axis=1, patch_size=24, val_fraction=0.2, val_gap=4)
    train, val = load_slice_sets(samples.T1_AXIAL_SLAB, 2, cfg)
    assert set(val.axes) == {1} and len(val) == 3  # round(0.2 * 16)
    assert min(val.indices) - max(train.indices) > cfg.val_gap
    assert train.source_files == val.source_files == [str(samples.T1_AXIAL_SLAB)]


def test_single_volume_all_axes_training_excludes_val_slab(slab_raw):
    cfg = DataConfig(slice_axis=None, patch_size=4, val_fraction=0.25, val_gap=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train, val = load_slice_sets(samples.T1_AXIAL_SLAB, 2, cfg)
    assert set(val.axes) == {2} and set(train.axes) == {0, 1, 2}
    val_start = min(val.indices)
    # slices cut along axes 0 and 1 stop before the validation slab (and its gap) on axis 2
    for s, a in zip(train.slices, train.axes):
        if a in (0, 1):
            assert s.shape[1] <= val_start - cfg.val_gap
    assert max(i for i, a in zip(train.indices, train.axes) if a == 2) < val_start - cfg.val_gap


def test_ixi_folder_split_by_subject(ixi_dir):
    cfg = DataConfig(slice_axis=1, patch_size=24, val_fraction=0.25, min_foreground=0.0)
    train, val = load_slice_sets(ixi_dir, 2, cfg)
    subj_train = {parse_ixi_name(s)[0] for s in train.source_files}
    subj_val = {parse_ixi_name(s)[0] for s in val.source_files}
    assert len(subj_val) == 1 and len(subj_train) == 3 and not subj_train & subj_val
    assert len(train) + len(val) == 6 * 4
    t2 = load_slice_sets(ixi_dir, 2, DataConfig(slice_axis=1, patch_size=24, contrast="T2"))
    assert all(s.endswith("-T2.nii.gz") for s in t2[0].source_files + t2[1].source_files)
    # the same files named one by one (a shell-expanded glob) obey the contrast too
    files = sorted(str(f) for f in ixi_dir.glob("*.nii.gz"))
    listed = load_slice_sets(files, 2, DataConfig(slice_axis=1, patch_size=24, contrast="T2"))
    assert sorted(listed[0].source_files + listed[1].source_files) == sorted(
        t2[0].source_files + t2[1].source_files
    )
    with pytest.raises(UsageError, match="'PD'"):
        load_slice_sets(files, 2, DataConfig(slice_axis=1, patch_size=24, contrast="PD"))


def test_small_slices_skipped_with_warning_then_error(slab_raw):
    # Along axis 0 the slab's slices are 16 x 256: smaller than a 48 px HR patch.
    cfg_all = DataConfig(slice_axis=None, patch_size=24, val_fraction=0.0)
    with pytest.warns(UserWarning, match="smaller than the HR patch") as rec:
        train, _ = load_slice_sets(samples.T1_AXIAL_SLAB, 2, cfg_all)
    assert str(samples.T1_AXIAL_SLAB) in str(rec[0].message)
    assert set(train.axes) == {1}
    with pytest.raises(InputDataError) as ei, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load_slice_sets(samples.T1_AXIAL_SLAB, 2, DataConfig(slice_axis=0, patch_size=24))
    msg = str(ei.value)
    assert str(samples.T1_AXIAL_SLAB) in msg and "no training slice left" in msg and "48x48" in msg


def test_arrays_and_2d_files_as_sources(slab_raw):
    cfg = DataConfig(patch_size=24, val_fraction=0.5, slice_axis=1)
    imgs = [slab_raw[:, 2, :], slab_raw[:, 9, :]]
    train, val = load_slice_sets(imgs, 2, cfg)
    assert len(train) == len(val) == 1 and train.sources != val.sources
    st = train.stats[train.sources[0]]
    np.testing.assert_allclose(
        st.invert(train.slices[0]),
        np.clip(imgs[int(train.sources[0][-2])], st.low, st.high),
        atol=1e-3,
    )
    with pytest.raises(InputDataError, match="constant"):
        load_slice_sets([np.zeros((64, 64))], 2, cfg)
    tr_png, va_png = load_slice_sets(
        [samples.BRAINWEB_T1, samples.BRAINWEB_PD], 2, DataConfig(patch_size=24, val_fraction=0.5)
    )
    assert len(tr_png) == len(va_png) == 1 and tr_png.slices[0].shape == (217, 181)


def test_small_slices_message_for_evaluation(slab_raw):
    """Evaluation names the scoring minimum, not a training patch; an explicit training minimum
    is not blamed on patch_size either."""
    # the slab's axis-0 slices are 16 x 256: under x4's scoring minimum of 20
    cfg = DataConfig(slice_axis=0, val_fraction=0.0)
    with pytest.raises(InputDataError) as ei, warnings.catch_warnings():
        warnings.simplefilter("error")  # the error alone, no skipped-slices warning too
        load_scored_slices(samples.T1_AXIAL_SLAB, 4, 20, cfg)
    msg = str(ei.value)
    assert msg.startswith(str(samples.T1_AXIAL_SLAB)) and "no slice left to score" in msg
    assert "20x20" in msg and "x4" in msg and "patch" not in msg and "training" not in msg
    with pytest.raises(InputDataError) as ei, warnings.catch_warnings():
        warnings.simplefilter("error")
        load_slice_sets(samples.T1_AXIAL_SLAB, 2, cfg, min_size=20)
    msg = str(ei.value)
    assert "no training slice left" in msg and "20x20" in msg and "patch_size" not in msg


def test_slice_files_of_one_subject_still_hold_some_out(tmp_path):
    """2D slices saved by one subject's id (sub-01_z000.npy, ...) group into one subject; a
    split by subject would then hold nothing out, so they split by file (as before the ids were
    read from such names)."""
    import nibabel as nib

    slab = np.asarray(nib.load(samples.T1_AXIAL_SLAB).dataobj, np.float32)
    for i in range(16):
        np.save(tmp_path / f"sub-01_z{i:03d}.npy", slab[:, i, :])
    cfg = DataConfig(val_fraction=0.2, slice_axis=None)
    train, val = load_slice_sets(tmp_path, 2, cfg)
    assert len(train) + len(val) == 16 and len(val) == 3
    assert not set(train.source_files) & set(val.source_files)


def test_volumes_in_npy_files_of_one_subject_are_not_split_by_file(tmp_path):
    """.npy may hold a volume: two sessions of one subject must not land on both sides."""
    import nibabel as nib

    slab = np.asarray(nib.load(samples.T1_AXIAL_SLAB).dataobj, np.float32)[64:192, :, 64:192]
    for ses in (1, 2):
        np.save(tmp_path / f"sub-01_ses-{ses}_T1w.npy", slab)
    train, val = load_slice_sets(
        tmp_path, 2, DataConfig(patch_size=8, val_fraction=0.2, val_gap=2, slice_axis=1)
    )
    # one subject: each volume gives training slices and a held-out end slab, as before
    assert set(train.source_files) == set(val.source_files) and len(set(val.source_files)) == 2


def test_scored_slices_are_the_held_out_split_or_every_slice():
    """Evaluation scores the validation slices of the training split (same config), or every
    slice when nothing is held out; slices below the scoring minimum are left out."""
    import dataclasses

    cfg = DataConfig(slice_axis=1, patch_size=24, val_fraction=0.2, val_gap=4)
    train, val = load_slice_sets(samples.T1_AXIAL_SLAB, 2, cfg)
    scored = load_scored_slices(samples.T1_AXIAL_SLAB, 2, 20, cfg)
    assert scored.indices == val.indices and len(scored) >= 1
    assert all(np.array_equal(a, b) for a, b in zip(scored.slices, val.slices))
    every = load_scored_slices(
        samples.T1_AXIAL_SLAB, 2, 20, dataclasses.replace(cfg, val_fraction=0.0)
    )
    assert set(every.indices) >= set(train.indices) | set(val.indices)
    with pytest.warns(UserWarning, match="PSNR/SSIM minimum at x2"):  # axis 0: 16 x 256
        thin = load_scored_slices(
            samples.T1_AXIAL_SLAB, 2, 20, DataConfig(slice_axis=None, val_fraction=0.0)
        )
    assert thin.axes and 0 not in thin.axes
