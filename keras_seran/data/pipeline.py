"""tf.data pipelines: MR files -> (LR, HR) batches for ``model.fit``.

Training (:func:`train_dataset`): each element draws, from stateless random numbers seeded by
``(config.seed, element index)``, a slice, an HR patch position (HR patch = ``patch_size * scale``
pixels a side) and one of the 8 flips/90-degree rotations; patches are batched and the LR batch is
made with two matrix products ``LR = Mh @ HR @ Mw.T`` (the matrices of
:func:`keras_seran.data.degrade.degradation_matrices`), so every LR patch equals, to float32
round-off, ``degrade(HR patch)`` computed by the numpy function. Optional Rician noise is then
added from a stateless normal. With ``config.contrast_augment`` > 0 each HR patch may first get
a random intensity lookup table (:mod:`keras_seran.data.intensity`), before its LR is made. The stream is infinite (use ``steps_per_epoch``), shuffled by
construction (every patch draws its slice at random), identical for an equal seed and
independent of the number of parallel calls.

With ``lr_mode="precomputed"`` (the default for the "kspace" and "blind" degradations, whose FFT
would wrap around the borders of a small patch) LR is computed once from each whole slice and
patches are cut at matching positions of LR and HR. With ``config.acquisition`` (scanner effects)
or the "blind" degradation, each element draws its own effects
(:func:`keras_seran.data.acquisition.draw_effects`, the same rule in TensorFlow): the whole
slice's truncated spectrum is filtered and masked, inverse-transformed, cut, given complex noise
of the drawn sigma and shown as magnitude; a "blind" element may instead take the bicubic or BD
LR of its HR patch.

Validation (:func:`validation_dataset`): whole slices, batch 1, LR ``(1, h, w, 1)`` and HR
``(1, h*s, w*s, 1)`` (HR cropped to a multiple of the scale), cached.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import tensorflow as tf

from keras_seran.config import BLIND_KINDS, AcquisitionConfig, DataConfig
from keras_seran.data.acquisition import UNIFORMS_PER_SAMPLE
from keras_seran.data.degrade import (
    crop_to_multiple,
    degradation_matrices,
    degrade,
    kspace_downscale,
    resolve_lr_mode,
)
from keras_seran.data.slices import (
    SliceSet,
    load_slice_sets,
    representative_slices,
    validation_pairs,
    validation_pairs_from,
)

LRMode = Literal["auto", "on_the_fly", "precomputed"]

__all__ = [
    "make_datasets",
    "train_dataset",
    "validation_dataset",
    "make_representative_slices",
    "validation_pairs",
    "tf_degrade_batch",
    "tf_rician_noise",
    "tf_random_contrast",
    "tf_draw_effects",
    "tf_acquire",
]


def _stack_padded(arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(N, Hmax, Wmax) zero-padded stack and the (N, 2) valid sizes of a list of 2D arrays."""
    sizes = np.array([a.shape for a in arrays], dtype=np.int32)
    hmax, wmax = sizes.max(axis=0)
    out = np.zeros((len(arrays), int(hmax), int(wmax)), dtype=np.float32)
    for i, a in enumerate(arrays):
        out[i, : a.shape[0], : a.shape[1]] = a
    return out, sizes


def tf_degrade_batch(hr: tf.Tensor, scale: int, kind: str = "bicubic") -> tf.Tensor:
    """LR of a batch of square HR patches (B, P*s, P*s, 1) -> (B, P, P, 1), float32, in TensorFlow.

    Same result as :func:`keras_seran.data.degrade.degrade` (no noise) on each patch: the separable
    degradation matrices applied as two matrix products (``tf.einsum``), then the magnitude for
    "kspace". The static patch size must be known.
    """
    hp, wp = int(hr.shape[1]), int(hr.shape[2])
    mh, mw = degradation_matrices(hp, wp, scale, kind)
    mh_t = tf.constant(mh, tf.float32)
    mw_t = tf.constant(mw, tf.float32)
    x = hr[..., 0]
    y = tf.einsum("ij,bjk->bik", mh_t, x)
    y = tf.einsum("bik,lk->bil", y, mw_t)
    if kind == "kspace":  # the magnitude, as a scanner shows it
        y = tf.abs(y)
    return y[..., None]


