"""Shared blocks: residual behaviour, pixel shuffle order, and the shared layer checks."""

from __future__ import annotations

import numpy as np
import pytest

from keras_seran.layers import (
    ChannelAttention,
    PixelShuffle,
    ResidualBlock,
    ResidualChannelAttentionBlock,
)
from tests.layer_checks import run_layer_test


def test_pixel_shuffle_places_channels_as_subpixels():
    x = np.arange(2 * 3 * 4, dtype="float32").reshape(1, 2, 3, 4)
    y = np.asarray(PixelShuffle(2)(x))
    assert y.shape == (1, 4, 6, 1)
    # depth_to_space: channel c = 2*dy + dx goes to sub-pixel (dy, dx)
    for dy in range(2):
        for dx in range(2):
            np.testing.assert_array_equal(y[0, dy::2, dx::2, 0], x[0, :, :, 2 * dy + dx])


def test_residual_block_with_zero_branch_is_identity(mr_slice):
    x = np.repeat(mr_slice[None, 60:80, 60:90, None], 4, axis=-1)
    block = ResidualBlock(4)
    block.build(x.shape)
    block.conv2.set_weights([np.zeros_like(w) for w in block.conv2.get_weights()])
    np.testing.assert_allclose(np.asarray(block(x)), x, atol=1e-7)


def test_channel_attention_rescales_each_channel_in_0_1(mr_slice):
    x = np.stack([mr_slice[60:80, 60:90], 1 - mr_slice[60:80, 60:90]], axis=-1)[None]
    y = np.asarray(ChannelAttention(reduction=1)(x))
    ratio = y / np.where(x == 0, 1, x)
    per_channel = ratio.reshape(-1, 2)[x.reshape(-1, 2).min(axis=1) > 0]
    assert np.allclose(per_channel, per_channel[0], rtol=1e-5)
    assert np.all((per_channel > 0) & (per_channel < 1))


B = 2
LAYER_CASES = [
    pytest.param(
        ResidualBlock,
        dict(channels=16, res_scale=0.1),
        (B, 24, 20, 16),
        (B, 24, 20, 16),
        id="ResidualBlock",
    ),
    # 16 channels / 2: eight hidden units, none dead at the start on these features
    pytest.param(
        ChannelAttention, dict(reduction=2), (B, 24, 20, 16), (B, 24, 20, 16), id="ChannelAttention"
    ),
    pytest.param(
        ResidualChannelAttentionBlock,
        dict(channels=16, reduction=2),
        (B, 24, 20, 16),
        (B, 24, 20, 16),
        id="ResidualChannelAttentionBlock",
    ),
    pytest.param(PixelShuffle, dict(factor=2), (B, 12, 10, 8), (B, 24, 20, 2), id="PixelShuffle"),
    pytest.param(PixelShuffle, dict(factor=3), (B, 8, 6, 9), (B, 24, 18, 1), id="PixelShuffle-x3"),
]


@pytest.mark.parametrize("cls, kwargs, input_shape, output_shape", LAYER_CASES)
def test_shared_layer_checks(cls, kwargs, input_shape, output_shape):
    run_layer_test(cls, kwargs, input_shape, output_shape)
