"""Self-supervised adaptation of the through-plane network to one scan (SMORE-style).

A thick-slice stack is fine in-plane. Its own in-plane slices, made thick along one in-plane
axis to the stack's slice thickness and interpolated back (the training degradation,
:class:`keras_seran.data.throughplane.ThickSlicePatches`), are pairs of exactly this scan's
contrast, anatomy and noise; a few hundred steps of fine-tuning on them teach the network the
scan before it restores the through-plane reformats (Zhao et al., SMORE, IEEE TMI 2021).
Imports Keras (training).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from keras_seran.config import DataConfig, ThickSliceConfig
from keras_seran.data.slices import load_slice_sets
from keras_seran.data.throughplane import ThickSlicePatches

#: learning rate of the adaptation (a tenth of the bundled recipe's start)
ADAPT_LEARNING_RATE = 2e-5


def adaptation_pairs(
    volume: np.ndarray,
    axis: int,
    thickness: float,
    config: ThickSliceConfig | None = None,
    steps: int = 100,
) -> ThickSlicePatches:
    """Training pairs from the in-plane slices of a normalised ``volume`` (perpendicular to its
    thick ``axis``), in both in-plane orientations, thick along their rows by ``thickness``
    (output voxels per thick slice); ``config`` gives patch, batch, profiles, noise."""
    cfg = config or ThickSliceConfig()
    t = float(thickness)
    inplane = np.moveaxis(np.asarray(volume, np.float32), axis, 0)
    both = [inplane, np.swapaxes(inplane, 1, 2)]
    patch = min(cfg.patch_size, *inplane.shape[1:])
    # the scan's own noise is in its slices already: none is added
    cfg = dataclasses.replace(
        cfg, ratio=(t, t), patch_size=max(patch, 16), gap_prob=0.0, noise_prob=0.0
    )
    # every in-plane slice at least one patch in size (load_slice_sets keeps slices of at least
    # patch_size x scale: here scale 2, so half the patch), however thin the stack's field of view
    keep = DataConfig(
        val_fraction=0.0,
        percentiles=(0.0, 100.0),
        slice_axis=0,
        min_foreground=0.05,
        patch_size=max(cfg.patch_size // 2, 1),
    )
    slices = load_slice_sets(both, 2, keep)[0]
    return ThickSlicePatches(slices, cfg, steps_per_epoch=steps)


def adapt(
    model: Any,
    volume: np.ndarray,
    axis: int,
    thickness: float,
    steps: int,
    batch_size: int = 8,
    learning_rate: float = ADAPT_LEARNING_RATE,
    progress: bool = True,
    seed: int = 0,
) -> Any:
    """Fine-tune (a copy of) the through-plane Keras ``model`` for ``steps`` batches on the
    scan's own in-plane slices (:func:`adaptation_pairs`); returns the adapted copy. The
    progress bar shows the steps, the loss and the time left."""
    import keras

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    copy.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mean_absolute_error")
    pairs = adaptation_pairs(
        volume, axis, thickness, ThickSliceConfig(batch_size=batch_size, seed=seed), steps
    )
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=steps, desc="adapting to the scan", unit="step", leave=False, dynamic_ncols=True
        )
    try:
        for k in range(steps):
            x, y = pairs.batch(k)
            loss = copy.train_on_batch(x, y)
            if bar is not None:
                bar.set_postfix(loss=f"{float(np.ravel(loss)[0]):.4f}")
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return copy
