"""Scanner-realistic LR (k-space filter, partial Fourier, complex noise, magnitude) on real MR:
the numpy rule, its TensorFlow twin, and both training pipelines."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from keras_seran import samples
from keras_seran.config import AcquisitionConfig, DataConfig
from keras_seran.data import acquisition as acq
from keras_seran.data import degrade, kspace_downscale, load_slice_sets
from keras_seran.data.pipeline import tf_acquire, tf_draw_effects, train_dataset
from keras_seran.data.pydataset import PatchPyDataset

SLAB = samples.T1_AXIAL_SLAB
CFG = DataConfig(
    slice_axis=1,
    patch_size=16,
    batch_size=8,
    val_fraction=0.2,
    val_gap=4,
    seed=3,
    degradation="kspace",
    acquisition=AcquisitionConfig(),
)
#: no effect at all: the plain magnitude of the truncated spectrum's image
NONE = AcquisitionConfig(apodization_prob=0.0, partial_fourier_prob=0.0, noise_prob=0.0)


@pytest.fixture(scope="module")
def train_set():
    return load_slice_sets(SLAB, 2, CFG)[0]


def test_window_and_mask_shapes_and_values():
    w = acq.kspace_window(64, 1.0)  # Hann: 1 at DC, 0 at Nyquist
    assert w[0] == 1.0 and w[32] == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(w[1:32], w[:32:-1])  # symmetric in the signed frequency
    np.testing.assert_allclose(acq.kspace_window(64, 0.0), 1.0)
    hamming = acq.kspace_window(64, 0.92)
    assert hamming[32] == pytest.approx(0.08)  # Hamming's 0.54 - 0.46 at the edge
    m = acq.partial_fourier_mask(64, 0.625, high=True)
    assert m.sum() == 40 and m[0] == 1 and m[31] == 1  # DC and all positive frequencies kept
    assert m[32] == 0  # the most negative frequency is not
    low = acq.partial_fourier_mask(64, 0.625, high=False)
    assert low.sum() == 40 and low[31] == 0 and low[32] == 1


def test_no_effects_is_the_truncated_image_and_filter_keeps_it_real(mr_slice):
    lr0 = kspace_downscale(mr_slice, 2)
    spec = acq.lr_spectrum(lr0)
    np.testing.assert_allclose(acq.acquire(spec).real, lr0, atol=1e-6)
    filtered = acq.acquire(spec, apodization=0.8)
    assert np.abs(filtered.imag).max() < 1e-9  # a symmetric filter: still real
    # the filter smooths: less energy at high frequencies, the mean is kept
    assert np.abs(np.diff(filtered.real, axis=0)).mean() < np.abs(np.diff(lr0, axis=0)).mean()
    assert filtered.real.mean() == pytest.approx(lr0.astype(np.float64).mean(), rel=1e-9)
    partial = acq.acquire(spec, pf_keep=0.6, pf_axis=0)
    assert np.abs(partial.imag).max() > 1e-3  # one-sided k-space: a complex image
    np.testing.assert_array_equal(acq.magnitude_with_noise(spec[:2, :2] * 0 + 3 - 4j, 0.0), 5.0)


def test_noise_is_rician_with_the_drawn_sigma():
    rng = np.random.default_rng(0)
    z = np.zeros((200, 200))
    mag = acq.magnitude_with_noise(z, 0.02, rng.standard_normal((2, 200, 200)))
    assert mag.mean() == pytest.approx(0.02 * np.sqrt(np.pi / 2), rel=0.02)  # Rayleigh mean
    with pytest.raises(ValueError, match="normals"):
        acq.magnitude_with_noise(z, 0.02)


def test_draw_effects_follows_the_config():
    u = np.random.default_rng(1).random((4000, acq.UNIFORMS_PER_SAMPLE))
    cfg = AcquisitionConfig(
        apodization=0.5,
        apodization_prob=0.3,
        partial_fourier=0.75,
        partial_fourier_prob=0.2,
        noise=(0.01, 0.02),
        noise_prob=0.5,
        blind_mix=(2.0, 1.0, 1.0),
    )
    fx = acq.draw_effects(u, cfg, blind=True)
    assert np.mean(fx.apodization > 0) == pytest.approx(0.3, abs=0.03)
    assert fx.apodization.max() <= 0.5
    pf = fx.pf_keep < 1
    assert np.mean(pf) == pytest.approx(0.2, abs=0.03) and fx.pf_keep[pf].min() >= 0.75
    noisy = fx.sigma > 0
    assert np.mean(noisy) == pytest.approx(0.5, abs=0.03)
    assert 0.01 <= fx.sigma[noisy].min() and fx.sigma.max() <= 0.02
    assert np.bincount(fx.kind, minlength=3) / len(u) == pytest.approx([0.5, 0.25, 0.25], abs=0.03)
    assert not acq.draw_effects(u, cfg).kind.any()  # not blind: always k-space


def test_tensorflow_rule_equals_numpy_rule(mr_slice):
    cfg = AcquisitionConfig(partial_fourier_prob=0.6)
    u = np.random.default_rng(2).random((24, acq.UNIFORMS_PER_SAMPLE)).astype(np.float32)
    fx = acq.draw_effects(u, cfg, blind=True)
    lr0 = kspace_downscale(mr_slice[:250, :246], 2)  # odd LR width: 123
    spec = acq.lr_spectrum(lr0)
    spec_tf = tf.signal.fft2d(tf.cast(lr0, tf.complex64))
    assert (fx.pf_keep < 1).sum() >= 5
    for j in range(len(u)):
        t = tf_draw_effects(tf.constant(u[j]), cfg, blind=True)
        assert int(t["kind"]) == fx.kind[j] and int(t["pf_axis"]) == fx.pf_axis[j]
        assert float(t["sigma"]) == pytest.approx(fx.sigma[j], abs=1e-7)
        want = acq.acquire(spec, fx.apodization[j], fx.pf_keep[j], fx.pf_axis[j], fx.pf_high[j])
        np.testing.assert_allclose(tf_acquire(spec_tf, t).numpy(), want, atol=2e-5)


def test_config_checks_and_json_round_trip():
    with pytest.raises(ValueError, match="'kspace' or 'blind'"):
        DataConfig(degradation="bicubic", acquisition=AcquisitionConfig())
    with pytest.raises(ValueError, match="noise_sigma"):
        DataConfig(degradation="kspace", noise_sigma=0.01, acquisition=AcquisitionConfig())
    with pytest.raises(ValueError, match="noise"):
        AcquisitionConfig(noise=(0.03, 0.01))
    with pytest.raises(ValueError, match="partial_fourier"):
        AcquisitionConfig(partial_fourier=0.5)
    with pytest.raises(ValueError, match="blind_mix"):
        AcquisitionConfig(blind_mix=(0, 0, 0))
    import json

    from keras_seran.config import to_dict

    back = DataConfig(**json.loads(json.dumps(to_dict(CFG))))
    assert back == CFG and isinstance(back.acquisition, AcquisitionConfig)
    assert DataConfig(degradation="blind").eval_degradation == "kspace"


def _patch_of(img: np.ndarray, patch: np.ndarray) -> bool:
    """Whether ``patch`` equals (to 1e-5) one of the 8 flips/rotations of a crop of ``img``."""
    p = patch.shape[0]
    for k in range(4):
        for cand in (np.rot90(patch, -k), np.rot90(patch, -k)[:, ::-1]):
            win = np.lib.stride_tricks.sliding_window_view(img, (p, p))
            if np.any(np.all(np.abs(win - cand) < 1e-5, axis=(-1, -2))):
                return True
    return False


@pytest.mark.parametrize("make", ["tf", "py"])
def test_without_effects_patches_are_cut_from_whole_slice_magnitude(train_set, make):
    cfg = dataclasses.replace(CFG, acquisition=NONE, batch_size=3)
    if make == "tf":
        lr, hr = (t.numpy() for t in next(iter(train_dataset(train_set, 2, cfg))))
    else:
        lr, hr = PatchPyDataset(train_set, 2, cfg, steps_per_epoch=2)[0]
    whole = [np.abs(kspace_downscale(s, 2)) for s in train_set.slices]
    for patch in lr[..., 0]:
        assert any(_patch_of(w, patch) for w in whole)


@pytest.mark.parametrize("make", ["tf", "py"])
def test_blind_bicubic_branch_is_the_patch_degradation(train_set, make):
    cfg = dataclasses.replace(
        CFG, degradation="blind", acquisition=dataclasses.replace(NONE, blind_mix=(0, 1, 0))
    )
    if make == "tf":
        lr, hr = (t.numpy() for t in next(iter(train_dataset(train_set, 2, cfg))))
    else:
        lr, hr = PatchPyDataset(train_set, 2, cfg, steps_per_epoch=2)[0]
    # a magnitude image: the small negative overshoot of bicubic next to the background turns positive
    np.testing.assert_allclose(lr[..., 0], np.abs(degrade(hr[..., 0], 2, "bicubic")), atol=1e-5)


@pytest.mark.parametrize("make", ["tf", "py"])
def test_drawn_noise_and_determinism(train_set, make):
    cfg = dataclasses.replace(
        CFG,
        acquisition=dataclasses.replace(NONE, noise=(0.05, 0.05), noise_prob=1.0),
        batch_size=16,
    )

    def first(c):
        if make == "tf":
            return [t.numpy() for t in next(iter(train_dataset(train_set, 2, c)))]
        return PatchPyDataset(train_set, 2, c, steps_per_epoch=2)[0]

    lr, hr = first(cfg)
    lr2, _ = first(cfg)
    np.testing.assert_array_equal(lr, lr2)
    assert lr.min() >= 0  # a magnitude image
    # in the background (HR dark), LR is noise alone: its mean is sigma * sqrt(pi / 2)
    dark = np.stack([hr[i, ::2, ::2, 0] < 0.01 for i in range(len(hr))])
    clean = first(dataclasses.replace(cfg, acquisition=NONE))[0]
    bg = (lr[..., 0] - clean[..., 0])[dark & (clean[..., 0] < 0.005)]
    assert bg.size > 200
    assert bg.mean() == pytest.approx(0.05 * np.sqrt(np.pi / 2), rel=0.15)
