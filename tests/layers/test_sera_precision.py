"""SERA under mixed precision: the softmax over H*W positions must not lose the attention.

At 512x512 the softmax sums 262,144 terms: in float16 that sum passes 65,504 as soon as the map
is not peaked, the denominator becomes inf and the map all zeros (seen with the bundled x2
weights at 512x512 LR, bench/gpu_check.py: 4 of 48 maps lost). The layer computes that softmax
and the pooling in float32 under any policy.
"""

from __future__ import annotations

import cv2
import keras
import numpy as np
import pytest

from keras_seran.layers import SecondOrderPooling


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
    big = cv2.resize(mr_slice, (512, 512), interpolation=cv2.INTER_CUBIC)
    # four channels of real MR: intensity, its square, its root, its complement
    x = np.stack([big, big ** 2, np.sqrt(np.clip(big, 0, None)), 1 - big], -1)[None]
    v32, m32 = (np.asarray(t, "float64") for t in _pooling("float32")(x.astype("float32")))
    v, m = (np.asarray(keras.ops.convert_to_numpy(t), "float64") for t in _pooling(policy)(x))
    sums32 = m32.reshape(-1, 4).sum(axis=0)
    np.testing.assert_allclose(sums32, 1.0, atol=1e-4)
    # a float16 denominator would overflow here: the float32 sum of exp(logit - max) is > 65,504
    logits = np.einsum("...c,cn->...n", x / np.sqrt(np.mean(x ** 2)), np.linspace(
        0.05, 0.3, 16).reshape(4, 4)).reshape(-1, 4)
    assert np.exp(logits - logits.max(axis=0)).sum(axis=0).min() > 65504
    sums = m.reshape(-1, 4).sum(axis=0)
    np.testing.assert_allclose(sums, 1.0, atol=0.01)
    tv = 0.5 * np.abs(m - m32).reshape(-1, 4).sum(axis=0)
    assert tv.max() < 0.02
    np.testing.assert_allclose(v, v32, rtol=0.02, atol=0.02 * np.abs(v32).max())
