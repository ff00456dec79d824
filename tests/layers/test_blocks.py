"""Shared blocks: shapes, residual behaviour, pixel shuffle order, config round trips."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_seran.layers import (ChannelAttention, PixelShuffle, ResidualBlock,
                                ResidualChannelAttentionBlock)


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


@pytest.mark.parametrize("layer", [ResidualBlock(8, res_scale=0.1),
                                   ResidualChannelAttentionBlock(8, reduction=4),
                                   ChannelAttention(reduction=4), PixelShuffle(3)])
def test_block_config_round_trip(layer):
    x = np.random.default_rng(0).standard_normal((1, 5, 6, 18)).astype("float32")
    x = x[..., :8] if not isinstance(layer, PixelShuffle) else x
    out = layer(x)
    clone = layer.__class__.from_config(layer.get_config())
    clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(np.asarray(clone(x)), np.asarray(out), rtol=1e-6)
    assert keras.saving.get_registered_name(layer.__class__).startswith("keras_seran>")
    # the declared output shape is the computed one, also with a list and unknown H, W
    assert tuple(layer.compute_output_shape(list(x.shape))) == tuple(out.shape)
    declared = layer.compute_output_shape((None, None, None, x.shape[-1]))
    assert declared[-1] == out.shape[-1]
