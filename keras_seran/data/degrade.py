"""Degradations that turn an HR MR slice into its LR input (numpy; no TensorFlow).

Every degradation here is *linear and separable* up to the magnitude a scanner shows (k-space)
and the optional Rician noise, so its linear part can be written ``LR = Mh @ HR @ Mw.T`` with two
small matrices that depend only on the image size and the scale. The numpy functions below apply
those matrices; the tf.data pipeline applies the very same matrices as two matrix products
(``tf.einsum``; :func:`degradation_matrices`), so on-the-fly LR patches are exactly (to float32
round-off) what these functions return.

Conventions:
    * images are float arrays of shape (H, W) or batches (N, H, W); results are float32;
    * ``scale`` is the integer super-resolution factor (2, 3, 4); LR is (H // s, W // s);
    * an HR size that is not a multiple of ``scale`` is first cropped at the bottom/right to a
      multiple (:func:`crop_to_multiple`), so that pixel (i, j) of LR covers pixels
      [i*s, (i+1)*s) x [j*s, (j+1)*s) of HR exactly; callers pairing LR with HR should crop HR the
      same way.

Degradations (``DataConfig.degradation``):
    * ``"bicubic"`` (BI, the paper's): MATLAB ``imresize(HR, 1/s, 'bicubic')``: cubic kernel
      a = -0.5, antialiasing (kernel stretched by s when shrinking), symmetric boundary.
    * ``"blur"`` (BD, Zhang et al. RDN 2018 / SRMD, ``imresize_BD``): MATLAB ``imfilter(HR,
      fspecial('gaussian', k, 1.6), 'replicate')``, then at x3 (k = 7) ``imresize(.., 1/3,
      'nearest')`` (HR pixels 3i + 1), at x2 / x4 (k = 12, an even kernel) HR rows
      ``s/2 - 1 + i*s``: every LR pixel sits at the centre of its s x s block
      (:func:`bd_kernel_size`).
    * ``"kspace"``: keep the centre (H/s, W/s) of the 2D Fourier spectrum (what an acquisition
      with an s-times coarser matrix measures), inverse FFT, scaled so the mean intensity is kept,
      sampled at the block centres like bicubic; the magnitude is what the scanner shows (the
      small negative ringing next to sharp edges turns positive). Scanner effects drawn per
      training sample (k-space filter, partial Fourier, noise levels) are in
      :mod:`keras_seran.data.acquisition`.
"""

from __future__ import annotations

import functools
from typing import Literal

import numpy as np

from keras_seran.config import (
    DEGRADATIONS,  # noqa: F401  (the one list, re-exported here)
    check_factor,
)

DegradationKind = Literal["bicubic", "blur", "kspace"]

#: Defaults of the BD degradation: Gaussian blur of sigma 1.6 (RDN / SRMD ``imresize_BD``).
BD_SIGMA = 1.6
#: Taps of RDN's x3 kernel (``fspecial('gaussian', 7, 1.6)``); see :func:`bd_kernel_size`.
BD_KERNEL_SIZE = 7


def bd_kernel_size(scale: int, sigma: float = BD_SIGMA) -> int:
    """Gaussian taps of the BD degradation at ``scale``, as RDN and SRMD (Zhang et al.) make it.

    Odd scales: ``ceil(3 sigma) * 2 + 1`` taps (7 for RDN's x3 with sigma 1.6), then nearest
    decimation. Even scales: ``ceil(3 sigma) * 2 + 2`` taps (12 for sigma 1.6), an even kernel
    whose centre lies half a pixel off a tap, then HR rows ``s/2 - 1, s/2 - 1 + s, ...``: with
    both, every LR pixel sits at the centre of its s x s HR block, as bicubic and k-space LR do
    (a 7-tap kernel and rows ``s//2`` at x2/x4 put it half an HR pixel off).
    """
    s, sig = int(scale), float(sigma)
    if s % 2:
        return BD_KERNEL_SIZE if s == 3 and sig == BD_SIGMA else int(np.ceil(3 * sig)) * 2 + 1
    return int(np.ceil(3 * sig)) * 2 + 2


