"""Backend-agnostic training data: a ``keras.utils.PyDataset`` of (LR, HR) patches in numpy.

For the JAX and PyTorch backends (no TensorFlow there): this module and everything it imports
(io, normalize, degrade, slices) use numpy only. The pairs are the same kind as the tf.data
pipeline's: HR patches of ``patch_size * scale`` pixels, random flips/90-degree rotations, LR =
:func:`keras_seran.data.degrade.degrade` of the HR patch (or cut from the precomputed LR of the
whole slice for ``lr_mode="precomputed"``, the default for "kspace"), optional contrast
remapping of HR before LR is made (:mod:`keras_seran.data.intensity`), optional Rician noise.
Batch ``idx`` of epoch ``e`` is drawn from ``numpy.random.default_rng([seed, e, idx])``: the same
seed gives the same batches, whatever the number of workers.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from keras_seran.config import DataConfig
from keras_seran.data.degrade import add_rician_noise, crop_to_multiple, degrade, resolve_lr_mode
from keras_seran.data.intensity import random_contrast
from keras_seran.data.slices import SliceSet, load_slice_sets, validation_pairs_from

__all__ = ["PatchPyDataset", "SlicePairPyDataset", "make_pydatasets"]


class PatchPyDataset(keras.utils.PyDataset):
    """Random (lr, hr) patch batches: float32 (B, p, p, 1), (B, p*s, p*s, 1).

    Args:
        sources: anything :func:`load_slice_sets` takes (folder, glob, file, array, list), or a
            training :class:`SliceSet` already loaded.
        scale: super-resolution factor.
        config: DataConfig (patch_size, batch_size, degradation, noise_sigma, augment, seed, ...).
        steps_per_epoch: batches per epoch (``len(self)``).
        start_epoch: the epoch the stream starts at (a resumed run's epoch).
        lr_mode: "auto" (precomputed for "kspace", else on the fly), "on_the_fly", "precomputed".
        **kwargs: ``workers``, ``use_multiprocessing``, ``max_queue_size`` of PyDataset.
    """

    def __init__(self, sources: Any, scale: int, config: DataConfig | None = None,
                 steps_per_epoch: int = 100, lr_mode: str = "auto", start_epoch: int = 0,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.config = config or DataConfig()
        self.scale = int(scale)
        self.steps_per_epoch = int(steps_per_epoch)
        if self.steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
        train = sources if isinstance(sources, SliceSet) else load_slice_sets(sources, scale, self.config)[0]
        kind = self.config.degradation
        self.lr_mode = resolve_lr_mode(lr_mode, kind, self.config.contrast_augment)
        s = self.scale
        p = self.config.patch_size
        if self.lr_mode == "precomputed":
            self._hr = [np.ascontiguousarray(crop_to_multiple(a, s)) for a in train.slices]
            self._lr = [degrade(a, s, kind) for a in self._hr]
        else:
            self._hr = list(train.slices)
            self._lr = None
        small = [a.shape for a in self._hr if min(a.shape) < p * s]
        if small or not self._hr:
            raise ValueError(f"{len(small)} of {len(self._hr)} training slice(s) smaller than the HR "
                             f"patch {p * s}; filter them first (SliceSet.filter_min_size)")
        self.epoch = int(start_epoch)   # a resumed run continues the stream at its epoch

    def __len__(self) -> int:
        return self.steps_per_epoch

    def __getitem__(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        cfg, s = self.config, self.scale
        p = cfg.patch_size
        hp = p * s
        rng = np.random.default_rng([cfg.seed, self.epoch, int(idx)])
        hrs = np.empty((cfg.batch_size, hp, hp), np.float32)
        lrs = np.empty((cfg.batch_size, p, p), np.float32) if self._lr is not None else None
        for j in range(cfg.batch_size):
            k = int(rng.integers(len(self._hr)))
            flip, rot = bool(rng.integers(2)), int(rng.integers(4))
            src = self._hr[k]
            if lrs is not None:
                lr_src = self._lr[k]
                y = int(rng.integers(lr_src.shape[0] - p + 1))
                x = int(rng.integers(lr_src.shape[1] - p + 1))
                hr = src[y * s: y * s + hp, x * s: x * s + hp]
                lr = lr_src[y: y + p, x: x + p]
                lrs[j] = self._augment(lr, flip, rot) if cfg.augment else lr
            else:
                y = int(rng.integers(src.shape[0] - hp + 1))
                x = int(rng.integers(src.shape[1] - hp + 1))
                hr = src[y: y + hp, x: x + hp]
            hrs[j] = self._augment(hr, flip, rot) if cfg.augment else hr
        if lrs is None:
            if cfg.contrast_augment:
                hrs = random_contrast(hrs, cfg.contrast_augment, cfg.contrast_knots, rng)
            lrs = degrade(hrs, s, cfg.degradation)
        if cfg.noise_sigma:
            lrs = add_rician_noise(lrs, cfg.noise_sigma, rng)
        return lrs[..., None].astype(np.float32), hrs[..., None]

    @staticmethod
    def _augment(a: np.ndarray, flip: bool, rot: int) -> np.ndarray:
        """One of the 8 dihedral transforms: optional left-right flip, then ``rot`` x 90 degrees."""
        if flip:
            a = a[:, ::-1]
        return np.rot90(a, rot)

    def on_epoch_end(self) -> None:
        self.epoch += 1


class SlicePairPyDataset(keras.utils.PyDataset):
    """Whole-slice (lr, hr) pairs, batch 1: (1, h, w, 1), (1, h*s, w*s, 1), e.g. the lists of
    :func:`validation_pairs` for validation under any backend."""

    def __init__(self, lr_list: list[np.ndarray], hr_list: list[np.ndarray], **kwargs: Any):
        super().__init__(**kwargs)
        if len(lr_list) != len(hr_list) or not lr_list:
            raise ValueError(f"need equally long, non-empty lists, got {len(lr_list)} and {len(hr_list)}")
        self.lr_list, self.hr_list = lr_list, hr_list

    def __len__(self) -> int:
        return len(self.lr_list)

    def __getitem__(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        return (np.asarray(self.lr_list[idx], np.float32)[None, ..., None],
                np.asarray(self.hr_list[idx], np.float32)[None, ..., None])


def make_pydatasets(sources: Any, scale: int, config: DataConfig | None = None,
                    steps_per_epoch: int = 100, start_epoch: int = 0, workers: int | None = None
                    ) -> tuple[PatchPyDataset, SlicePairPyDataset | None]:
    """(train, val) PyDatasets from MR files or arrays: the backend-agnostic twin of
    :func:`keras_seran.data.make_datasets` (same slices, split and validation pairs; the random
    patch stream differs). ``train``: ``steps_per_epoch`` batches (B, p, p, 1), (B, p*s, p*s, 1)
    per epoch, made by ``workers`` threads (default: up to 4); ``val``: whole slices, batch 1, or
    None when nothing is held out."""
    import os

    config = config or DataConfig()
    train, val = load_slice_sets(sources, scale, config)
    workers = workers or max(1, min(4, os.cpu_count() or 1))
    train_ds = PatchPyDataset(train, scale, config, steps_per_epoch, start_epoch=start_epoch,
                              workers=workers)
    val_ds = SlicePairPyDataset(*validation_pairs_from(val, scale, config)) if len(val) else None
    return train_ds, val_ds
