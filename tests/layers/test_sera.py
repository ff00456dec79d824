"""SERA layers: hand-computed values on tiny inputs, softmax axes, identity start, configs."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_seran.layers import (Excitation, GloReReasoning, PrimitiveReasoning, RsGCNReasoning,
                                SecondOrderPooling, SERABlock, primitive_reasoning)


def softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def set_conv(conv, kernel, bias):
    conv.set_weights([np.asarray(kernel, "float32")[None, None], np.asarray(bias, "float32")])


@pytest.fixture
def feature_map():
    """A 2x2 map with C = 2 channels, from a real MR slice's corner statistics (fixed numbers)."""
    return np.array([[[[0.2, 1.0], [0.6, -0.4]],
                      [[1.5, 0.3], [-0.7, 0.9]]]], dtype="float32")  # (1, 2, 2, 2)


def test_pooling_matches_hand_computation(feature_map):
    layer = SecondOrderPooling(feature_dim=2, num_descriptors=3)
    layer.build(feature_map.shape)
    wa, ba = [[1.0, 0.0], [0.0, 1.0]], [0.1, -0.2]          # A = E + b: features kept
    wm, bm = [[1.0, -1.0, 0.5], [2.0, 0.0, -1.0]], [0.0, 0.3, 0.0]
    set_conv(layer.feature_conv, wa, ba)
    set_conv(layer.attention_conv, wm, bm)
    v, m = (np.asarray(t) for t in layer(feature_map))

    e = feature_map.reshape(4, 2)                             # HW x C
    a = e @ np.array(wa) + ba                                 # HW x m
    att = softmax(e @ np.array(wm) + bm, axis=0)              # softmax over the 4 positions
    np.testing.assert_allclose(m.reshape(4, 3), att, rtol=1e-5)
    np.testing.assert_allclose(v[0], a.T @ att, rtol=1e-5)    # V = A^T M, (m, n)
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
    dist = softmax(e @ np.array(wd) + bd, axis=1)             # softmax over the 3 descriptors
    expected = (dist @ descriptors[0].T) @ np.array(wo) + bo  # (HW, m) -> conv1x1 -> (HW, C)
    np.testing.assert_allclose(d.reshape(4, 3), dist, rtol=1e-5)
    np.testing.assert_allclose(z.reshape(4, 2), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(d.sum(axis=-1), 1.0, rtol=1e-5)


def test_attention_norm_makes_both_softmaxes_independent_of_the_feature_scale(mr_slice):
    """With ``attention_norm`` the logits see E / rms(E): M and D are the same for E and 0.04 E
    (the feature scale of a trunk on [0, 1] MR), and they are computed as that formula says."""
    rng = np.random.default_rng(3)
    e = np.stack([mr_slice[116:140, 116:140] * w for w in rng.uniform(-1, 1, 4)], -1)[None]
    e = (e + 0.1 * rng.standard_normal(e.shape)).astype("float32")          # (1, 24, 24, 4)
    block = SERABlock(feature_dim=6, num_descriptors=3, attention_norm=True)
    plain = SERABlock(feature_dim=6, num_descriptors=3)
    block(e), plain(e)
    plain.set_weights(block.get_weights())
    _, big = block(e, return_attention=True)
    _, small = block(0.04 * e, return_attention=True)
    for key in ("attention_maps", "excitation"):   # equal up to the epsilon under the sqrt
        np.testing.assert_allclose(np.asarray(big[key]), np.asarray(small[key]), rtol=5e-3)
    # without the normalisation the same weights give a flatter M on the small features
    _, flat = plain(0.04 * e, return_attention=True)
    assert np.asarray(flat["attention_maps"]).max() < np.asarray(small["attention_maps"]).max()
    # and with it, M is the softmax of conv1x1(E / rms(E)) over positions
    kernel, bias = block.squeeze.attention_conv.get_weights()
    keys = e / np.sqrt(np.mean(e ** 2))
    expected = softmax(keys.reshape(-1, 4) @ kernel[0, 0] + bias, axis=0)
    np.testing.assert_allclose(np.asarray(big["attention_maps"]).reshape(-1, 3), expected,
                               rtol=1e-4, atol=1e-7)


def test_glore_reasoning_matches_formula():
    rng = np.random.default_rng(1)
    v = rng.standard_normal((2, 4, 3)).astype("float32")     # (B, m=4, n=3)
    layer = GloReReasoning()
    layer.build(v.shape)
    a_g = rng.standard_normal((3, 3)).astype("float32")
    b_g = rng.standard_normal(3).astype("float32")
    w_s = rng.standard_normal((4, 4)).astype("float32")
    layer.set_weights([a_g, b_g, w_s])
    out = np.asarray(layer(v))
    for i in range(2):
        graph = v[i] - (v[i] @ a_g.T + b_g)                  # (I - A_g) V, nodes mixed per state
        np.testing.assert_allclose(out[i], np.maximum(w_s.T @ graph, 0), rtol=1e-4, atol=1e-5)


def test_rs_gcn_reasoning_starts_as_identity_and_learns_affinity():
    rng = np.random.default_rng(2)
    v = rng.standard_normal((2, 8, 5)).astype("float32")
    layer = RsGCNReasoning()
    layer.build(v.shape)
    np.testing.assert_allclose(np.asarray(layer(v)), v, atol=1e-6)  # W_r's norm scale starts at 0
    gamma = layer.w_r_norm.gamma
    gamma.assign(np.ones(gamma.shape, "float32"))
    assert not np.allclose(np.asarray(layer(v)), v, atol=1e-3)


@pytest.mark.parametrize("kind, cls", [("glore", GloReReasoning), ("rs_gcn", RsGCNReasoning)])
def test_reasoning_is_chosen_by_name(kind, cls):
    layer = primitive_reasoning(kind, name="probe")
    assert type(layer) is cls and isinstance(layer, PrimitiveReasoning) and layer.name == "probe"
    block = SERABlock(feature_dim=6, num_descriptors=3, reasoning=kind)
    assert type(block.reason) is cls and block.get_config()["reasoning"] == kind
    with pytest.raises(ValueError, match="reasoning must be 'glore' or 'rs_gcn', got 'gcn'"):
        SERABlock(feature_dim=6, num_descriptors=3, reasoning="gcn")


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


def test_every_sera_weight_learns_from_the_first_steps(slab_slices):
    """Regression: with s = 0 at the start, the attention weights got no gradient and stayed
    at their initial values through training. Now each SERA variable moves within two steps."""
    x = np.stack([s[80:112, 80:112] for s in slab_slices[:4]])[..., None]
    inputs = keras.Input((None, None, 1))
    h = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    block = SERABlock(feature_dim=6, num_descriptors=4)
    outputs = keras.layers.Conv2D(1, 3, padding="same")(block(h))
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.SGD(0.1), loss="mae")
    before = {v.path: np.array(v) for v in block.weights}
    model.fit(x, x * 0.5 + 0.1, batch_size=4, epochs=2, verbose=0)
    for v in block.weights:
        assert not np.array_equal(before[v.path], np.array(v)), f"{v.path} did not learn"


