"""Geometric self-ensemble: exact inverse transforms, equivariance, and its use in SuperResolver
and the evaluation protocol, on real MR slices."""

from __future__ import annotations

import numpy as np
import pytest

from keras_seran.inference.ensemble import TRANSFORMS, ensembled, self_ensemble


def _nearest_x2(batch):
    """An equivariant 'network': nearest-neighbour x2 upscaling."""
    return np.repeat(np.repeat(batch, 2, axis=1), 2, axis=2)


def _biased_x2(batch):
    """A network that is not equivariant: nearest x2 plus a ramp along the width."""
    up = _nearest_x2(batch).astype(np.float64)
    return up + np.linspace(0.0, 1.0, up.shape[2])[None, None, :]


def test_the_eight_transforms_are_the_dihedral_group():
    assert len(set(TRANSFORMS)) == 8


def test_equivariant_network_is_unchanged(mr_slice):
    batch = mr_slice[None, 40:140, 30:170]  # non-square on purpose
    np.testing.assert_allclose(self_ensemble(_nearest_x2, batch), _nearest_x2(batch), atol=1e-6)


def test_ensemble_averages_the_transformed_passes(mr_slice):
    batch = mr_slice[None, 40:140, 30:170]
    out = self_ensemble(_biased_x2, batch)
    # the ramp is averaged over every orientation: its mean is 0.5 everywhere along each axis
    np.testing.assert_allclose(out - _nearest_x2(batch), 0.5, atol=1e-5)
    assert ensembled(_biased_x2, False) is _biased_x2


@pytest.mark.parametrize(
    "transform",
    [
        lambda a: a[:, ::-1],
        lambda a: a[:, :, ::-1],
        lambda a: np.rot90(a, 1, axes=(1, 2)),
        lambda a: np.swapaxes(a, 1, 2),
    ],
)
def test_ensemble_is_equivariant_even_for_a_biased_network(mr_slice, transform):
    batch = mr_slice[None, 40:140, 30:170]
    lhs = self_ensemble(_biased_x2, np.ascontiguousarray(transform(batch)))
    np.testing.assert_allclose(lhs, transform(self_ensemble(_biased_x2, batch)), atol=1e-5)


def test_super_resolver_self_ensemble_on_a_real_slice(tiny_seran, mr_slice):
    from keras_seran.inference.resolver import SuperResolver

    plain = SuperResolver(tiny_seran, scale=2)
    plus = SuperResolver(tiny_seran, scale=2, self_ensemble=True)
    img = mr_slice[60:124, 50:146] * 300.0  # any intensity range
    out = plus.predict_slice(img)
    assert out.shape == (128, 192) and out.dtype == np.float32
    np.testing.assert_allclose(plus.predict_slice(img.T), out.T, rtol=1e-4, atol=1e-3)
    # equals the mean of the 8 single passes done by hand
    stats = plus._fit(img, None)
    x = stats.apply(img)[None]
    passes = []
    for k, flip in TRANSFORMS:
        t = np.rot90(x, k, axes=(1, 2))
        y = plain._forward(np.ascontiguousarray(t[:, :, ::-1] if flip else t))
        passes.append(np.rot90(y[:, :, ::-1] if flip else y, -k, axes=(1, 2)))
    manual = np.mean(passes, axis=0)
    np.testing.assert_allclose(plus.predict_normalized(x), manual, atol=1e-5)
    assert "self_ensemble=True" in repr(plus)
