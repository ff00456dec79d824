"""Baselines: shapes, matched sizes, bicubic behaviour on real MR."""

from __future__ import annotations

import numpy as np
import pytest

from keras_seran.models import bicubic, build, edsr, rcan, rir, seran, srcnn


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_every_baseline_outputs_scaled_shape(scale, mr_slice):
    x = mr_slice[None, 100:117, 100:122, None]
    for model in (
        bicubic(scale),
        srcnn(scale),
        edsr(scale, "tiny"),
        rcan(scale, "tiny"),
        rir(scale, "tiny"),
    ):
        assert model.predict_on_batch(x).shape == (1, 17 * scale, 22 * scale, 1), model.name


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_edsr_is_matched_to_seran_size(preset):
    s, e, r = (f(2, preset).count_params() for f in (seran, edsr, rcan))
    assert s <= e < s * 1.15, (s, e)  # at least as large as SERAN, never much larger
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


@pytest.mark.parametrize("scale", [2, 4])
def test_rir_is_seran_without_its_sera_modules(scale, mr_slice):
    """Same layers and weights as SERAN but the SERA modules; with each module's output conv at
    zero (as SERAN starts) both networks compute the same image from the same weights."""
    from keras_seran.layers import SERABlock
    from keras_seran.training.trainer import transfer_weights

    full, ablated = seran(scale, "small"), rir(scale, "small")
    sera_layers = [layer for layer in full.layers if isinstance(layer, SERABlock)]
    assert len(sera_layers) == 3 and not any(isinstance(la, SERABlock) for la in ablated.layers)
    assert ablated.count_params() == full.count_params() - sum(
        la.count_params() for la in sera_layers
    )
    assert sorted(la.name for la in ablated.layers) == sorted(
        la.name for la in full.layers if not isinstance(la, SERABlock)
    )
    rng = np.random.default_rng(0)
    for layer in full.layers:
        if layer.weights and not isinstance(layer, SERABlock):
            layer.set_weights(
                [0.05 * rng.standard_normal(w.shape).astype("float32") for w in layer.get_weights()]
            )
    assert len(transfer_weights(ablated, full)) == len([la for la in ablated.layers if la.weights])
    x = mr_slice[None, 96:128, 96:128, None]
    np.testing.assert_allclose(ablated.predict_on_batch(x), full.predict_on_batch(x), atol=1e-5)
    with pytest.raises(ValueError, match="with_sera"):
        seran(scale, "tiny", with_sera=False, return_attention=True)


def test_baselines_check_scale_and_config_like_seran():
    from keras_seran.config import preset_config

    for build_fn in (bicubic, srcnn):
        for bad in (5, 2.5):
            with pytest.raises(ValueError, match="scale"):
                build_fn(bad)
    cfg = preset_config("tiny", 2)
    for build_fn in (edsr, rir, rcan):
        with pytest.raises(ValueError, match="contradicts"):
            build_fn(4, config=cfg)
        assert build_fn(config=cfg).name.endswith("_x2")
        assert build_fn(3, "tiny").name.endswith("_x3")