def tf_rician_noise(x: tf.Tensor, sigma: float, seed: tf.Tensor) -> tf.Tensor:
    """``sqrt((x + n1)^2 + n2^2)`` with n1, n2 ~ N(0, sigma^2) from a stateless seed (shape [2])."""
    if not sigma:
        return x
    n = tf.random.stateless_normal(tf.concat([[2], tf.shape(x)], 0), seed=seed, stddev=sigma)
    return tf.sqrt(tf.square(x + n[0]) + tf.square(n[1]))


def tf_random_contrast(hr: tf.Tensor, prob: float, knots: int, seed: tf.Tensor) -> tf.Tensor:
    """Each image of ``hr`` (B, H, W, 1) remapped with probability ``prob`` through a random
    piecewise-linear table of ``knots`` knots: the rule of
    :func:`keras_seran.data.intensity.contrast_tables` / ``apply_contrast_tables``, in TensorFlow,
    from uniforms drawn with the stateless ``seed`` (shape [2])."""
    if not prob:
        return hr
    k = int(knots)
    b = tf.shape(hr)[0]
    u = tf.random.stateless_uniform(tf.stack([b, k]), seed=seed)
    values = tf.concat([tf.zeros([b, 1]), u[:, 1:]], axis=1)
    values = values / tf.maximum(tf.reduce_max(values, axis=1, keepdims=True), 1e-3)
    identity = tf.broadcast_to(tf.linspace(0.0, 1.0, k), tf.stack([b, k]))
    tables = tf.where(u[:, :1] < prob, values, identity)
    flat = tf.clip_by_value(tf.reshape(hr, tf.stack([b, -1])), 0.0, 1.0) * float(k - 1)
    idx = tf.minimum(tf.floor(flat), float(k - 2))
    frac = flat - idx
    idx = tf.cast(idx, tf.int32)
    lo = tf.gather(tables, idx, batch_dims=1)
    hi = tf.gather(tables, idx + 1, batch_dims=1)
    return tf.reshape(lo * (1.0 - frac) + hi * frac, tf.shape(hr))


def tf_draw_effects(u: tf.Tensor, cfg: AcquisitionConfig, blind: bool = False) -> dict:
    """The rule of :func:`keras_seran.data.acquisition.draw_effects` for one sample's uniforms
    ``u`` (UNIFORMS_PER_SAMPLE,), in TensorFlow: a dict of scalar tensors (apodization,
    pf_keep, pf_axis, pf_high, sigma, kind)."""
    lo, hi = cfg.noise
    zero = tf.constant(0.0)
    if blind:
        mix = np.asarray(cfg.blind_mix, np.float64)
        edges = tf.constant((np.cumsum(mix)[:-1] / mix.sum()).astype(np.float32))
        kind = tf.reduce_sum(tf.cast(u[8] >= edges, tf.int32))
    else:
        kind = tf.constant(0, tf.int32)
    return {
        "apodization": tf.where(u[0] < cfg.apodization_prob, u[1] * cfg.apodization, zero),
        "pf_keep": tf.where(
            u[2] < cfg.partial_fourier_prob,
            cfg.partial_fourier + u[3] * (1.0 - cfg.partial_fourier),
            1.0,
        ),
        "pf_axis": tf.cast(u[4] >= 0.5, tf.int32),
        "pf_high": u[5] < 0.5,
        "sigma": tf.where(u[6] < cfg.noise_prob, lo + u[7] * (hi - lo), zero),
        "kind": kind,
    }