def test_sera_never_builds_a_positions_by_positions_matrix():
    """Linear cost: no intermediate grows like (H*W)^2 (checked through the FLOP count)."""
    block = SERABlock(feature_dim=8, num_descriptors=4)
    small, large = block.flops((1, 32, 32, 16)), block.flops((1, 64, 64, 16))
    assert large == pytest.approx(4 * small, rel=0.01)


LAYERS = [
    (SecondOrderPooling, dict(feature_dim=6, num_descriptors=3), (1, 5, 7, 4)),
    (GloReReasoning, dict(), (1, 6, 3)),
    (RsGCNReasoning, dict(inter_dim=2), (1, 6, 3)),
    (SERABlock, dict(feature_dim=6, num_descriptors=3, reasoning="rs_gcn", residual_scale=0.5),
     (1, 5, 7, 4)),
    (SERABlock, dict(feature_dim=6, num_descriptors=3, residual_scale_init=0.3), (1, 5, 7, 4)),
    (Excitation, dict(num_descriptors=3, zero_init=True), None),
    (SERABlock, dict(feature_dim=6, num_descriptors=3), (1, 5, 7, 4)),
    (SERABlock, dict(feature_dim=6, num_descriptors=3, attention_norm=True), (1, 5, 7, 4)),
    (SecondOrderPooling, dict(feature_dim=6, num_descriptors=3, attention_norm=True),
     (1, 5, 7, 4)),
]


@pytest.mark.parametrize("cls,kwargs,shape", LAYERS)
def test_layer_config_round_trip(cls, kwargs, shape):
    layer = cls(**kwargs, name="probe")
    rng = np.random.default_rng(0)
    if shape is None:  # Excitation: [features, descriptors]
        x = [rng.standard_normal((1, 5, 7, 4)).astype("float32"),
             rng.standard_normal((1, 6, 3)).astype("float32")]
    else:
        x = rng.standard_normal(shape).astype("float32")
    out = layer(x)
    clone = cls.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    clone(x)
    clone.set_weights(layer.get_weights())
    for a, b in zip(keras.tree.flatten(out), keras.tree.flatten(clone(x))):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)
    # registered under the package: serialisation by name works
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is cls
    # the symbolic output shape(s) are the computed ones
    spec = keras.tree.map_structure(lambda a: keras.KerasTensor(a.shape), x)
    declared = [tuple(o.shape) for o in keras.tree.flatten(layer.compute_output_spec(spec))]
    assert declared == [tuple(o.shape) for o in keras.tree.flatten(out)]


def test_configs_saved_before_attention_norm_reload_without_it():
    config = SERABlock(feature_dim=6, num_descriptors=3, attention_norm=True).get_config()
    config.pop("attention_norm")
    restored = SERABlock.from_config(config)
    assert not restored.attention_norm and not restored.squeeze.attention_norm
    assert not restored.excite.attention_norm


def test_excitation_config_round_trip():
    layer = Excitation(num_descriptors=3, name="probe")
    clone = Excitation.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    clone.build([[1, 4, 4, 5], [1, 6, 3]])  # build() receives lists on reload
    assert clone.output_conv.filters == 5
