"""Primitive relationship reasoning: GloRe and Rs_GCN formulas, identity start, choice by name."""

from __future__ import annotations

import numpy as np
import pytest

from keras_seran.layers import (
    GloReReasoning,
    PrimitiveReasoning,
    RsGCNReasoning,
    SERABlock,
    primitive_reasoning,
)
from tests.layer_checks import run_layer_test


def test_glore_reasoning_matches_formula():
    rng = np.random.default_rng(1)
    v = rng.standard_normal((2, 4, 3)).astype("float32")  # (B, m=4, n=3)
    layer = GloReReasoning()
    layer.build(v.shape)
    a_g = rng.standard_normal((3, 3)).astype("float32")
    b_g = rng.standard_normal(3).astype("float32")
    w_s = rng.standard_normal((4, 4)).astype("float32")
    layer.set_weights([a_g, b_g, w_s])
    out = np.asarray(layer(v))
    for i in range(2):
        graph = v[i] - (v[i] @ a_g.T + b_g)  # (I - A_g) V, nodes mixed per state
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
    with pytest.raises(
        ValueError, match=r"reasoning must be one of \('glore', 'rs_gcn'\), got 'gcn'"
    ):
        SERABlock(feature_dim=6, num_descriptors=3, reasoning="gcn")


B = 2
LAYER_CASES = [
    pytest.param(GloReReasoning, dict(), (B, 6, 4), (B, 6, 4), id="GloReReasoning"),
    pytest.param(RsGCNReasoning, dict(inter_dim=3), (B, 6, 4), (B, 6, 4), id="RsGCNReasoning"),
    pytest.param(RsGCNReasoning, dict(), (B, 8, 5), (B, 8, 5), id="RsGCNReasoning-default-width"),
]


@pytest.mark.parametrize("cls, kwargs, input_shape, output_shape", LAYER_CASES)
def test_shared_layer_checks(cls, kwargs, input_shape, output_shape):
    """On descriptors pooled from real MR features."""
    run_layer_test(cls, kwargs, input_shape, output_shape)