def _signed_frequencies(n: tf.Tensor) -> tf.Tensor:
    i = tf.range(n)
    return tf.cast(tf.where(i < (n + 1) // 2, i, i - n), tf.float32)


def _axis_filter(
    n: tf.Tensor, apodization: tf.Tensor, pf_keep: tf.Tensor, pf_high: tf.Tensor, partial: tf.Tensor
) -> tf.Tensor:
    """k-space filter along one axis (:func:`~keras_seran.data.acquisition.kspace_window`), times
    the partial Fourier mask when ``partial``."""
    f = _signed_frequencies(n)
    nf = tf.cast(n, tf.float32)
    w = (1.0 - apodization) + apodization * 0.5 * (1.0 + tf.cos(np.pi * f / (nf / 2.0)))
    m = tf.floor(pf_keep * nf + 0.5)
    c = f + tf.cast(n // 2, tf.float32)
    mask = tf.cast(tf.where(pf_high, c >= nf - m, c < m), tf.float32)
    return tf.where(tf.logical_and(partial, pf_keep < 1.0), w * mask, w)


def tf_acquire(spectrum: tf.Tensor, effects: dict) -> tf.Tensor:
    """:func:`keras_seran.data.acquisition.acquire` in TensorFlow: the complex64 LR image (h, w)
    from the truncated ``spectrum`` (h, w) complex64 and one sample's ``effects``."""
    h, w = tf.shape(spectrum)[0], tf.shape(spectrum)[1]
    a, keep, high = effects["apodization"], effects["pf_keep"], effects["pf_high"]
    wh = _axis_filter(h, a, keep, high, tf.equal(effects["pf_axis"], 0))
    ww = _axis_filter(w, a, keep, high, tf.equal(effects["pf_axis"], 1))
    return tf.signal.ifft2d(spectrum * tf.cast(wh[:, None] * ww[None, :], tf.complex64))


def _magnitude_with_noise(z: tf.Tensor, sigma: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """``|z + sigma (n1 + i n2)|`` with n1, n2 standard normals from a stateless ``seed``."""
    n = tf.random.stateless_normal(tf.concat([[2], tf.shape(z)], 0), seed=seed)
    return tf.sqrt(
        tf.square(tf.math.real(z) + sigma * n[0]) + tf.square(tf.math.imag(z) + sigma * n[1])
    )


def _augment(x: tf.Tensor, flip: tf.Tensor, k: tf.Tensor) -> tf.Tensor:
    """One of the 8 dihedral transforms of an (H, W, C) patch: optional left-right flip, then k*90°."""
    x = tf.cond(flip, lambda: tf.reverse(x, axis=[1]), lambda: x)
    return tf.image.rot90(x, k)


def train_dataset(
    train: SliceSet,
    scale: int,
    config: DataConfig | None = None,
    lr_mode: LRMode = "auto",
    start_batch: int = 0,
) -> tf.data.Dataset:
    """Infinite dataset of (lr, hr) float32 batches (B, p, p, 1), (B, p*s, p*s, 1).

    ``train`` slices must be at least ``p*s`` pixels a side (see :func:`load_slice_sets`).
    B = ``config.batch_size``, p = ``config.patch_size``; ``config.augment`` turns the random
    flips/rotations on; ``config.noise_sigma`` adds Rician noise to LR; ``config.seed`` fixes
    everything.
    """
    config = config or DataConfig()
    s = int(scale)
    p = int(config.patch_size)
    hp = p * s
    b = int(config.batch_size)
    kind = config.degradation
    mode = resolve_lr_mode(lr_mode, kind, config.contrast_augment)
    blind = kind == "blind"
    # scanner effects drawn per element (a "blind" run without them draws only the kind)
    per_sample = blind or config.acquisition is not None
    acq = config.acquisition or AcquisitionConfig(
        apodization_prob=0.0, partial_fourier_prob=0.0, noise_prob=0.0
    )
    if per_sample and mode != "precomputed":
        raise ValueError(
            f"the {kind!r} degradation with scanner effects filters whole-slice "
            "k-space: it needs lr_mode='precomputed' (or 'auto')"
        )
    if len(train) == 0:
        raise ValueError("train SliceSet is empty")
    hr_list = (
        [crop_to_multiple(a, s) for a in train.slices]
        if mode == "precomputed"
        else list(train.slices)
    )
    too_small = [a.shape for a in hr_list if a.shape[0] < hp or a.shape[1] < hp]
    if too_small:
        raise ValueError(
            f"{len(too_small)} training slice(s) smaller than the HR patch {hp}; "
            "filter them first (SliceSet.filter_min_size)"
        )
    hr_stack, sizes = _stack_padded(hr_list)
    n = len(hr_list)
    hr_t = tf.constant(hr_stack)
    sizes_t = tf.constant(sizes)
    if mode == "precomputed":
        # per-sample effects start from the truncated (signed) image; else the finished LR
        lrs = (
            [kspace_downscale(a, s) for a in hr_list]
            if per_sample
            else [degrade(a, s, kind) for a in hr_list]
        )
        lr_stack, lr_sizes = _stack_padded(lrs)
        lr_t = tf.constant(lr_stack)
        lr_sizes_t = tf.constant(lr_sizes)
        grid = tf.constant(lr_sizes - p + 1)  # positions on the LR grid
        unit = s  # HR offset = LR offset * s
    else:
        lr_t = None
        grid = sizes_t - hp + 1  # any HR pixel offset
        unit = 1
    if blind:
        patch_mats = [
            tuple(tf.constant(m, tf.float32) for m in degradation_matrices(hp, hp, s, k))
            for k in BLIND_KINDS[1:]
        ]
    seed = int(config.seed)
    augment = bool(config.augment)

    def acquired_patch(k, y, x, hr, u, i):
        """LR patch (p, p, 1) of element ``i`` with its drawn scanner effects."""
        fx = tf_draw_effects(u, acq, blind)
        size = lr_sizes_t[k]
        spectrum = tf.signal.fft2d(tf.cast(lr_t[k, : size[0], : size[1]], tf.complex64))
        z = tf_acquire(spectrum, fx)[y : y + p, x : x + p]
        if blind:
            real = [tf.einsum("ij,jk,lk->il", mh, hr[..., 0], mw) for mh, mw in patch_mats]
            z = tf.switch_case(
                fx["kind"],
                [lambda: z] + [(lambda r=r: tf.complex(r, tf.zeros_like(r))) for r in real],
            )
        lr = _magnitude_with_noise(z, fx["sigma"], tf.stack([tf.constant(seed + 1, tf.int64), i]))
        return tf.ensure_shape(lr[..., None], [p, p, 1])

    def one_patch(i: tf.Tensor):
        # 5 uniforms place and turn the patch; per-sample effects draw theirs after them
        u = tf.random.stateless_uniform(
            [5 + UNIFORMS_PER_SAMPLE * per_sample], seed=tf.stack([tf.constant(seed, tf.int64), i])
        )
        k = tf.minimum(tf.cast(u[0] * n, tf.int32), n - 1)
        g = grid[k]
        y = tf.minimum(tf.cast(u[1] * tf.cast(g[0], tf.float32), tf.int32), g[0] - 1)
        x = tf.minimum(tf.cast(u[2] * tf.cast(g[1], tf.float32), tf.int32), g[1] - 1)
        hr = hr_t[k, y * unit : y * unit + hp, x * unit : x * unit + hp][..., None]
        hr = tf.ensure_shape(hr, [hp, hp, 1])
        flip = u[3] < 0.5
        rot = tf.cast(u[4] * 4.0, tf.int32) % 4
        if mode == "precomputed":
            if per_sample:
                lr = acquired_patch(k, y, x, hr, u[5:], i)
            else:
                lr = tf.ensure_shape(lr_t[k, y : y + p, x : x + p][..., None], [p, p, 1])
            if augment:
                hr, lr = _augment(hr, flip, rot), _augment(lr, flip, rot)
            return lr, hr
        if augment:
            hr = _augment(hr, flip, rot)
        return hr

    def degrade_batch(batch, step):
        if mode == "precomputed":
            lr, hr = batch
        else:
            hr = tf_random_contrast(
                batch,
                float(config.contrast_augment),
                int(config.contrast_knots),
                tf.stack([tf.constant(seed + 2, tf.int64), step]),
            )
            lr = tf_degrade_batch(hr, s, kind)
        if config.noise_sigma:
            lr = tf_rician_noise(
                lr, float(config.noise_sigma), tf.stack([tf.constant(seed + 1, tf.int64), step])
            )
        return tf.ensure_shape(lr, [b, p, p, 1]), tf.ensure_shape(hr, [b, hp, hp, 1])

    # Element i depends only on (seed, i): starting the counters at ``start_batch`` resumes the
    # exact stream a run interrupted after that many batches would have seen next.
    ds = tf.data.Dataset.counter(start=int(start_batch) * b, dtype=tf.int64)
    ds = ds.map(one_patch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(b, drop_remainder=True)
    ds = tf.data.Dataset.zip((ds, tf.data.Dataset.counter(start=int(start_batch), dtype=tf.int64)))
    ds = ds.map(degrade_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.with_options(_options()).prefetch(tf.data.AUTOTUNE)


def _options() -> tf.data.Options:
    """Deterministic order, and the DATA auto-shard policy for tf.distribute.

    These datasets are generated (a counter, tensors in memory), with no files to shard: AUTO
    would try FILE, warn, and fall back to DATA anyway. DATA rather than OFF: every worker then
    draws the same global batches a one-device run draws and keeps its share of each, so the
    loss curve and a resumed stream (``start_batch``) do not depend on the number of workers,
    and no per-worker seed is needed (with OFF every worker would draw the same batches unless
    seeded apart, and the stream would change with the cluster size). The price, each worker
    drawing every patch of the global batch, is small next to the network's step.
    """
    options = tf.data.Options()
    options.deterministic = True
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return options


def validation_dataset(
    val: SliceSet, scale: int, config: DataConfig | None = None, copies: int = 1
) -> tf.data.Dataset:
    """Finite, cached dataset of whole validation slices, batch 1: (1, h, w, 1), (1, h*s, w*s, 1).

    LR is the numpy degradation of the whole (cropped) HR slice, with seeded noise when
    ``config.noise_sigma`` > 0 (the same pairs as :func:`validation_pairs`). ``copies`` > 1
    repeats each slice into a batch of that many (one per replica of a distributed run: every
    replica gets a slice and the mean metrics stay those of batch 1).
    """
    config = config or DataConfig()
    lrs, hrs = validation_pairs_from(val, scale, config)
    if not lrs:
        raise ValueError("validation SliceSet is empty")

    def flat(arrs):
        shapes = np.array([a.shape for a in arrs], dtype=np.int64)
        sizes = shapes.prod(axis=1)
        offs = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        return (
            tf.constant(np.concatenate([a.ravel() for a in arrs]).astype(np.float32)),
            tf.constant(offs),
            tf.constant(sizes),
            tf.constant(shapes),
        )

    lr_flat, lr_off, lr_size, lr_shape = flat(lrs)
    hr_flat, hr_off, hr_size, hr_shape = flat(hrs)

    def get(i):
        lr = tf.reshape(
            lr_flat[lr_off[i] : lr_off[i] + lr_size[i]], tf.concat([lr_shape[i], [1]], 0)
        )
        hr = tf.reshape(
            hr_flat[hr_off[i] : hr_off[i] + hr_size[i]], tf.concat([hr_shape[i], [1]], 0)
        )
        return lr, hr

    ds = tf.data.Dataset.range(len(lrs)).map(get).batch(1)
    if copies > 1:
        ds = ds.map(lambda lr, hr: (tf.repeat(lr, copies, axis=0), tf.repeat(hr, copies, axis=0)))
    return ds.cache().with_options(_options()).prefetch(tf.data.AUTOTUNE)


def make_datasets(
    sources: Any,
    scale: int,
    config: DataConfig | None = None,
    lr_mode: LRMode = "auto",
    start_batch: int = 0,
    val_copies: int = 1,
) -> tuple[tf.data.Dataset, tf.data.Dataset | None]:
    """(train_ds, val_ds) from MR files or arrays.

    ``sources``: folder (IXI-style NIfTI; ``config.contrast`` picks T1/T2/PD), glob, file, 2D/3D
    numpy array, or a list of these. Volumes are normalised per volume, sliced along
    ``config.slice_axis`` (near-empty slices skipped) and split by subject (one subject: by slab
    with ``config.val_gap``). ``train_ds``: infinite (lr, hr) batches (B, p, p, 1),
    (B, p*s, p*s, 1); ``val_ds``: whole slices (1, h, w, 1), (1, h*s, w*s, 1), or None when
    ``config.val_fraction == 0`` or nothing could be held out; ``val_copies``: see
    :func:`validation_dataset`.
    """
    config = config or DataConfig()
    train, val = load_slice_sets(sources, scale, config)
    train_ds = train_dataset(train, scale, config, lr_mode, start_batch)
    val_ds = validation_dataset(val, scale, config, val_copies) if len(val) else None
    return train_ds, val_ds


def make_representative_slices(
    sources: Any, n: int = 8, scale: int = 2, config: DataConfig | None = None
) -> list[np.ndarray]:
    """``n`` normalised LR slices (1, h, w, 1) float32 for int8 calibration of exports.

    Use as ``converter.representative_dataset = lambda: ([x] for x in slices)``.
    """
    return representative_slices(sources, n, scale, config)
