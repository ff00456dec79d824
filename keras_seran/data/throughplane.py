"""Through-plane training pairs: fine 2D patches and the same patches seen as thick slices.

Each pair is (input, target), both (P, P) on the fine grid: the target is a patch cut from a
fine (e.g. 1 mm isotropic) volume's 2D slice; the input is that patch acquired as thick slices
along its rows (:func:`keras_seran.data.slice_profile.thick_slice_matrix`: a drawn thickness,
profile, gap and offset), given Rician noise, and interpolated back onto the fine rows with the
cubic kernel. A network restoring such inputs is applied to the reformats of a thick-slice stack
in which the slice axis runs along the rows (:mod:`keras_seran.inference.throughplane`). Patches
are flipped up-down and left-right at random, never transposed: the thick axis stays the rows.

The stream is a pure function of the seed and the global batch number (as
:class:`keras_seran.data.pydataset.PatchPyDataset`), numpy only, for every Keras backend.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from keras_seran.config import ThickSliceConfig
from keras_seran.data.degrade import add_rician_noise
from keras_seran.data.slice_profile import (
    block_centres,
    cubic_matrix,
    profile_matrix,
    thick_slice_matrix,
)
from keras_seran.data.slices import SliceSet

__all__ = ["ThickSlicePatches", "thick_slice_pair", "thicken"]


def thicken(image: np.ndarray, thickness: float, kind: str = "boxcar") -> np.ndarray:
    """A whole 2D ``image`` (H, W) acquired as thick slices along its rows: (m, W) with
    ``m = floor(H / thickness)`` slices tiling the rows from the top (block centres)."""
    h = image.shape[0]
    m = int(np.floor(h / float(thickness) + 1e-9))
    a = profile_matrix(h, block_centres(m, thickness), thickness, kind)
    return (a @ np.asarray(image, np.float64)).astype(np.float32)


def thick_slice_pair(
    image: np.ndarray, thickness: int, kind: str = "boxcar"
) -> tuple[np.ndarray, np.ndarray]:
    """(input, target) of a whole slice for validation: the rows cropped to a multiple of the
    integer ``thickness``, acquired thick (:func:`thicken`), interpolated back with the cubic
    kernel; float32 (H', W) each."""
    t = int(thickness)
    target = np.ascontiguousarray(image[: image.shape[0] - image.shape[0] % t], np.float32)
    thick = thicken(target, t, kind)
    m = thick.shape[0]
    up = cubic_matrix((np.arange(m * t) + 0.5) / t - 0.5, m)
    return (up @ thick).astype(np.float32), target


class ThickSlicePatches(keras.utils.PyDataset):
    """Endless (input, target) batches, float32 (B, P, P, 1) each, from fine 2D slices.

    ``ds[k]`` is global batch ``start_epoch * steps_per_epoch + k`` of the stream; ``len(ds)``
    is ``steps_per_epoch``. Slices smaller than the patch are skipped.

    Args:
        train: fine 2D slices (a :class:`SliceSet`, normalised to [0, 1]).
        config: :class:`ThickSliceConfig` (patch, batch, thickness range, profiles, gap, noise).
        steps_per_epoch: batches per epoch.
        start_epoch: the epoch the stream starts at (a resumed run's epoch).
    """

    def __init__(
        self,
        train: SliceSet,
        config: ThickSliceConfig | None = None,
        steps_per_epoch: int = 100,
        start_epoch: int = 0,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.config = config or ThickSliceConfig()
        p = self.config.patch_size
        self.slices = [s for s in train.slices if min(s.shape) >= p]
        if not self.slices:
            raise ValueError(f"no training slice is at least {p}x{p}")
        self.steps_per_epoch = int(steps_per_epoch)
        self.start_epoch = int(start_epoch)

    def __len__(self) -> int:
        return self.steps_per_epoch

    @property
    def num_batches(self) -> None:
        """None: an endless stream (``fit`` counts epochs with ``steps_per_epoch``)."""
        return None

    def __getitem__(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        return self.batch(self.start_epoch * self.steps_per_epoch + int(idx))

    def batch(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Global batch ``n`` of the stream, a pure function of (seed, n)."""
        cfg = self.config
        p = cfg.patch_size
        rng = np.random.default_rng([cfg.seed, *divmod(int(n), self.steps_per_epoch)])
        inputs = np.empty((cfg.batch_size, p, p), np.float32)
        targets = np.empty((cfg.batch_size, p, p), np.float32)
        for j in range(cfg.batch_size):
            src = self.slices[int(rng.integers(len(self.slices)))]
            y = int(rng.integers(src.shape[0] - p + 1))
            x = int(rng.integers(src.shape[1] - p + 1))
            patch = src[y : y + p, x : x + p]
            if rng.random() < 0.5:
                patch = patch[::-1]
            if rng.random() < 0.5:
                patch = patch[:, ::-1]
            inputs[j] = self.degrade(patch, rng)
            targets[j] = patch
        return inputs[..., None], targets[..., None]

    def degrade(self, patch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One patch as drawn thick slices along its rows, interpolated back (P, P)."""
        cfg = self.config
        thickness = float(rng.uniform(*cfg.ratio))
        kind = cfg.profiles[int(rng.integers(len(cfg.profiles)))]
        gap = float(rng.uniform(*cfg.gap)) * thickness if rng.random() < cfg.gap_prob else 0.0
        offset = float(rng.uniform(0.0, thickness + gap))
        sigma = float(rng.uniform(*cfg.noise)) if rng.random() < cfg.noise_prob else 0.0
        a, u = thick_slice_matrix(patch.shape[0], thickness, gap, offset, kind)
        thick = a @ np.asarray(patch, np.float64)
        if sigma:
            thick = add_rician_noise(thick, sigma, rng)
        return (u @ thick).astype(np.float32)
