"""Real MR arrays for tests that are not fixtures (helpers, parametrisation): the bundled slab."""

from __future__ import annotations

import functools

import nibabel as nib
import numpy as np

from keras_seran import samples


@functools.lru_cache(maxsize=1)
def bundled_slab_slices() -> np.ndarray:
    """The bundled real T1 slab as (16, 256, 256) float32 axial slices scaled to [0, 1].

    Read-only: one array is shared by every caller."""
    data = np.asanyarray(nib.load(samples.T1_AXIAL_SLAB).dataobj).astype(np.float32)
    data = np.clip(data / np.percentile(data, 99.5), 0.0, 1.0)
    slices = np.ascontiguousarray(np.moveaxis(data, 1, 0))
    slices.flags.writeable = False
    return slices
