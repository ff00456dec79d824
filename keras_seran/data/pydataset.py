"""Backend-agnostic training data: a ``keras.utils.PyDataset`` of (LR, HR) patches in numpy.

For the JAX and PyTorch backends (no TensorFlow there): this module and everything it imports
(io, normalize, degrade, slices) use numpy only. The pairs are the same kind as the tf.data
pipeline's: HR patches of ``patch_size * scale`` pixels, random flips/90-degree rotations, LR =
:func:`keras_seran.data.degrade.degrade` of the HR patch (or cut from the precomputed LR of the
whole slice for ``lr_mode="precomputed"``, the default for "kspace" and "blind"), optional
contrast remapping of HR before LR is made (:mod:`keras_seran.data.intensity`), optional Rician
noise; with scanner effects (``config.acquisition``) or "blind", each sample draws its own
(:func:`keras_seran.data.acquisition.draw_effects`) and its LR is made from the whole slice's
k-space as in the tf.data pipeline.
The patch stream is a pure function of the seed and the global batch number ``n``: batch ``n`` is
drawn from ``numpy.random.default_rng([seed, e, i])`` with ``e, i = divmod(n, steps_per_epoch)``.
The training dataset is infinite (``num_batches`` is None, so ``fit`` needs ``steps_per_epoch``)
and Keras iterates it in one thread, in order; its ``workers`` threads prefetch the next batches
inside the dataset. So fit consumes batches 0, 1, 2, ... whatever the number of workers, and
Keras's peek at a first batch (JAX/PyTorch, to build the model) and its epoch callbacks cannot
shift the stream, as they did when the epoch was a counter bumped in ``on_epoch_end`` and
Keras's own enqueuer prefetched batches across that bump.
"""

from __future__ import annotations

import threading
import weakref
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from typing import Any

import keras
import numpy as np

from keras_seran.config import BLIND_KINDS, AcquisitionConfig, DataConfig
from keras_seran.data import acquisition
from keras_seran.data.degrade import (
    add_rician_noise,
    crop_to_multiple,
    degrade,
    kspace_downscale,
    resolve_lr_mode,
)
from keras_seran.data.intensity import random_contrast
from keras_seran.data.slices import SliceSet, load_slice_sets, validation_pairs_from

__all__ = ["PatchPyDataset", "SlicePairPyDataset", "make_pydatasets"]


