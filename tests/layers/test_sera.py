"""SERA layers: hand-computed values on tiny inputs, softmax axes, identity start, learning,
float32 attention under mixed precision, and the shared layer checks."""

from __future__ import annotations

import cv2
import keras
import numpy as np
import pytest

from keras_seran.layers import Excitation, SecondOrderPooling, SERABlock
from tests.layer_checks import run_layer_test


def softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def set_conv(conv, kernel, bias):
    conv.set_weights([np.asarray(kernel, "float32")[None, None], np.asarray(bias, "float32")])


@pytest.fixture
def feature_map():
    """A 2x2 map with C = 2 channels, from a real MR slice's corner statistics (fixed numbers)."""
    return np.array(
        [[[[0.2, 1.0], [0.6, -0.4]], [[1.5, 0.3], [-0.7, 0.9]]]], dtype="float32"
    )  # (1, 2, 2, 2)


def test_pooling_matches_hand_computation(feature_map):
    layer = SecondOrderPooling(feature_dim=2, num_descriptors=3)
    layer.build(feature_map.shape)
    wa, ba = [[1.0, 0.0], [0.0, 1.0]], [0.1, -0.2]  # A = E + b: features kept
    wm, bm = [[1.0, -1.0, 0.5], [2.0, 0.0, -1.0]], [0.0, 0.3, 0.0]
    set_conv(layer.feature_conv, wa, ba)
    set_conv(layer.attention_conv, wm, bm)
    v, m = (np.asarray(t) for t in layer(feature_map))

    e = feature_map.reshape(4, 2)  # HW x C
    a = e @ np.array(wa) + ba  # HW x m
    att = softmax(e @ np.array(wm) + bm, axis=0)  # softmax over the 4 positions
    np.testing.assert_allclose(m.reshape(4, 3), att, rtol=1e-5)
    np.testing.assert_allclose(v[0], a.T @ att, rtol=1e-5)  # V = A^T M, (m, n)
    assert v.shape == (1, 2, 3) and m.shape == (1, 2, 2, 3)
    # the pinned axis: every attention map is a distribution over positions, not descriptors
    np.testing.assert_allclose(m.sum(axis=(1, 2)), 1.0, rtol=1e-5)
    assert not np.allclose(m.sum(axis=-1), 1.0)


