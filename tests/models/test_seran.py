"""SERAN functional model: shapes, parameter count, serialisation, attention view, training."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_seran.config import PRESETS, preset_config
from keras_seran.layers import SERABlock
from keras_seran.models import (
    attention_model,
    attention_use,
    count_flops,
    effective_support,
    sera_ablation,
    seran,
    seran_param_count,
)
from keras_seran.models.seran import config_from_model

PAPER_PARAMS_X2 = 15_502_667  # derived by hand in docs/architecture.md, from SERAN.md sizes


def test_paper_preset_parameter_count_matches_derivation():
    model = seran(scale=2, preset="paper")
    n = model.count_params()
    print(f"SERAN paper preset x2: {n:,} parameters")
    assert n == seran_param_count(preset_config("paper", 2)) == PAPER_PARAMS_X2
    assert sum(isinstance(l, SERABlock) for l in model.layers) == 10


@pytest.mark.parametrize(
    "preset,scale", [(p, s) for p in sorted(PRESETS) if p != "paper" for s in (2, 3, 4)]
)
def test_closed_form_parameter_count(preset, scale):
    assert seran(scale, preset).count_params() == seran_param_count(preset_config(preset, scale))


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("hw", [(17, 23), (24, 16), (1, 1), (9, 30)])
def test_output_shape_is_exactly_scaled(scale, hw, mr_slice):
    model = seran(scale, "tiny")
    x = mr_slice[None, 100 : 100 + hw[0], 90 : 90 + hw[1], None]
    y = model.predict_on_batch(x)
    assert y.shape == (1, hw[0] * scale, hw[1] * scale, 1)


def test_small_preset_output_shape_odd_and_batch(slab_slices):
    model = seran(3, "small")
    x = slab_slices[:3, 90:111, 80:113, None]
    assert model.predict_on_batch(x).shape == (3, 63, 99, 1)


def test_keras_file_round_trip_gives_identical_outputs(tmp_path, mr_slice):
    model = seran(2, "small", sera={"residual_scale": None})
    # move away from the identity start so the SERA modules matter in the comparison
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, SERABlock):
            layer.scale.assign(0.5)
            kernel = layer.excite.output_conv.kernel
            kernel.assign(0.2 * rng.standard_normal(kernel.shape))
    x = mr_slice[None, 64:112, 64:120, None]
    path = tmp_path / "seran.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_array_equal(restored.predict_on_batch(x), model.predict_on_batch(x))
    assert config_from_model(restored) == config_from_model(model)


def test_rs_gcn_variant_round_trips(tmp_path, mr_slice):
    model = seran(2, "tiny", sera={"reasoning": "rs_gcn", "residual_scale": 0.1})
    x = mr_slice[None, 64:80, 64:84, None]
    model.save(tmp_path / "m.keras")
    restored = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(restored.predict_on_batch(x), model.predict_on_batch(x), atol=1e-6)


def test_attention_model_exposes_distributions(mr_slice):
    model = seran(2, "tiny")
    x = mr_slice[None, 96:128, 96:136, None]
    out = attention_model(model).predict_on_batch(x)
    np.testing.assert_allclose(out["sr"], model.predict_on_batch(x), atol=1e-6)
    m, d = out["group0_sera/attention_maps"], out["group0_sera/excitation"]
    assert m.shape == (1, 32, 40, 8) and d.shape == (1, 32, 40, 8)
    np.testing.assert_allclose(m.sum(axis=(1, 2)), 1.0, rtol=1e-4)  # over positions
    np.testing.assert_allclose(d.sum(axis=-1), 1.0, rtol=1e-4)  # over descriptors
    assert out["group0_sera/descriptors"].shape == (1, 16, 8)


def test_attention_use_measures_support_and_peak(mr_slice):
    model = seran(2, "tiny")
    lr = mr_slice[96:128, 96:136]
    (use,) = attention_use(model, lr)
    out = attention_model(model).predict_on_batch(lr[None, ..., None])
    m = out["group0_sera/attention_maps"][0].reshape(-1, 8).astype("float64")
    support = np.exp(-(m * np.log(m)).sum(0)) / m.shape[0]
    assert use.name == "group0_sera" and use.residual_scale == pytest.approx(1.0)
    assert use.support == pytest.approx(np.median(support), rel=1e-4) and 0 < use.support <= 1
    assert use.excitation_peak == pytest.approx(
        out["group0_sera/excitation"].max(-1).mean(), rel=1e-4
    )
    assert 1 / 8 <= use.excitation_peak <= 1


def test_effective_support_is_one_for_uniform_and_one_position_for_a_point():
    maps = np.zeros((4, 5, 2))
    maps[..., 0] = 1 / 20  # uniform over the 20 positions
    maps[2, 3, 1] = 1.0  # all weight on one position
    np.testing.assert_allclose(effective_support(maps), [1.0, 1 / 20], rtol=1e-6)


def test_sera_ablation_switches_each_module_off_and_restores_it(mr_slice):
    model = seran(2, "tiny", num_groups=2)
    lr = mr_slice[None, 96:128, 96:136, None]
    # a zero-initialised excitation output makes every module the identity: ablation changes nothing
    score = lambda m: float(np.asarray(m.predict_on_batch(lr)).sum())  # noqa: E731
    assert sera_ablation(model, score) == {"group0_sera": 0.0, "group1_sera": 0.0}
    rng = np.random.default_rng(0)
    conv = model.get_layer("group1_sera").excite.output_conv
    conv.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in conv.get_weights()])
    before = model.get_weights()
    deltas = sera_ablation(model, score)
    assert deltas["group0_sera"] == 0.0 and deltas["group1_sera"] != 0.0
    for a, b in zip(before, model.get_weights()):  # weights restored
        np.testing.assert_array_equal(a, b)


def test_count_flops_matches_hand_count_and_scales_with_pixels():
    inputs = keras.Input((None, None, 1))
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    outputs = keras.layers.Conv2D(1, 1)(x)
    plain = keras.Model(inputs, outputs)
    assert count_flops(plain, (10, 20)) == 2 * 200 * (9 * 1 * 8 + 8 * 1)
    model = seran(2, "tiny")
    assert count_flops(model, (64, 64)) == pytest.approx(4 * count_flops(model, (32, 32)), rel=1e-3)


def test_fit_on_real_mr_patches_lowers_l1(slab_slices):
    """A few steps of plain model.fit on real T1 patches (bicubic LR) lower the L1 loss."""
    import cv2

    rng = np.random.default_rng(0)
    hr, lr = [], []
    for _ in range(64):
        s = slab_slices[rng.integers(len(slab_slices))]
        y, x = rng.integers(40, 256 - 40 - 32, size=2)
        patch = s[y : y + 32, x : x + 32]
        hr.append(patch)
        lr.append(cv2.resize(patch, (16, 16), interpolation=cv2.INTER_AREA))
    hr, lr = np.stack(hr)[..., None], np.stack(lr)[..., None]
    keras.utils.set_random_seed(0)
    model = seran(2, "tiny")
    model.compile(keras.optimizers.Adam(1e-3), loss="mae")
    history = model.fit(lr, hr, batch_size=16, epochs=6, verbose=0, shuffle=True)
    losses = history.history["loss"]
    assert losses[-1] < 0.7 * losses[0], losses


def test_bad_sizes_are_clear_errors_naming_the_field():
    from keras_seran.config import preset_config

    for kwargs, named in (
        ({"scale": 2.0}, "scale"),
        ({"scale": 5}, "scale"),
        ({"sera": {"feature_dim": 2.5}}, "feature_dim"),
        ({"sera": {"num_descriptors": 0}}, "num_descriptors"),
        ({"sera": {"reasoning": "gcn"}}, "reasoning"),
        ({"sera": "rs_gcn"}, "sera"),
        ({"chanels": 8}, "chanels"),
    ):
        kwargs = {"scale": 2, **kwargs}
        with pytest.raises(ValueError, match=named):
            seran(kwargs.pop("scale"), "tiny", **kwargs)
    # overrides apply on top of a full config too
    m = seran(config=preset_config("tiny", 2), channels=8, sera={"reasoning": "rs_gcn"})
    assert m.get_layer("shallow_conv").filters == 8
    assert m.get_layer("group0_sera").reasoning == "rs_gcn"


def test_scale_or_preset_beside_a_config_is_checked_not_dropped():
    """seran(config=x2 config, scale=4) used to build an x2 network without a word."""
    cfg = preset_config("tiny", 2)
    with pytest.raises(ValueError, match="contradicts config.scale=2"):
        seran(config=cfg, scale=4)
    with pytest.raises(ValueError, match="contradicts"):
        seran(3, config=cfg)
    with pytest.raises(ValueError, match="preset"):
        seran(preset="small", config=cfg)
    assert seran(2, config=cfg).name == "seran_x2"  # agreeing is fine
    assert seran(4, "tiny").name == "seran_x4" and seran(preset="tiny").name == "seran_x2"
