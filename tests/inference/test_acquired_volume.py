"""The bundled k-space weights on a real acquisition from outside the project: nibabel's own
2 mm T1 test file (``anatomical.nii``), super-resolved in-plane x2 as `keras-seran predict`
does. The issue that asked for them measured halos and worm-like texture there: 3.7 % of the
voxels beyond their LR neighbourhood with the bicubic-trained weights (bicubic itself: 0.03 %)."""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import pytest
from nibabel.testing import data_path

from keras_seran import SuperResolver
from keras_seran.metrics import overshoot_fraction
from keras_seran.registry import Bundled

ANATOMICAL = os.path.join(data_path, "anatomical.nii")

pytestmark = pytest.mark.skipif(
    not Bundled("seran", 2, degradation="kspace").exists(),
    reason="the bundled x2-kspace weights are not installed",
)


def _overshoot(degradation: str, **kwargs) -> float:
    img = nib.load(ANATOMICAL)
    out = SuperResolver.from_pretrained(2, degradation=degradation, **kwargs).predict_volume(img)
    assert out.shape[:2] == (img.shape[0] * 2, img.shape[1] * 2)
    assert np.allclose(
        out.affine[:3, 3] - img.affine[:3, 3], out.affine[:3, :2] @ [-0.5, -0.5]
    )  # same field of view, finer grid
    lr = np.moveaxis(np.asarray(img.dataobj, np.float32), 2, 0)
    return overshoot_fraction(lr, np.moveaxis(np.asarray(out.dataobj, np.float32), 2, 0), 2)


def test_kspace_weights_draw_no_halos_on_a_real_2mm_t1():
    kspace = _overshoot("kspace")
    assert kspace <= 0.01
    assert kspace < _overshoot("bicubic") / 4  # the bicubic-trained weights: about 3.7 %


def test_data_consistency_keeps_the_overshoot_low():
    assert _overshoot("kspace", data_consistency=1.0) <= 0.01