def test_excitation_matches_hand_computation(feature_map):
    layer = Excitation(num_descriptors=3)
    descriptors = np.array([[[0.5, -1.0, 2.0], [1.0, 0.0, -0.5]]], dtype="float32")  # (1, m=2, n=3)
    layer.build([feature_map.shape, descriptors.shape])
    wd, bd = [[0.3, -1.0, 0.8], [1.2, 0.4, -0.6]], [0.0, 0.1, 0.2]
    wo, bo = [[1.0, 0.5], [-0.5, 2.0]], [0.0, 0.0]
    set_conv(layer.attention_conv, wd, bd)
    set_conv(layer.output_conv, wo, bo)
    z, d = (np.asarray(t) for t in layer([feature_map, descriptors]))

    e = feature_map.reshape(4, 2)
    dist = softmax(e @ np.array(wd) + bd, axis=1)  # softmax over the 3 descriptors
    expected = (dist @ descriptors[0].T) @ np.array(wo) + bo  # (HW, m) -> conv1x1 -> (HW, C)
    np.testing.assert_allclose(d.reshape(4, 3), dist, rtol=1e-5)
    np.testing.assert_allclose(z.reshape(4, 2), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(d.sum(axis=-1), 1.0, rtol=1e-5)


def test_attention_norm_makes_both_softmaxes_independent_of_the_feature_scale(mr_slice):
    """With ``attention_norm`` the logits see E / rms(E): M and D are the same for E and 0.04 E
    (the feature scale of a trunk on [0, 1] MR), and they are computed as that formula says."""
    rng = np.random.default_rng(3)
    e = np.stack([mr_slice[116:140, 116:140] * w for w in rng.uniform(-1, 1, 4)], -1)[None]
    e = (e + 0.1 * rng.standard_normal(e.shape)).astype("float32")  # (1, 24, 24, 4)
    block = SERABlock(feature_dim=6, num_descriptors=3, attention_norm=True)
    plain = SERABlock(feature_dim=6, num_descriptors=3)
    block(e), plain(e)
    plain.set_weights(block.get_weights())
    _, big = block(e, return_attention=True)
    _, small = block(0.04 * e, return_attention=True)
    for key in ("attention_maps", "excitation"):  # equal up to the epsilon under the sqrt
        np.testing.assert_allclose(np.asarray(big[key]), np.asarray(small[key]), rtol=5e-3)
    # without the normalisation the same weights give a flatter M on the small features
    _, flat = plain(0.04 * e, return_attention=True)
    assert np.asarray(flat["attention_maps"]).max() < np.asarray(small["attention_maps"]).max()
    # and with it, M is the softmax of conv1x1(E / rms(E)) over positions
    kernel, bias = block.squeeze.attention_conv.get_weights()
    keys = e / np.sqrt(np.mean(e**2))
    expected = softmax(keys.reshape(-1, 4) @ kernel[0, 0] + bias, axis=0)
    np.testing.assert_allclose(
        np.asarray(big["attention_maps"]).reshape(-1, 3), expected, rtol=1e-4, atol=1e-7
    )


def test_sera_block_starts_as_identity_and_scales_residual(mr_slice):
    x = np.stack([mr_slice[100:116, 100:120]] * 8, axis=-1)[None]  # real MR, (1, 16, 20, 8)
    learnable = SERABlock(feature_dim=6, num_descriptors=4)
    np.testing.assert_allclose(np.asarray(learnable(x)), x, atol=1e-7)  # Z starts at zero
    assert float(learnable.scale.numpy()) == 1.0
    fixed = SERABlock(feature_dim=6, num_descriptors=4, residual_scale=0.1)
    fixed(x)
    conv = fixed.excite.output_conv
    conv.kernel.assign(np.random.default_rng(0).standard_normal(conv.kernel.shape) * 0.5)
    out, maps = fixed(x, return_attention=True)
    z, _ = fixed.excite([x, maps["reasoned_descriptors"]])
    np.testing.assert_allclose(np.asarray(out), x + 0.1 * np.asarray(z), rtol=1e-5, atol=1e-6)
    assert np.abs(np.asarray(z)).max() > 1e-4


def test_sera_never_builds_a_positions_by_positions_matrix():
    """Linear cost: no intermediate grows like (H*W)^2 (checked through the FLOP count)."""
    block = SERABlock(feature_dim=8, num_descriptors=4)
    small, large = block.flops((1, 32, 32, 16)), block.flops((1, 64, 64, 16))
    assert large == pytest.approx(4 * small, rel=0.01)


def test_configs_saved_before_attention_norm_reload_without_it():
    config = SERABlock(feature_dim=6, num_descriptors=3, attention_norm=True).get_config()
    config.pop("attention_norm")
    restored = SERABlock.from_config(config)
    assert not restored.attention_norm and not restored.squeeze.attention_norm
    assert not restored.excite.attention_norm


def _pooling(policy: str) -> SecondOrderPooling:
    layer = SecondOrderPooling(8, 4, attention_norm=True, dtype=policy)
    layer.build((None, None, None, 4))
    rng = np.random.default_rng(0)
    feature_kernel = rng.normal(0, 0.5, (1, 1, 4, 8))
    # gentle logits (about 0..0.8 over the slice): a broad attention, as trained maps often are
    attention_kernel = np.linspace(0.05, 0.3, 16).reshape(1, 1, 4, 4)
    layer.set_weights([feature_kernel, np.zeros(8), attention_kernel, np.zeros(4)])
    return layer


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_attention_over_262144_positions_sums_to_one_under_mixed_precision(mr_slice, policy):
    """At 512x512 the softmax sums 262,144 terms: in float16 that sum passes 65,504 as soon as the
    map is not peaked, the denominator becomes inf and the map all zeros (seen with the bundled x2
    weights at 512x512 LR, bench/gpu_check.py: 4 of 48 maps lost). The layer computes that
    softmax and the pooling in float32 under any policy."""
    big = cv2.resize(mr_slice, (512, 512), interpolation=cv2.INTER_CUBIC)
    # four channels of real MR: intensity, its square, its root, its complement
    x = np.stack([big, big**2, np.sqrt(np.clip(big, 0, None)), 1 - big], -1)[None]
    v32, m32 = (np.asarray(t, "float64") for t in _pooling("float32")(x.astype("float32")))
    v, m = (np.asarray(keras.ops.convert_to_numpy(t), "float64") for t in _pooling(policy)(x))
    sums32 = m32.reshape(-1, 4).sum(axis=0)
    np.testing.assert_allclose(sums32, 1.0, atol=1e-4)
    # a float16 denominator would overflow here: the float32 sum of exp(logit - max) is > 65,504
    logits = np.einsum(
        "...c,cn->...n", x / np.sqrt(np.mean(x**2)), np.linspace(0.05, 0.3, 16).reshape(4, 4)
    ).reshape(-1, 4)
    assert np.exp(logits - logits.max(axis=0)).sum(axis=0).min() > 65504
    sums = m.reshape(-1, 4).sum(axis=0)
    np.testing.assert_allclose(sums, 1.0, atol=0.01)
    tv = 0.5 * np.abs(m - m32).reshape(-1, 4).sum(axis=0)
    assert tv.max() < 0.02
    np.testing.assert_allclose(v, v32, rtol=0.02, atol=0.02 * np.abs(v32).max())


B = 2
POOLING_SHAPES = ((B, 6, 4), (B, 24, 20, 4))  # V (B, m, n), M (B, H, W, n)
LAYER_CASES = [
    pytest.param(
        SecondOrderPooling,
        dict(feature_dim=6, num_descriptors=4),
        (B, 24, 20, 8),
        POOLING_SHAPES,
        id="SecondOrderPooling",
    ),
    pytest.param(
        SecondOrderPooling,
        dict(feature_dim=6, num_descriptors=4, attention_norm=True),
        (B, 24, 20, 8),
        POOLING_SHAPES,
        id="SecondOrderPooling-attention_norm",
    ),
    pytest.param(
        Excitation,
        dict(num_descriptors=4),
        [(B, 24, 20, 8), (B, 6, 4)],
        ((B, 24, 20, 8), (B, 24, 20, 4)),
        id="Excitation",
    ),
    pytest.param(
        Excitation,
        dict(num_descriptors=4, zero_init=True, attention_norm=True),
        [(B, 24, 20, 8), (B, 6, 4)],
        ((B, 24, 20, 8), (B, 24, 20, 4)),
        id="Excitation-zero_init-attention_norm",
    ),
    pytest.param(
        SERABlock,
        dict(feature_dim=6, num_descriptors=4),
        (B, 24, 20, 8),
        (B, 24, 20, 8),
        id="SERABlock",
    ),
    pytest.param(
        SERABlock,
        dict(feature_dim=6, num_descriptors=4, reasoning="rs_gcn", residual_scale=0.5),
        (B, 24, 20, 8),
        (B, 24, 20, 8),
        id="SERABlock-rs_gcn-fixed_scale",
    ),
    pytest.param(
        SERABlock,
        dict(feature_dim=6, num_descriptors=4, attention_norm=True, residual_scale_init=0.3),
        (B, 24, 20, 8),
        (B, 24, 20, 8),
        id="SERABlock-attention_norm",
    ),
]


@pytest.mark.parametrize("cls, kwargs, input_shape, output_shape", LAYER_CASES)
def test_shared_layer_checks(cls, kwargs, input_shape, output_shape):
    # the attention maps M of the pooling stay float32 under a mixed policy (see above)
    float32_outputs = (1,) if cls is SecondOrderPooling else ()
    run_layer_test(cls, kwargs, input_shape, output_shape, float32_outputs=float32_outputs)
