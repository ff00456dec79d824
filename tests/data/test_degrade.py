"""Degradations checked against references: published kernel values, exact properties, PIL, scipy."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from keras_seran.data.degrade import (
    add_rician_noise,
    bicubic_downscale,
    bicubic_upscale,
    blur_downscale,
    crop_to_multiple,
    degradation_matrices,
    degrade,
    imresize_weights,
    kspace_downscale,
    kspace_upscale,
)

# Interior weights of MATLAB imresize 'bicubic' (a = -0.5, antialiased) when shrinking by 2 and 4:
# the published tables of the SR literature (e.g. the "bicubic" base kernels of KAIR/BasicSR), i.e.
# cubic(d / s) / s at the tap distances d = +-0.5, +-1.5, ...
MATLAB_X2 = [
    -0.01171875,
    -0.03515625,
    0.11328125,
    0.43359375,
    0.43359375,
    0.11328125,
    -0.03515625,
    -0.01171875,
]
MATLAB_X4 = [
    -0.00170898,
    -0.01098633,
    -0.01831055,
    -0.01196289,
    0.02270508,
    0.09741211,
    0.18188477,
    0.2409668,
    0.2409668,
    0.18188477,
    0.09741211,
    0.02270508,
    -0.01196289,
    -0.01831055,
    -0.01098633,
    -0.00170898,
]


def _keys(x):
    ax = np.abs(x)
    return np.where(
        ax <= 1,
        1.5 * ax**3 - 2.5 * ax**2 + 1,
        np.where(ax <= 2, -0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2, 0.0),
    )


def _reference_downscale_1d(x, s):
    """Independent MATLAB-rule implementation: explicit symmetric padding, then the stretched
    cubic kernel centred at (i + 0.5) * s - 0.5, normalised."""
    pad = 3 * s
    xp = np.pad(x, pad, mode="symmetric")
    out = []
    for i in range(len(x) // s):
        c = (i + 0.5) * s - 0.5
        js = np.arange(int(np.floor(c - 2 * s)), int(np.ceil(c + 2 * s)) + 1)
        w = _keys((js - c) / s)
        out.append(np.sum(w * xp[js + pad]) / w.sum())
    return np.array(out)


@pytest.mark.parametrize("scale, table", [(2, MATLAB_X2), (4, MATLAB_X4)])
def test_imresize_interior_weights_match_published_values(scale, table):
    w = imresize_weights(64, 64 // scale, 1.0 / scale)
    row = 8
    nz = w[row][np.abs(w[row]) > 0]
    np.testing.assert_allclose(nz, table, atol=1e-8)
    start = row * scale + scale // 2 - len(table) // 2  # taps centred on (row+0.5)*s - 0.5
    np.testing.assert_allclose(w[row, start : start + len(table)], table, atol=1e-8)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-12)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_symmetric_boundary_matches_independent_reference(mr_slice, scale):
    img = crop_to_multiple(mr_slice[100:160, 60:180], scale).astype(np.float64)
    ref = np.stack([_reference_downscale_1d(r, scale) for r in img])  # along W
    ref = np.stack([_reference_downscale_1d(c, scale) for c in ref.T]).T  # along H
    np.testing.assert_allclose(bicubic_downscale(img, scale), ref, atol=1e-6)


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("shape", [(48, 48), (50, 37)])
def test_constant_stays_constant(scale, shape):
    out = bicubic_downscale(np.full(shape, 0.37), scale)
    assert out.shape == (shape[0] // scale, shape[1] // scale)
    np.testing.assert_allclose(out, 0.37, atol=1e-6)
    np.testing.assert_allclose(bicubic_upscale(np.full(shape, 0.37), scale), 0.37, atol=1e-6)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_linear_ramp_sampled_at_matlab_coordinates(scale):
    n = 24 * scale
    ramp = np.tile(np.arange(n, dtype=np.float64), (n, 1))  # value = column
    out = bicubic_downscale(ramp, scale)
    x_out = np.arange(n // scale)
    expected = (x_out + 0.5) * scale - 0.5
    interior = slice(2, -2)  # kernel +-2 LR px
    np.testing.assert_allclose(
        out[:, interior], np.broadcast_to(expected, out.shape)[:, interior], atol=1e-5
    )
    up = bicubic_upscale(ramp[:, :24], scale)
    x_hr = np.arange(24 * scale)
    expected_up = (x_hr + 0.5) / scale - 0.5
    inner = slice(2 * scale, -2 * scale)
    np.testing.assert_allclose(
        up[:, inner], np.broadcast_to(expected_up, up.shape)[:, inner], atol=1e-5
    )


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_matches_pil_antialiased_bicubic_on_real_slice(mr_slice, scale):
    """PIL's BICUBIC is the same a=-0.5 kernel with the same antialiasing; it truncates instead of
    mirroring at the image border, so compare away from it (3 LR pixels). Tolerance: float32."""
    hr = crop_to_multiple(mr_slice, scale).astype(np.float32)
    h, w = hr.shape
    pil = np.asarray(Image.fromarray(hr, "F").resize((w // scale, h // scale), Image.BICUBIC))
    ours = bicubic_downscale(hr, scale)
    b = 3
    np.testing.assert_allclose(ours[b:-b, b:-b], pil[b:-b, b:-b], atol=1e-5)
    lr = ours
    pil_up = np.asarray(Image.fromarray(lr, "F").resize((w, h), Image.BICUBIC))
    bb = 3 * scale
    np.testing.assert_allclose(
        bicubic_upscale(lr, scale)[bb:-bb, bb:-bb], pil_up[bb:-bb, bb:-bb], atol=1e-5
    )


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_blur_downscale_is_rdn_imresize_bd(mr_slice, scale):
    """RDN / SRMD imresize_BD: imfilter(fspecial('gaussian', k, 1.6), 'replicate'), then at x3
    imresize(1/3, 'nearest') with k = 7 (HR pixels 1, 4, 7, ... 0-based), at x2 / x4
    blur(s/2:s:end-s/2) with k = ceil(3 sigma)*2 + 2 = 12 (0-based s/2 - 1, s/2 - 1 + s, ...)."""
    ndimage = pytest.importorskip("scipy.ndimage")
    k = 7 if scale == 3 else 12
    r = np.arange(k) - (k - 1) / 2
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * 1.6**2))
    g /= g.sum()  # MATLAB fspecial('gaussian', k, 1.6)
    hr = crop_to_multiple(mr_slice, scale).astype(np.float64)
    # imfilter puts an even kernel's centre on tap k/2 (1-based): scipy's origin -1 does the same
    blurred = ndimage.correlate(hr, g, mode="nearest", origin=0 if k % 2 else -1)
    first = scale // 2 if scale % 2 else scale // 2 - 1
    np.testing.assert_allclose(
        blur_downscale(hr, scale), blurred[first::scale, first::scale], atol=1e-4
    )


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_blur_lr_pixels_sit_at_the_block_centres(mr_slice, scale):
    """Centred decimation commutes with flips: an LR pixel half an HR pixel off (the old 7-tap
    kernel with rows s//2 at x2 / x4) does not, and the pairs of a flipped patch disagree."""
    hr = crop_to_multiple(mr_slice, scale).astype(np.float64)
    lr = blur_downscale(hr, scale)
    np.testing.assert_allclose(blur_downscale(hr[::-1, ::-1], scale), lr[::-1, ::-1], atol=1e-5)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_kspace_keeps_the_centre_of_the_spectrum(mr_slice, scale):
    hr = crop_to_multiple(mr_slice, scale).astype(np.float64)
    lr = kspace_downscale(hr, scale)
    h, w = lr.shape
    assert lr.shape == (hr.shape[0] // scale, hr.shape[1] // scale)
    big = np.fft.fftshift(np.fft.fft2(hr))
    ch, cw = hr.shape[0] // 2, hr.shape[1] // 2
    centre = big[ch - h // 2 : ch - h // 2 + h, cw - w // 2 : cw - w // 2 + w] / scale**2
    small = np.fft.fftshift(np.fft.fft2(lr.astype(np.float64)))
    # every bin except the (symmetrised) Nyquist row/column is the cropped HR spectrum (up to the
    # linear phase of the block-centred sampling, which leaves magnitudes alone)
    np.testing.assert_allclose(
        np.abs(small[1:, 1:]), np.abs(centre[1:, 1:]), atol=1e-3 * np.abs(centre).max() * 1e-3
    )
    assert lr.mean() == pytest.approx(hr.mean(), abs=1e-6)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_kspace_samples_block_centres(scale):
    """A band-limited cosine comes back sampled at the HR block centres i*s + (s-1)/2, as in a
    coarser acquisition of the same field of view (and as bicubic imresize samples)."""
    n = 24 * scale
    t = np.arange(n, dtype=np.float64)
    for cycles in (1, 3, 5):
        for phase0 in (0.0, 0.7):
            wave = np.cos(2 * np.pi * cycles * t / n + phase0)
            img = np.tile(wave, (n, 1))  # varies along the columns only
            lr = kspace_downscale(img, scale)
            centres = np.arange(n // scale) * scale + (scale - 1) / 2
            want = np.cos(2 * np.pi * cycles * centres / n + phase0)
            np.testing.assert_allclose(lr, np.tile(want, (n // scale, 1)), atol=1e-5)
            np.testing.assert_allclose(kspace_upscale(lr, scale), img, atol=1e-5)


@pytest.mark.parametrize(
    "kind, scale",
    [
        ("bicubic", 2),
        ("bicubic", 3),
        ("bicubic", 4),
        ("kspace", 2),
        ("kspace", 3),
        ("kspace", 4),
        ("blur", 3),
    ],
)  # BD at even s keeps an off-centre pixel
def test_degradations_commute_with_flips_and_rotations(mr_slice, kind, scale):
    """Augmenting LR and HR separately (precomputed pairs) is the same as augmenting HR first."""
    hr = crop_to_multiple(mr_slice, scale)
    lr = degrade(hr, scale, kind)
    for op in (np.fliplr, np.flipud, np.rot90):
        np.testing.assert_allclose(
            degrade(np.ascontiguousarray(op(hr)), scale, kind),
            op(lr),
            atol=1e-4 * float(np.abs(hr).max()),
        )


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_kspace_truncation_of_band_limited_image_is_lossless(mr_slice, scale):
    hr = crop_to_multiple(mr_slice, scale).astype(np.float64)
    spec = np.fft.fft2(hr)
    fy = np.abs(np.fft.fftfreq(hr.shape[0]))[:, None]
    fx = np.abs(np.fft.fftfreq(hr.shape[1]))[None, :]
    limit = 0.5 / scale - 1.0 / hr.shape[0]  # strictly inside the LR band
    band_limited = np.fft.ifft2(spec * ((fy < limit) & (fx < limit))).real
    back = kspace_upscale(kspace_downscale(band_limited, scale), scale)
    np.testing.assert_allclose(back, band_limited, atol=1e-5)
    # while bicubic down/up of the same image is not
    assert (
        np.abs(bicubic_upscale(bicubic_downscale(band_limited, scale), scale) - band_limited).max()
        > 1e-3
    )


@pytest.mark.parametrize("kind", ["bicubic", "blur", "kspace"])
def test_matrices_batches_and_dispatch_agree(mr_slice, kind):
    hr = crop_to_multiple(mr_slice[40:220, 30:230], 3)
    one = degrade(hr, 3, kind)
    mh, mw = degradation_matrices(*hr.shape, 3, kind)
    linear = mh @ hr @ mw.T
    # k-space LR is the magnitude of the linear part (what a scanner shows)
    np.testing.assert_allclose(np.abs(linear) if kind == "kspace" else linear, one, atol=1e-5)
    if kind == "kspace":
        assert linear.min() < -1e-4 and one.min() >= 0
    batch = degrade(np.stack([hr, hr[::-1]]), 3, kind)
    assert batch.shape == (2,) + one.shape and batch.dtype == np.float32
    np.testing.assert_allclose(batch[0], one, atol=1e-6)
    np.testing.assert_allclose(
        batch[1], degrade(np.ascontiguousarray(hr[::-1]), 3, kind), atol=1e-6
    )


def test_non_multiple_sizes_are_cropped_bottom_right(mr_slice):
    img = mr_slice[:101, :99]
    assert crop_to_multiple(img, 4).shape == (100, 96)
    np.testing.assert_array_equal(bicubic_downscale(img, 4), bicubic_downscale(img[:100, :96], 4))
    assert kspace_downscale(img, 3).shape == (33, 33)


@pytest.mark.parametrize("kind", ["bicubic", "kspace"])
def test_lr_hr_pairs_crop_then_degrade_each_slice(mr_slice, kind):
    from keras_seran.data.degrade import lr_hr_pairs

    slices = [mr_slice[:101, :99], mr_slice[50:, 20:]]
    lrs, hrs = lr_hr_pairs(slices, 3, kind)
    assert [h.shape for h in hrs] == [(99, 99), (204, 234)]
    assert [l.shape for l in lrs] == [(33, 33), (68, 78)]
    assert all(a.dtype == np.float32 for a in lrs + hrs)
    np.testing.assert_array_equal(hrs[0], mr_slice[:99, :99])
    np.testing.assert_allclose(lrs[1], degrade(mr_slice[50:254, 20:254], 3, kind), atol=1e-6)


def test_rician_noise():
    zeros = np.zeros((200, 200))
    n = add_rician_noise(zeros, 0.05, rng=0)
    assert n.dtype == np.float32 and n.min() >= 0
    assert n.mean() == pytest.approx(0.05 * np.sqrt(np.pi / 2), rel=0.02)  # Rayleigh mean
    np.testing.assert_array_equal(n, add_rician_noise(zeros, 0.05, rng=np.random.default_rng(0)))
    assert not np.array_equal(n, add_rician_noise(zeros, 0.05, rng=1))
    bright = np.full((200, 200), 0.8)
    assert add_rician_noise(bright, 0.01, rng=0).std() == pytest.approx(0.01, rel=0.05)  # ~Gaussian
    np.testing.assert_array_equal(add_rician_noise(bright, 0.0), bright.astype(np.float32))
    lr = degrade(bright, 2, "bicubic", noise_sigma=0.01, rng=0)
    assert lr.shape == (100, 100) and not np.allclose(lr, 0.8)


def test_invalid_arguments():
    img = np.zeros((8, 8))
    with pytest.raises(ValueError, match="unknown degradation"):
        degrade(img, 2, "nearest")
    with pytest.raises(ValueError, match="scale"):
        bicubic_downscale(img, 0)
    with pytest.raises(ValueError, match="image"):
        bicubic_downscale(np.zeros(8), 2)
    with pytest.raises(ValueError, match=">= 0"):
        add_rician_noise(img, -1)
