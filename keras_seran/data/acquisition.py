"""Scanner-realistic low resolution: what an MR console acquires with a smaller matrix (numpy).

A console's low-resolution image is not a downscaled picture. An acquisition with an s-times
smaller matrix over the same field of view measures only the centre (H/s, W/s) of the object's
k-space; the scanner may weight that k-space with a filter (apodisation: Hann/Hamming-type, to
curb Gibbs ringing), may skip part of one side of k-space along the phase-encoding axis (partial
Fourier, then zero-filled), receives complex Gaussian thermal noise, and shows the magnitude:

    LR = | IFFT2( K * (w_h ⊗ w_w) * pf ) + n1 + i n2 |,   K = FFT2(kspace_downscale(HR, s))

``K`` is the block-centred truncated spectrum (:func:`keras_seran.data.degrade.kspace_downscale`),
``w`` a 1D window per axis, ``pf`` a 1D mask along one axis, ``n1, n2 ~ N(0, sigma^2)`` (so a real
image gets Rician noise). Everything acts on whole slices (an FFT of a small patch would wrap
around its borders); patches are cut from the result.

Per training sample the effects are drawn from :class:`keras_seran.config.AcquisitionConfig`.
The rule that turns uniforms into effects (:func:`draw_effects`) is written once here; the
tf.data pipeline draws its uniforms statelessly and applies the same rule in TensorFlow
(``keras_seran.data.pipeline``; a test checks that the two agree).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from keras_seran.config import BLIND_KINDS, AcquisitionConfig

__all__ = [
    "UNIFORMS_PER_SAMPLE",
    "Effects",
    "draw_effects",
    "kspace_window",
    "partial_fourier_mask",
    "lr_spectrum",
    "acquire",
    "magnitude_with_noise",
]

#: uniforms one sample's effects are drawn from (see :func:`draw_effects`)
UNIFORMS_PER_SAMPLE = 9


@dataclass(frozen=True)
class Effects:
    """Scanner effects of N samples (arrays of shape (N,)).

    Attributes:
        apodization: k-space filter strength in [0, 1]: 0 none, 1 a full Hann window, 0.92 the
            Hamming window (see :func:`kspace_window`).
        pf_keep: fraction of the phase-encoding lines acquired, in (0.5, 1] (1: full k-space).
        pf_axis: the phase-encoding axis of partial Fourier, 0 (rows) or 1 (columns).
        pf_high: True: the positive frequencies are all acquired and the negative ones in part.
        sigma: noise level relative to the [0, 1] range (Rician in the magnitude image).
        kind: index into :data:`keras_seran.config.BLIND_KINDS` ("kspace", "bicubic", "blur").
    """

    apodization: np.ndarray
    pf_keep: np.ndarray
    pf_axis: np.ndarray
    pf_high: np.ndarray
    sigma: np.ndarray
    kind: np.ndarray


def draw_effects(u: np.ndarray, cfg: AcquisitionConfig, blind: bool = False) -> Effects:
    """The scanner effects of N samples from uniforms ``u`` (N, UNIFORMS_PER_SAMPLE) in [0, 1).

    ``u[:, 0] < apodization_prob``: filter of strength ``u[:, 1] * apodization``;
    ``u[:, 2] < partial_fourier_prob``: keep ``partial_fourier + u[:, 3] * (1 - partial_fourier)``
    of the lines along axis ``u[:, 4] >= 0.5``, the high side when ``u[:, 5] < 0.5``;
    ``u[:, 6] < noise_prob``: sigma ``lo + u[:, 7] * (hi - lo)`` of ``cfg.noise``;
    ``blind``: the kind by ``u[:, 8]`` against the cumulative ``cfg.blind_mix`` (else "kspace").
    """
    u = np.asarray(u, np.float64)
    if u.ndim != 2 or u.shape[1] != UNIFORMS_PER_SAMPLE:
        raise ValueError(f"expected uniforms of shape (N, {UNIFORMS_PER_SAMPLE}), got {u.shape}")
    lo, hi = cfg.noise
    apod = np.where(u[:, 0] < cfg.apodization_prob, u[:, 1] * cfg.apodization, 0.0)
    keep = np.where(
        u[:, 2] < cfg.partial_fourier_prob,
        cfg.partial_fourier + u[:, 3] * (1.0 - cfg.partial_fourier),
        1.0,
    )
    sigma = np.where(u[:, 6] < cfg.noise_prob, lo + u[:, 7] * (hi - lo), 0.0)
    if blind:
        edges = np.cumsum(cfg.blind_mix)[:-1] / np.sum(cfg.blind_mix)
        kind = np.searchsorted(edges, u[:, 8], side="right")
    else:
        kind = np.zeros(len(u), np.int64)
    return Effects(
        apodization=apod,
        pf_keep=keep,
        pf_axis=(u[:, 4] >= 0.5).astype(np.int64),
        pf_high=u[:, 5] < 0.5,
        sigma=sigma,
        kind=kind.astype(np.int64),
    )


def signed_frequencies(n: int) -> np.ndarray:
    """Signed frequency index of each bin of an n-point FFT (numpy order): 0, 1, ..., -1 (exact
    integers, as float64; ``fftfreq(n) * n`` rounds)."""
    i = np.arange(n)
    return np.where(i < (n + 1) // 2, i, i - n).astype(np.float64)


def kspace_window(n: int, strength: float) -> np.ndarray:
    """1D k-space filter of an n-point spectrum (numpy FFT order), a Hann/Hamming family:

    ``w(f) = (1 - a) + a * (1 + cos(pi * f / (n / 2))) / 2`` with a = ``strength``: 1 at the
    centre, ``1 - a`` at the edge of k-space; a = 1 is the Hann window, a = 0.92 Hamming's
    (0.54 + 0.46 cos). Symmetric in f, so a real image stays real.
    """
    f = signed_frequencies(n)
    a = float(strength)
    return (1.0 - a) + a * 0.5 * (1.0 + np.cos(np.pi * f / (n / 2.0)))


def partial_fourier_mask(n: int, keep: float, high: bool) -> np.ndarray:
    """1D 0/1 mask of partial Fourier: ``floor(keep * n + 0.5)`` of the n lines acquired, all of
    one half of k-space and the centre part of the other (numpy FFT order). ``high``: the
    positive frequencies are the acquired half."""
    m = int(np.floor(float(keep) * n + 0.5))
    c = signed_frequencies(n) + n // 2  # centred index 0 .. n-1
    return ((c >= n - m) if high else (c < m)).astype(np.float64)


def lr_spectrum(lr0: np.ndarray) -> np.ndarray:
    """The acquired (block-centred, truncated) k-space of an LR image ``kspace_downscale(HR)``."""
    return np.fft.fft2(np.asarray(lr0, np.float64))


def acquire(
    spectrum: np.ndarray,
    apodization: float = 0.0,
    pf_keep: float = 1.0,
    pf_axis: int = 0,
    pf_high: bool = True,
) -> np.ndarray:
    """The complex LR image (h, w) a scanner reconstructs from the truncated ``spectrum`` (h, w)
    (:func:`lr_spectrum`): the k-space filter on both axes, the partial Fourier mask on
    ``pf_axis``, zero-filled, inverse FFT. No noise, no magnitude yet."""
    h, w = spectrum.shape
    wins = [kspace_window(h, apodization), kspace_window(w, apodization)]
    if pf_keep < 1.0:
        n = (h, w)[int(pf_axis)]
        wins[int(pf_axis)] = wins[int(pf_axis)] * partial_fourier_mask(n, pf_keep, bool(pf_high))
    return np.fft.ifft2(spectrum * wins[0][:, None] * wins[1][None, :])


def magnitude_with_noise(
    z: np.ndarray, sigma: float, normals: np.ndarray | None = None
) -> np.ndarray:
    """``|z + sigma * (n1 + i n2)|`` as float32 (Rician for a real ``z``); ``normals`` (2, *z.shape)
    are the standard normals n1, n2 (needed when sigma > 0)."""
    z = np.asarray(z)
    re, im = np.real(z).astype(np.float64), np.imag(z).astype(np.float64)
    if sigma:
        if normals is None:
            raise ValueError("sigma > 0 needs the standard normals n1, n2")
        re = re + sigma * normals[0]
        im = im + sigma * normals[1]
    return np.sqrt(re * re + im * im).astype(np.float32)


def blind_kind_index(kind: str) -> int:
    """Index of a degradation in :data:`BLIND_KINDS`."""
    return BLIND_KINDS.index(kind)