class PatchPyDataset(keras.utils.PyDataset):
    """Random (lr, hr) patch batches: float32 (B, p, p, 1), (B, p*s, p*s, 1), an endless stream.

    ``ds[k]`` is global batch ``start_epoch * steps_per_epoch + k`` (see the module docstring;
    ``ds`` serves ``fit`` in order; for random access use :meth:`batch`);
    ``len(ds)`` is ``steps_per_epoch``, the ``steps_per_epoch`` to give ``fit`` (without it, a
    clear error once the first epoch would have ended); ``for batch in ds`` is one epoch. One
    dataset serves one ``fit``: a second ``fit`` on it starts the stream at ``start_epoch``
    again, so continue with a new dataset whose ``start_epoch`` is the epoch reached (as
    :func:`keras_seran.training.train` does on ``--resume``).

    Args:
        sources: anything :func:`load_slice_sets` takes (folder, glob, file, array, list), or a
            training :class:`SliceSet` already loaded.
        scale: super-resolution factor.
        config: DataConfig (patch_size, batch_size, degradation, noise_sigma, augment, seed, ...).
        steps_per_epoch: batches per epoch (``len(self)``).
        start_epoch: the epoch the stream starts at (a resumed run's epoch).
        lr_mode: "auto" (precomputed for "kspace", else on the fly), "on_the_fly", "precomputed".
        workers: threads that prefetch the next batches, in order (1: none).
        max_queue_size: how many batches they prefetch ahead.
        process_index, process_count: for JAX multi-process training, each batch is this
            process's share, rows ``[i * B/P, (i + 1) * B/P)`` of the global batch (B =
            ``config.batch_size`` must split evenly): the processes together train on the
            stream of a one-process run.
    """

    def __init__(
        self,
        sources: Any,
        scale: int,
        config: DataConfig | None = None,
        steps_per_epoch: int = 100,
        lr_mode: str = "auto",
        start_epoch: int = 0,
        workers: int = 1,
        max_queue_size: int = 10,
        use_multiprocessing: bool = False,
        process_index: int = 0,
        process_count: int = 1,
    ):
        if use_multiprocessing:
            raise ValueError(
                "PatchPyDataset prefetches in threads; use_multiprocessing is not "
                "supported (its batch order would depend on the workers)"
            )
        # Keras sees one worker: it then iterates in order, and the prefetch is ours
        super().__init__(workers=1, max_queue_size=max_queue_size)
        self.config = config or DataConfig()
        self.scale = int(scale)
        self.steps_per_epoch = int(steps_per_epoch)
        if self.steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
        if int(start_epoch) < 0:
            raise ValueError(f"start_epoch must be >= 0, got {start_epoch}")
        if int(workers) < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.threads = int(workers)
        if not 0 <= int(process_index) < int(process_count):
            raise ValueError(f"process_index must be in [0, {process_count}), got {process_index}")
        if self.config.batch_size % int(process_count):
            raise ValueError(
                f"batch_size {self.config.batch_size} does not split over {process_count} processes"
            )
        share = self.config.batch_size // int(process_count)
        self._rows = slice(int(process_index) * share, (int(process_index) + 1) * share)
        self.prefetch = max(self.threads, int(max_queue_size))
        train = (
            sources
            if isinstance(sources, SliceSet)
            else load_slice_sets(sources, scale, self.config)[0]
        )
        kind = self.config.degradation
        self.lr_mode = resolve_lr_mode(lr_mode, kind, self.config.contrast_augment)
        s = self.scale
        p = self.config.patch_size
        self._blind = kind == "blind"
        self._per_sample = self._blind or self.config.acquisition is not None
        self._acq = self.config.acquisition or AcquisitionConfig(
            apodization_prob=0.0, partial_fourier_prob=0.0, noise_prob=0.0
        )
        if self._per_sample and self.lr_mode != "precomputed":
            raise ValueError(
                f"the {kind!r} degradation with scanner effects filters whole-slice "
                "k-space: it needs lr_mode='precomputed' (or 'auto')"
            )
        if self.lr_mode == "precomputed":
            self._hr = [np.ascontiguousarray(crop_to_multiple(a, s)) for a in train.slices]
            # per-sample effects start from the truncated (signed) image; else the finished LR
            self._lr = [
                kspace_downscale(a, s) if self._per_sample else degrade(a, s, kind)
                for a in self._hr
            ]
        else:
            self._hr = list(train.slices)
            self._lr = None
        small = [a.shape for a in self._hr if min(a.shape) < p * s]
        if small or not self._hr:
            raise ValueError(
                f"{len(small)} of {len(self._hr)} training slice(s) smaller than the HR "
                f"patch {p * s}; filter them first (SliceSet.filter_min_size)"
            )
        self.start_epoch = int(start_epoch)  # a resumed run continues the stream at its epoch
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._ahead: dict[int, Future] = {}
        self._epochs_ended = 0

    def __len__(self) -> int:
        return self.steps_per_epoch

    def __iter__(self):
        """One epoch: ``len(self)`` batches (the stream itself is endless)."""
        for i in range(len(self)):
            yield self[i]

    def on_epoch_end(self) -> None:
        """Keras ends an epoch: stop the prefetch threads (made again on the next request), so
        no thread outlives a fit; the stream itself does not depend on this call."""
        with self._lock:
            self._epochs_ended += 1
            self._stop_prefetch()

    def _stop_prefetch(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._finalizer.detach()
            self._pool = None
        self._ahead.clear()

    def _check_bounded(self, idx: int) -> None:
        """ValueError when ``fit``/``evaluate`` reads on with no end of epoch in sight: without
        ``steps_per_epoch`` an endless dataset's first epoch would never end."""
        slack = max(self.steps_per_epoch, 64)  # tf.data's prefetch may read a little ahead
        if idx >= (self._epochs_ended + 1) * self.steps_per_epoch + slack:
            with self._lock:
                self._stop_prefetch()
            raise ValueError(
                f"PatchPyDataset is an endless stream of patches; give fit "
                f"steps_per_epoch=len(ds) ({self.steps_per_epoch}) and evaluate "
                "steps=len(ds), or iterate it with `for batch in ds` (one epoch)"
            )

    @property
    def num_batches(self) -> None:
        """None: an endless stream (``fit`` counts epochs with ``steps_per_epoch``)."""
        return None

    def __getitem__(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        self._check_bounded(int(idx))
        n = self.start_epoch * self.steps_per_epoch + int(idx)
        if self.threads == 1:
            return self.batch(n)
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="PatchPyDataset")
                self._finalizer = weakref.finalize(
                    self, self._pool.shutdown, wait=False, cancel_futures=True
                )
            ahead = self.prefetch
            future = self._ahead.pop(n, None)
            for k in [k for k in self._ahead if not n < k <= n + ahead]:
                self._ahead.pop(k).cancel()  # asked for elsewhere: a restarted iteration
            for k in range(n + 1, n + ahead + 1):
                if k not in self._ahead:
                    self._ahead[k] = self._pool.submit(self.batch, k)
        if future is not None:
            try:
                return future.result()
            except CancelledError:  # the epoch ended meanwhile (on_epoch_end): make it here
                pass
        return self.batch(n)

    def batch(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Batch ``n`` of the stream (epoch ``n // steps_per_epoch``), a pure function: this
        process's share of the global batch (all of it with one process)."""
        lr, hr = self.global_batch(n)
        return lr[self._rows], hr[self._rows]

    def global_batch(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Global batch ``n`` of the stream, every process's rows."""
        cfg, s = self.config, self.scale
        p = cfg.patch_size
        hp = p * s
        rng = np.random.default_rng([cfg.seed, *divmod(int(n), self.steps_per_epoch)])
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
                hr = src[y * s : y * s + hp, x * s : x * s + hp]
                lr = (
                    self._acquired(lr_src, y, x, hr, rng)
                    if self._per_sample
                    else lr_src[y : y + p, x : x + p]
                )
                lrs[j] = self._augment(lr, flip, rot) if cfg.augment else lr
            else:
                y = int(rng.integers(src.shape[0] - hp + 1))
                x = int(rng.integers(src.shape[1] - hp + 1))
                hr = src[y : y + hp, x : x + hp]
            hrs[j] = self._augment(hr, flip, rot) if cfg.augment else hr
        if lrs is None:
            if cfg.contrast_augment:
                hrs = random_contrast(hrs, cfg.contrast_augment, cfg.contrast_knots, rng)
            lrs = degrade(hrs, s, cfg.degradation)
        if cfg.noise_sigma:
            lrs = add_rician_noise(lrs, cfg.noise_sigma, rng)
        return lrs[..., None].astype(np.float32), hrs[..., None]

    def _acquired(
        self, lr0: np.ndarray, y: int, x: int, hr: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """LR patch (p, p) at LR position (y, x) with scanner effects drawn from ``rng``."""
        p, s = self.config.patch_size, self.scale
        fx = acquisition.draw_effects(
            rng.random((1, acquisition.UNIFORMS_PER_SAMPLE)), self._acq, self._blind
        )
        kind = BLIND_KINDS[int(fx.kind[0])]
        if kind == "kspace":
            z = acquisition.acquire(
                acquisition.lr_spectrum(lr0),
                fx.apodization[0],
                fx.pf_keep[0],
                int(fx.pf_axis[0]),
                bool(fx.pf_high[0]),
            )[y : y + p, x : x + p]
        else:
            z = degrade(hr, s, kind)
        normals = rng.standard_normal((2, p, p))  # drawn always: the stream keeps its places
        return acquisition.magnitude_with_noise(z, float(fx.sigma[0]), normals)

    @staticmethod
    def _augment(a: np.ndarray, flip: bool, rot: int) -> np.ndarray:
        """One of the 8 dihedral transforms: optional left-right flip, then ``rot`` x 90 degrees."""
        if flip:
            a = a[:, ::-1]
        return np.rot90(a, rot)


class SlicePairPyDataset(keras.utils.PyDataset):
    """Whole-slice (lr, hr) pairs, batch 1: (1, h, w, 1), (1, h*s, w*s, 1), e.g. the lists of
    :func:`validation_pairs` for validation under any backend."""

    def __init__(
        self, lr_list: list[np.ndarray], hr_list: list[np.ndarray], copies: int = 1, **kwargs: Any
    ):
        super().__init__(**kwargs)
        if len(lr_list) != len(hr_list) or not lr_list:
            raise ValueError(
                f"need equally long, non-empty lists, got {len(lr_list)} and {len(hr_list)}"
            )
        self.lr_list, self.hr_list = lr_list, hr_list
        self.copies = int(copies)  # > 1: each slice repeated, a batch of one per replica

    def __len__(self) -> int:
        return len(self.lr_list)

    def __getitem__(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        return tuple(
            np.repeat(np.asarray(a[idx], np.float32)[None, ..., None], self.copies, 0)
            for a in (self.lr_list, self.hr_list)
        )


def make_pydatasets(
    sources: Any,
    scale: int,
    config: DataConfig | None = None,
    steps_per_epoch: int = 100,
    start_epoch: int = 0,
    workers: int | None = None,
    process_index: int = 0,
    process_count: int = 1,
    val_copies: int = 1,
) -> tuple[PatchPyDataset, SlicePairPyDataset | None]:
    """(train, val) PyDatasets from MR files or arrays: the backend-agnostic twin of
    :func:`keras_seran.data.make_datasets` (same slices, split and validation pairs; the random
    patch stream differs). ``train``: the endless stream of batches (B, p, p, 1), (B, p*s, p*s, 1)
    from epoch ``start_epoch`` on, prefetched by ``workers`` threads (default: up to 4); give
    ``fit`` its ``steps_per_epoch=len(train)``. ``val``: whole slices, batch 1, or None when
    nothing is held out. ``process_index``/``process_count``: this process's share of each
    batch (:class:`PatchPyDataset`); ``val_copies``: each validation slice repeated into a
    batch of that many (one per local replica of a distributed run)."""
    import os

    config = config or DataConfig()
    train, val = load_slice_sets(sources, scale, config)
    workers = workers or max(1, min(4, os.cpu_count() or 1))
    train_ds = PatchPyDataset(
        train,
        scale,
        config,
        steps_per_epoch,
        start_epoch=start_epoch,
        workers=workers,
        process_index=process_index,
        process_count=process_count,
    )
    val_ds = (
        SlicePairPyDataset(*validation_pairs_from(val, scale, config), copies=val_copies)
        if len(val)
        else None
    )
    return train_ds, val_ds
