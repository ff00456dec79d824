"""Random contrast remapping of HR patches (numpy; no TensorFlow): contrast augmentation.

Bundled weights and most user runs train on one contrast (our data: one T1 volume), yet users
apply the network to PD, T2 or FLAIR slices, where the same anatomy has other intensities (CSF
dark in T1, bright in T2). A random *intensity lookup table* applied to the HR patch **before**
its LR is made keeps every training pair exact (LR = degrade(remapped HR)) while the network sees
tissue intensities in every order, the idea of SynthSR/SynthSeg-style contrast randomisation.

The table is piecewise linear on ``knots`` equally spaced points of [0, 1]:
``values[0] = 0`` (background stays dark, as in every MR contrast), the other values uniform in
[0, 1], then divided by their maximum so the brightest tissue is 1 again (as after the
per-volume percentile normalisation). With probability ``1 - prob`` a patch keeps its intensities
(identity table). Intensities outside [0, 1] are clipped first.

:func:`contrast_tables` turns uniforms into tables and :func:`apply_contrast_tables` applies them;
the tf.data pipeline draws its uniforms statelessly and applies the same rule in TensorFlow
(``keras_seran.data.pipeline.tf_random_contrast``; a test checks they agree).
"""

from __future__ import annotations

import numpy as np

from keras_seran.config import check_contrast_args

__all__ = ["contrast_tables", "apply_contrast_tables", "random_contrast"]


def contrast_tables(u: np.ndarray, prob: float) -> np.ndarray:
    """Lookup tables (N, K) from uniforms ``u`` (N, K) in [0, 1).

    ``u[:, 0] < prob`` decides whether patch i is remapped; ``u[:, 1:]`` are its K - 1 free knot
    values. Rows not remapped are the identity ``linspace(0, 1, K)``.
    """
    u = np.asarray(u, np.float32)
    n, k = u.shape
    values = np.concatenate([np.zeros((n, 1), np.float32), u[:, 1:]], axis=1)
    values = values / np.maximum(values.max(axis=1, keepdims=True), np.float32(1e-3))
    identity = np.broadcast_to(np.linspace(0.0, 1.0, k, dtype=np.float32), (n, k))
    return np.where(u[:, :1] < prob, values, identity).astype(np.float32)


def apply_contrast_tables(x: np.ndarray, tables: np.ndarray) -> np.ndarray:
    """Remap a batch ``x`` (N, ...) through its tables (N, K), linear between knots; float32."""
    x = np.asarray(x, np.float32)
    n, k = tables.shape
    flat = np.clip(x.reshape(n, -1), 0.0, 1.0) * np.float32(k - 1)
    idx = np.minimum(np.floor(flat), k - 2).astype(np.int64)
    frac = flat - idx
    lo = np.take_along_axis(tables, idx, axis=1)
    hi = np.take_along_axis(tables, idx + 1, axis=1)
    return (lo * (1 - frac) + hi * frac).reshape(x.shape).astype(np.float32)


def random_contrast(x: np.ndarray, prob: float, knots: int, rng: np.random.Generator) -> np.ndarray:
    """Remap each image of a batch ``x`` (N, ...) in [0, 1] with probability ``prob``."""
    check_contrast_args(prob, knots)
    if not prob:
        return np.asarray(x, np.float32)
    u = rng.random((x.shape[0], int(knots)), dtype=np.float32)
    return apply_contrast_tables(x, contrast_tables(u, prob))
