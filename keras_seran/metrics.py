"""Image-quality metrics, the way the MR SR literature reports them.

PSNR and SSIM on the grey image, with the data range of the normalised image (1.0 for images
in [0, 1]) and a border of ``scale`` pixels cropped from each side. SSIM is Wang et al. (2004):
an 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, over the 'valid' region, as in the
reference MATLAB ``ssim_index.m``.

The numpy functions (:func:`psnr`, :func:`ssim`) are the evaluation protocol; the Keras metrics
(:class:`PSNRMetric`, :class:`SSIMMetric`) compute the same formulas in ``keras.ops`` for
``model.fit`` logs, with two differences that keep a training log finite and faithful to what
the network outputs: they score the raw prediction (the evaluation clips it to [0, 1] first, so
an output that overshoots scores a little lower in the log), and :class:`PSNRMetric` floors the
MSE at 1e-12, i.e. caps PSNR at 120 dB (for data_range 1) where :func:`psnr` returns inf for a
perfect image, which would make the epoch mean inf. On clipped predictions with any error at
all they agree (tests/test_metrics.py).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

PACKAGE = "keras_seran"
#: side of the SSIM window: the smallest image (after the border crop) SSIM is defined on
SSIM_WINDOW = 11


def min_lr_side(scale: int) -> int:
    """Smallest LR side that can be scored at ``scale``: its ``scale`` x HR image, cropped by the
    ``scale``-pixel border of the protocol, must still hold SSIM's window (x2: 8, x3: 6, x4: 5)."""
    s = int(scale)
    return 2 + -(-SSIM_WINDOW // s)


def crop_border(img: np.ndarray, border: int) -> np.ndarray:
    """Drop ``border`` pixels from each side of the last two (H, W) axes (or of (..., H, W, 1))."""
    if border <= 0:
        return img
    if img.ndim >= 3 and img.shape[-1] == 1:
        return img[..., border:-border, border:-border, :]
    return img[..., border:-border, border:-border]


def _as_2d(img) -> np.ndarray:
    a = np.asarray(img, dtype=np.float64)
    a = np.squeeze(a)
    if a.ndim != 2:
        raise ValueError(f"expected one 2D image, got shape {np.shape(img)}")
    return a


def psnr(estimate, reference, data_range: float = 1.0, border: int = 0) -> float:
    """PSNR in dB of one 2D image against its reference, after cropping ``border`` pixels."""
    x, y = crop_border(_as_2d(estimate), border), crop_border(_as_2d(reference), border)
    if x.shape != y.shape:
        raise ValueError(f"shape mismatch: estimate {x.shape} vs reference {y.shape}")
    mse = float(np.mean((x - y) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(data_range**2 / mse)


def _neighbourhood(a: np.ndarray, reduce) -> np.ndarray:
    """``reduce`` (np.maximum / np.minimum) over the 3x3 in-plane neighbourhood of every pixel of
    (..., H, W), edges replicated."""
    p = np.pad(a, [(0, 0)] * (a.ndim - 2) + [(1, 1), (1, 1)], mode="edge")
    h, w = a.shape[-2:]
    out = a.copy()
    for dy in range(3):
        for dx in range(3):
            out = reduce(out, p[..., dy : dy + h, dx : dx + w])
    return out


def overshoot_fraction(lr, sr, scale: int, tolerance: float = 0.05) -> float:
    """Fraction of super-resolved pixels beyond what their low-resolution neighbourhood holds.

    A pixel of ``sr`` (..., H s, W s) overshoots when it is above the maximum (or below the
    minimum) of the 3x3 LR pixels around its parent pixel in ``lr`` (..., H, W) by more than
    ``tolerance`` times the LR's robust range (99.5th minus 0.5th percentile): the bright halos
    and dark rims a network draws along edges, and the ringing of zero-filling. Interpolation
    that stays within its neighbours scores 0. Any leading axes (slices) are pooled.
    """
    lo_hi = np.asarray(lr, np.float64)
    out = np.asarray(sr, np.float64)
    s = int(scale)
    if out.shape[-2:] != (lo_hi.shape[-2] * s, lo_hi.shape[-1] * s):
        raise ValueError(f"sr {out.shape[-2:]} is not lr {lo_hi.shape[-2:]} times {s}")
    span = float(np.percentile(lo_hi, 99.5) - np.percentile(lo_hi, 0.5))

    def up(a):
        return np.repeat(np.repeat(a, s, axis=-2), s, axis=-1)

    top = up(_neighbourhood(lo_hi, np.maximum)) + tolerance * span
    bottom = up(_neighbourhood(lo_hi, np.minimum)) - tolerance * span
    return float(np.mean((out > top) | (out < bottom)))


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    ax = np.arange(size) - (size - 1) / 2.0
    g = np.exp(-(ax**2) / (2 * sigma**2))
    return g / g.sum()


def _filter_valid(img: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation of a 2D image with the 1D window ``g`` on both axes."""
    k = len(g)
    rows = sum(g[i] * img[i : img.shape[0] - k + 1 + i, :] for i in range(k))
    return sum(g[j] * rows[:, j : rows.shape[1] - k + 1 + j] for j in range(k))


def ssim(estimate, reference, data_range: float = 1.0, border: int = 0) -> float:
    """Mean SSIM (Wang et al. 2004, Gaussian 11x11, sigma 1.5) after cropping ``border`` pixels."""
    x, y = crop_border(_as_2d(estimate), border), crop_border(_as_2d(reference), border)
    if x.shape != y.shape:
        raise ValueError(f"shape mismatch: estimate {x.shape} vs reference {y.shape}")
    if min(x.shape) < SSIM_WINDOW:
        raise ValueError(
            f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} after "
            f"cropping, got {x.shape}"
        )
    g = _gaussian_window()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = _filter_valid(x, g), _filter_valid(y, g)
    sxx = _filter_valid(x * x, g) - mx * mx
    syy = _filter_valid(y * y, g) - my * my
    sxy = _filter_valid(x * y, g) - mx * my
    ssim_map = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(ssim_map.mean())


def _crop_tensor(x, border: int):
    return x if border <= 0 else x[:, border:-border, border:-border, :]


class _ImageMetric(keras.metrics.Mean):
    """Mean of a per-image score over (B, H, W, 1) batches, after cropping ``border`` pixels."""

    def __init__(self, data_range: float = 1.0, border: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.data_range = float(data_range)
        self.border = int(border)

    def score(self, y_true, y_pred):
        """Per-image score, shape (B,), of cropped float32 batches."""
        raise NotImplementedError

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = _crop_tensor(ops.cast(y_true, "float32"), self.border)
        y_pred = _crop_tensor(ops.cast(y_pred, "float32"), self.border)
        return super().update_state(self.score(y_true, y_pred), sample_weight=sample_weight)

    def get_config(self):
        return {**super().get_config(), "data_range": self.data_range, "border": self.border}


@keras.saving.register_keras_serializable(package=PACKAGE)
class PSNRMetric(_ImageMetric):
    """Mean per-image PSNR (dB) over batches of (B, H, W, 1) images in [0, data_range], each
    capped at ``10 log10(data_range**2 / 1e-12)`` (120 dB for 1.0) so a perfect image keeps the
    mean finite; the prediction is not clipped (see the module docstring)."""

    def __init__(self, data_range: float = 1.0, border: int = 0, name: str = "psnr", **kwargs):
        super().__init__(data_range, border, name=name, **kwargs)

    def score(self, y_true, y_pred):
        mse = ops.mean(ops.square(y_true - y_pred), axis=(1, 2, 3))
        return 10.0 * ops.log(self.data_range**2 / ops.maximum(mse, 1e-12)) / np.log(10.0)


@keras.saving.register_keras_serializable(package=PACKAGE)
class SSIMMetric(_ImageMetric):
    """Mean per-image SSIM over batches of (B, H, W, 1) images (same definition as :func:`ssim`,
    on the unclipped prediction); images must be at least 11x11 after the border crop."""

    def __init__(self, data_range: float = 1.0, border: int = 0, name: str = "ssim", **kwargs):
        super().__init__(data_range, border, name=name, **kwargs)

    def score(self, y_true, y_pred):
        small = [d for d in y_true.shape[1:3] if d is not None and d < SSIM_WINDOW]
        if small:  # a 'valid' 11x11 window does not fit: TF fails cryptically, eager gives junk
            raise ValueError(
                f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} after "
                f"cropping the {self.border}-pixel border, got "
                f"{tuple(y_true.shape[1:3])}"
            )
        x, y = y_pred, y_true
        g = _gaussian_window().astype("float32")
        kernel = ops.convert_to_tensor(np.outer(g, g)[:, :, None, None])

        def blur(t):
            return ops.conv(t, kernel, padding="valid")

        c1, c2 = (0.01 * self.data_range) ** 2, (0.03 * self.data_range) ** 2
        mx, my = blur(x), blur(y)
        sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
        ssim_map = ((2 * mx * my + c1) * (2 * sxy + c2)) / (
            (mx * mx + my * my + c1) * (sxx + syy + c2)
        )
        return ops.mean(ssim_map, axis=(1, 2, 3))
