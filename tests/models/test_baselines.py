"""Baselines: shapes, matched sizes, bicubic behaviour on real MR."""

from __future__ import annotations

import numpy as np
import pytest

from keras_seran.models import bicubic, build, edsr, rcan, seran, srcnn


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_every_baseline_outputs_scaled_shape(scale, mr_slice):
    x = mr_slice[None, 100:117, 100:122, None]
    for model in (bicubic(scale), srcnn(scale), edsr(scale, "tiny"), rcan(scale, "tiny")):
        assert model.predict_on_batch(x).shape == (1, 17 * scale, 22 * scale, 1), model.name


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_edsr_is_matched_to_seran_size(preset):
    s, e, r = (f(2, preset).count_params() for f in (seran, edsr, rcan))
    assert s <= e < s * 1.15, (s, e)      # at least as large as SERAN, never much larger
    assert abs(r - s) / s < 0.1, (s, r)


def test_bicubic_model_keeps_a_smooth_real_image_close(mr_slice):
    import cv2

    hr = mr_slice[64:192, 64:192]
    lr = cv2.resize(hr, (64, 64), interpolation=cv2.INTER_AREA)
    up = bicubic(2).predict_on_batch(lr[None, ..., None])[0, ..., 0]
    err = np.abs(up - hr)[4:-4, 4:-4].mean()
    nearest = np.abs(np.kron(lr, np.ones((2, 2))) - hr)[4:-4, 4:-4].mean()
    assert err < nearest


def test_build_by_name_rejects_unknown():
    assert build("edsr", 2, "tiny").name == "edsr_x2"
    with pytest.raises(ValueError, match="unknown architecture"):
        build("vdsr")