# --------------------------------------------------------------------------------------------
# helpers


def _as_image(img: np.ndarray) -> np.ndarray:
    a = np.asarray(img)
    if a.ndim not in (2, 3):
        raise ValueError(f"expected an image (H, W) or a batch (N, H, W), got shape {a.shape}")
    if a.shape[-1] == 0 or a.shape[-2] == 0:
        raise ValueError(f"empty image of shape {a.shape}")
    return a.astype(np.float64, copy=False)


def crop_to_multiple(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop the last two axes (H, W) at the bottom/right to multiples of ``scale``.

    (…, H, W) -> (…, H - H % s, W - W % s). Returns a view (no copy).
    """
    s = check_factor(scale)
    a = np.asarray(img)
    h, w = a.shape[-2:]
    return a[..., : h - h % s, : w - w % s]


def _apply(img: np.ndarray, mh: np.ndarray, mw: np.ndarray) -> np.ndarray:
    """``mh @ img @ mw.T`` for (H, W) or (N, H, W) images, in float64, returned as float32.

    Written as 2D BLAS products on reshaped arrays rather than one broadcast matmul, which numpy
    may run through a slow non-BLAS loop for some batch shapes.
    """
    lead = img.shape[:-2]
    h_in, w_in = img.shape[-2:]
    y = np.ascontiguousarray(img).reshape(-1, w_in) @ mw.T  # (N*H, w)
    y = y.reshape(-1, h_in, mw.shape[0])  # (N, H, w)
    y = np.ascontiguousarray(y.transpose(1, 0, 2)).reshape(h_in, -1)  # (H, N*w)
    y = (mh @ y).reshape(mh.shape[0], -1, mw.shape[0]).transpose(1, 0, 2)  # (N, h, w)
    return np.ascontiguousarray(y.reshape(lead + y.shape[1:]), dtype=np.float32)


# --------------------------------------------------------------------------------------------
# MATLAB imresize (bicubic)


def cubic_kernel(x: np.ndarray) -> np.ndarray:
    """Keys cubic convolution kernel with a = -0.5 (MATLAB ``imresize`` 'bicubic'), support [-2, 2]."""
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    return (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * (
        (ax > 1) & (ax <= 2)
    )


@functools.lru_cache(maxsize=256)
def _imresize_weights_cached(
    in_len: int, out_len: int, scale: float, antialias: bool
) -> np.ndarray:
    kernel_width = 4.0
    if scale < 1 and antialias:
        # Antialiasing: stretch the kernel by 1/scale (a low-pass filter matched to the new grid).
        def kernel(x):
            return scale * cubic_kernel(scale * x)

        kernel_width = kernel_width / scale
    else:
        kernel = cubic_kernel
    x = np.arange(1, out_len + 1, dtype=np.float64)  # MATLAB's 1-based output coordinates
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)  # matching input coordinate
    left = np.floor(u - kernel_width / 2.0)
    taps = int(np.ceil(kernel_width)) + 2
    idx = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]
    w = kernel(u[:, None] - idx)
    w = w / w.sum(axis=1, keepdims=True)
    # Symmetric ('mirror with edge repeated') boundary, as MATLAB's contributions().
    aux = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    cols = aux[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]  # idx is 1-based
    m = np.zeros((out_len, in_len), dtype=np.float64)
    rows = np.broadcast_to(np.arange(out_len)[:, None], cols.shape)
    np.add.at(m, (rows, cols), w)
    m.setflags(write=False)
    return m


def imresize_weights(in_len: int, out_len: int, scale: float, antialias: bool = True) -> np.ndarray:
    """Weight matrix (out_len, in_len) of MATLAB ``imresize`` 'bicubic' along one axis.

    ``scale`` is MATLAB's factor, output/input (0.5 halves, 2 doubles). Output sample x (0-based)
    sits at input coordinate ``(x + 0.5) / scale - 0.5``; its weights are the cubic kernel
    (a = -0.5) at the distances to the input samples, stretched by ``1/scale`` when shrinking
    (antialiasing), normalised to sum 1; out-of-range taps are mirrored (symmetric boundary).
    Resizing an image is then ``Wh @ img @ Ww.T``. Cached; the result is read-only.
    """
    if in_len < 1 or out_len < 1:
        raise ValueError(f"lengths must be positive, got in_len={in_len}, out_len={out_len}")
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale!r}")
    return _imresize_weights_cached(int(in_len), int(out_len), float(scale), bool(antialias))


def bicubic_downscale(img: np.ndarray, scale: int) -> np.ndarray:
    """BI degradation: MATLAB ``imresize(img, 1/scale, 'bicubic')`` (antialiased).

    (H, W) or (N, H, W) -> (H//s, W//s) or (N, H//s, W//s), float32 (HR cropped to a multiple of s).
    """
    s = check_factor(scale)
    a = crop_to_multiple(_as_image(img), s)
    h, w = a.shape[-2:]
    if h < s or w < s:
        raise ValueError(f"image of shape {a.shape} is smaller than the scale {s}")
    return _apply(a, imresize_weights(h, h // s, 1.0 / s), imresize_weights(w, w // s, 1.0 / s))


def bicubic_upscale(img: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB ``imresize(img, scale, 'bicubic')``: the bicubic baseline of super-resolution.

    (H, W) or (N, H, W) -> (H*s, W*s) or (N, H*s, W*s), float32.
    """
    s = check_factor(scale)
    a = _as_image(img)
    h, w = a.shape[-2:]
    return _apply(a, imresize_weights(h, h * s, float(s)), imresize_weights(w, w * s, float(s)))


# --------------------------------------------------------------------------------------------
# BD: Gaussian blur then nearest-neighbour decimation


@functools.lru_cache(maxsize=256)
def _blur_matrix_cached(n: int, sigma: float, size: int) -> np.ndarray:
    r = (size - 1) / 2.0
    offsets = np.arange(size, dtype=np.float64) - r
    g = np.exp(-(offsets**2) / (2.0 * sigma * sigma))
    g /= g.sum()
    m = np.zeros((n, n), dtype=np.float64)
    # Correlation with 'replicate' boundary (imfilter(..., 'replicate')); for even sizes the
    # kernel centre is at floor((size+1)/2) as in MATLAB (offsets -size/2 + 1 .. size/2).
    start = -((size - 1) // 2)
    for k in range(size):
        cols = np.clip(np.arange(n) + start + k, 0, n - 1)
        np.add.at(m, (np.arange(n), cols), g[k])
    m.setflags(write=False)
    return m


def gaussian_blur_matrix(n: int, sigma: float = BD_SIGMA, size: int = BD_KERNEL_SIZE) -> np.ndarray:
    """(n, n) matrix of a 1D Gaussian blur (``size`` taps, normalised, replicate boundary).

    The 2D blur ``fspecial('gaussian', size, sigma)`` is separable: ``B @ img @ B.T``.
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma!r}")
    if size < 1:
        raise ValueError(f"size must be positive, got {size!r}")
    return _blur_matrix_cached(int(n), float(sigma), int(size))


def blur_downscale(
    img: np.ndarray, scale: int, sigma: float = BD_SIGMA, kernel_size: int | None = None
) -> np.ndarray:
    """BD degradation (RDN / SRMD ``imresize_BD``): Gaussian blur (sigma 1.6, replicate border;
    :func:`bd_kernel_size` taps unless ``kernel_size`` is given), then decimation to the centre
    of each s x s block: x3 is MATLAB ``imresize(x, 1/3, 'nearest')`` (LR pixel i takes blurred
    HR pixel 3i + 1); x2 / x4 take ``blur(s/2:s:end-s/2)`` (MATLAB indices) of the even kernel.

    (H, W) or (N, H, W) -> (H//s, W//s) or (N, H//s, W//s), float32.
    """
    s = check_factor(scale)
    a = crop_to_multiple(_as_image(img), s)
    h, w = a.shape[-2:]
    mh, mw = blur_downscale_matrices(h, w, s, sigma, kernel_size)
    return _apply(a, mh, mw)


def blur_downscale_matrices(
    h: int, w: int, scale: int, sigma: float = BD_SIGMA, kernel_size: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(Mh, Mw) with ``blur_downscale(img) == Mh @ img @ Mw.T`` for an (h, w) image."""
    s = check_factor(scale)
    size = bd_kernel_size(s, sigma) if kernel_size is None else int(kernel_size)
    # the rows of the blur at the block centres: i*s + floor(s/2) for an odd kernel, one less
    # for an even one (its centre is half a pixel after the tap); a fresh, writable copy
    first = s // 2 - (1 - size % 2)
    mh = np.array(gaussian_blur_matrix(h, sigma, size)[first::s][: h // s])
    mw = np.array(gaussian_blur_matrix(w, sigma, size)[first::s][: w // s])
    return mh, mw


# --------------------------------------------------------------------------------------------
# k-space truncation / zero-filling


def fourier_resample(x: np.ndarray, n_out: int, axis: int) -> np.ndarray:
    """Resample a real signal along ``axis`` to ``n_out`` samples by cropping/zero-padding its
    centred spectrum, scaled by n_out/n_in so the mean is kept.

    Output sample i lies at input position ``i * n_in / n_out + shift``, block-centred
    (:func:`_block_centre_shift`; a linear phase on the spectrum moves the samples). The unpaired Nyquist bin of an even
    length is split/summed symmetrically (as ``scipy.signal.resample`` does), so a real input
    gives an exactly real output and up- then down-sampling (with opposite shifts) is the
    identity on band-limited signals.
    """
    n_in = x.shape[axis]
    shift = _block_centre_shift(n_in, n_out)
    spec = np.moveaxis(np.fft.fft(x, axis=axis), axis, -1)
    out = np.zeros(spec.shape[:-1] + (n_out,), dtype=np.complex128)

    def phase(freq):  # signed frequency (cycles per n_in samples) -> shift
        return np.exp(2j * np.pi * np.asarray(freq, np.float64) * shift / n_in)

    n = min(n_in, n_out)
    pos = n // 2 + 1  # bins 0 .. n//2 (includes Nyquist of n when n is even)
    neg = n - pos  # bins -1 .. -(neg)
    out[..., :pos] = spec[..., :pos] * phase(np.arange(pos))
    if neg > 0:
        out[..., n_out - neg :] = spec[..., n_in - neg :] * phase(np.arange(-neg, 0))
    if n % 2 == 0:
        if n_out < n_in:  # truncation: the kept Nyquist bin gathers both +n/2 and -n/2 input bins
            out[..., n // 2] += spec[..., n_in - n // 2] * phase(-(n // 2))
        elif n_out > n_in:  # zero-filling: split the input Nyquist bin between +n/2 and -n/2
            nyquist = spec[..., n // 2]
            out[..., n // 2] = 0.5 * nyquist * phase(n // 2)
            out[..., n_out - n // 2] = 0.5 * nyquist * phase(-(n // 2))
    y = np.fft.ifft(out, axis=-1).real * (n_out / n_in)
    return np.moveaxis(y, -1, axis)


@functools.lru_cache(maxsize=256)
def _fourier_matrix_cached(in_len: int, out_len: int) -> np.ndarray:
    m = fourier_resample(np.eye(in_len), out_len, axis=0)
    m.setflags(write=False)
    return m


def _block_centre_shift(in_len: int, out_len: int) -> float:
    """The shift (input samples) that puts LR pixel i at the centre of HR block [i*s, (i+1)*s):
    +(s - 1) / 2 HR pixels when truncating, -(s - 1) / (2 s) LR pixels when zero-filling (the
    convention of bicubic ``imresize`` and of the pixel-shuffle output geometry)."""
    if out_len < in_len:
        s = in_len / out_len
        return (s - 1.0) / 2.0
    s = out_len / in_len
    return -(s - 1.0) / (2.0 * s)


def fourier_resample_matrix(in_len: int, out_len: int) -> np.ndarray:
    """(out_len, in_len) real matrix of 1D k-space truncation (out < in) or zero-filling (out > in),
    block-centred (see :func:`kspace_downscale`)."""
    if in_len < 1 or out_len < 1:
        raise ValueError(f"lengths must be positive, got in_len={in_len}, out_len={out_len}")
    return _fourier_matrix_cached(int(in_len), int(out_len))


def kspace_downscale(img: np.ndarray, scale: int) -> np.ndarray:
    """k-space truncation: keep the centre (H/s, W/s) of the 2D FFT and transform back.

    Simulates an acquisition with an s-times coarser matrix over the same field of view: LR
    pixel i is sampled at the centre of HR block [i*s, (i+1)*s), i.e. at HR position
    i*s + (s - 1)/2 (a linear phase on the kept spectrum), like bicubic ``imresize`` and like a
    real coarser acquisition of the same field of view; so flipping or rotating commutes with
    it. The result is multiplied by 1/s^2 (numpy's inverse FFT divides by the smaller size) so
    intensities keep their range; the mean is preserved exactly. Real input -> real output (the
    Nyquist bin is handled symmetrically). Note the FFT treats the image as periodic: apply it to whole slices
    (not to small patches cut out of them) to avoid wrap-around ringing at the patch borders.

    (H, W) or (N, H, W) -> (H//s, W//s) or (N, H//s, W//s), float32.
    """
    s = check_factor(scale)
    a = crop_to_multiple(_as_image(img), s)
    h, w = a.shape[-2:]
    y = fourier_resample(a, h // s, axis=-2)
    y = fourier_resample(y, w // s, axis=-1)
    return y.astype(np.float32)


def kspace_upscale(img: np.ndarray, scale: int) -> np.ndarray:
    """Zero-filling interpolation: pad the centred 2D spectrum to (H*s, W*s) with zeros.

    The inverse of :func:`kspace_downscale` on band-limited images (the usual "ZIP" baseline in
    MR), with the same block-centred convention (LR pixel i at HR position i*s + (s - 1)/2).
    (H, W) or (N, H, W) -> (H*s, W*s) or (N, H*s, W*s), float32.
    """
    s = check_factor(scale)
    a = _as_image(img)
    h, w = a.shape[-2:]
    y = fourier_resample(a, h * s, axis=-2)
    y = fourier_resample(y, w * s, axis=-1)
    return y.astype(np.float32)


# --------------------------------------------------------------------------------------------
# noise and dispatch


def add_rician_noise(
    img: np.ndarray, sigma: float, rng: np.random.Generator | int | None = None
) -> np.ndarray:
    """Rician noise of a magnitude MR image: ``sqrt((x + n1)^2 + n2^2)``, n1, n2 ~ N(0, sigma^2).

    ``sigma`` is in the units of ``img`` (relative to the [0, 1] range for normalised slices);
    ``sigma = 0`` returns a float32 copy. ``rng``: a numpy Generator or a seed. Any shape.
    """
    a = np.asarray(img, dtype=np.float64)
    if sigma < 0:
        raise ValueError(f"noise sigma must be >= 0, got {sigma!r}")
    if sigma == 0:
        return a.astype(np.float32)
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    n1 = rng.normal(0.0, sigma, size=a.shape)
    n2 = rng.normal(0.0, sigma, size=a.shape)
    return np.sqrt((a + n1) ** 2 + n2**2).astype(np.float32)


def degradation_matrices(
    h: int, w: int, scale: int, kind: str = "bicubic"
) -> tuple[np.ndarray, np.ndarray]:
    """(Mh, Mw), float64, with ``degrade(img, scale, kind) == Mh @ img @ Mw.T`` for (h, w) images
    (for "kspace", its magnitude ``|Mh @ img @ Mw.T|``).

    h and w must be multiples of ``scale``. Used by the TensorFlow pipeline to make LR on the fly.
    """
    s = check_factor(scale)
    if h % s or w % s:
        raise ValueError(f"size ({h}, {w}) is not a multiple of scale {s}; crop_to_multiple first")
    kind = _check_kind(kind)
    if kind == "bicubic":
        return imresize_weights(h, h // s, 1.0 / s), imresize_weights(w, w // s, 1.0 / s)
    if kind == "blur":
        return blur_downscale_matrices(h, w, s)
    return fourier_resample_matrix(h, h // s), fourier_resample_matrix(w, w // s)


def resolve_lr_mode(lr_mode: str, kind: str, contrast_augment: float = 0.0) -> str:
    """How training LR patches are made: "on_the_fly" (degrade each HR patch) or "precomputed"
    (degrade whole slices once, cut LR and HR patches at matching positions).

    ``lr_mode="auto"`` precomputes for "kspace" and "blind", whose FFT would wrap around a small
    patch's borders. Contrast augmentation (``DataConfig.contrast_augment`` > 0) remaps HR patches before
    their LR is made, so it needs on-the-fly LR: ValueError otherwise, or for an unknown mode.
    Shared by the tf.data pipeline, the PyDataset and ``keras-seran train``.
    """
    if lr_mode == "auto":
        mode = "precomputed" if kind in ("kspace", "blind") else "on_the_fly"
    elif lr_mode in ("on_the_fly", "precomputed"):
        mode = lr_mode
    else:
        raise ValueError(f"lr_mode must be 'auto', 'on_the_fly' or 'precomputed', got {lr_mode!r}")
    if contrast_augment and mode == "precomputed":
        raise ValueError(
            "contrast_augment remaps HR patches before their LR is made, so it needs "
            f"on-the-fly LR; the {kind!r} degradation precomputes LR from whole slices "
            "(choose contrast_augment=0, another degradation, or lr_mode='on_the_fly' "
            "in the Python API)"
        )
    return mode


def _check_kind(kind: str) -> str:
    if kind not in DEGRADATIONS:
        raise ValueError(f"unknown degradation {kind!r}; choose one of {DEGRADATIONS}")
    return kind


def degrade(
    img: np.ndarray,
    scale: int,
    kind: str = "bicubic",
    noise_sigma: float = 0.0,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """Make the LR input of an HR image: ``kind`` in {"bicubic", "blur", "kspace"} ("kspace":
    the magnitude of the truncated spectrum's image), then optional Rician noise of level
    ``noise_sigma`` (drawn from ``rng``).

    (H, W) or (N, H, W) -> (H//s, W//s) or (N, H//s, W//s), float32.
    """
    kind = _check_kind(kind)
    if kind == "bicubic":
        lr = bicubic_downscale(img, scale)
    elif kind == "blur":
        lr = blur_downscale(img, scale)
    else:
        lr = np.abs(kspace_downscale(img, scale))
    if noise_sigma:
        lr = add_rician_noise(lr, noise_sigma, rng)
    return lr


def lr_hr_pairs(
    slices, scale: int, kind: str = "bicubic"
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Evaluation pairs from whole HR slices: each (H, W) slice cropped to a multiple of
    ``scale`` (HR, float32) and degraded by ``kind`` (LR, (H//s, W//s) float32).

    Returns ``(lr_list, hr_list)``; no noise, so the pairs are deterministic.
    """
    hrs = [np.ascontiguousarray(crop_to_multiple(s, scale), dtype=np.float32) for s in slices]
    return [degrade(h, scale, kind) for h in hrs], hrs


def upscale_baseline(img: np.ndarray, scale: int, kind: str = "bicubic") -> np.ndarray:
    """The interpolation baseline matching a degradation: zero-filling for "kspace", else bicubic."""
    kind = _check_kind(kind)
    return kspace_upscale(img, scale) if kind == "kspace" else bicubic_upscale(img, scale)
