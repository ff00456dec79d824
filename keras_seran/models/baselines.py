"""Baselines for side-by-side comparison, built in the same style as :func:`seran`.

- :func:`bicubic`: bicubic upsampling as a model (no weights).
- :func:`srcnn`: SRCNN (9-5-5) on the bicubic-upsampled input, Dong et al. 2014.
- :func:`edsr`: EDSR-style residual network (no attention), sized to match SERAN's parameters.
- :func:`rcan`: RCAN-style network (residual groups of channel-attention blocks) of SERAN's size.
- :func:`rir`: SERAN's residual-in-residual frame with the SERA modules left out ("w/o SERA").
"""

from __future__ import annotations

import math

import keras

from keras_seran.config import SERAConfig, SERANConfig, check_scale
from keras_seran.layers import ResidualBlock, ResidualChannelAttentionBlock
from keras_seran.models.common import (
    conv3x3,
    long_skip,
    lr_input,
    residual_in_residual,
    resolve_config,
    upsampling_tail,
)
from keras_seran.models.seran import seran_param_count


def bicubic(scale: int = 2, channels: int = 1) -> keras.Model:
    """Bicubic interpolation (Keys, a=-0.5, half-pixel centres) as a weightless model."""
    check_scale(scale)
    inputs = lr_input(channels)
    outputs = keras.layers.UpSampling2D(scale, interpolation="bicubic", name="bicubic")(inputs)
    return keras.Model(inputs, outputs, name=f"bicubic_x{scale}")


def srcnn(scale: int = 2, channels: int = 1) -> keras.Model:
    """SRCNN 9-5-5 (64, 32 filters) refining the bicubic upsampling, with a global skip."""
    check_scale(scale)
    inputs = lr_input(channels)
    up = keras.layers.UpSampling2D(scale, interpolation="bicubic", name="bicubic")(inputs)
    x = keras.layers.Conv2D(64, 9, padding="same", activation="relu", name="conv1")(up)
    x = keras.layers.Conv2D(32, 5, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.Conv2D(channels, 5, padding="same", name="conv3")(x)
    outputs = keras.layers.Add(name="global_skip")([up, x])
    return keras.Model(inputs, outputs, name=f"srcnn_x{scale}")


def matched_edsr_blocks(cfg: SERANConfig) -> int:
    """Number of EDSR residual blocks whose network has at least SERAN's parameter count."""
    c = cfg.channels
    block = 2 * (9 * c * c + c)
    cfg = cfg.replace(sera=SERAConfig(cfg.sera.feature_dim, cfg.sera.num_descriptors))
    one, two = (seran_param_count(cfg.replace(num_groups=g)) for g in (1, 2))
    fixed = 2 * one - two  # shallow conv, trunk conv, upsampler, reconstruction
    seran_params = seran_param_count(cfg)
    return max(1, math.ceil((seran_params - fixed) / block))


def edsr(
    scale: int | None = None,
    preset: str | None = None,
    *,
    num_blocks: int | None = None,
    config: SERANConfig | None = None,
) -> keras.Model:
    """EDSR-style network: residual blocks, trunk conv, long skip, pixel-shuffle, output conv.

    With ``num_blocks=None`` the depth is chosen so the parameter count matches (just exceeds)
    SERAN's at the same preset: a fair, attention-free comparison.
    """
    cfg = resolve_config(scale, preset, config)
    n_blocks = num_blocks if num_blocks is not None else matched_edsr_blocks(cfg)
    inputs = lr_input(cfg.input_channels)
    shallow = conv3x3(cfg.channels, "shallow_conv")(inputs)
    x = shallow
    for b in range(n_blocks):
        x = ResidualBlock(cfg.channels, res_scale=cfg.res_scale, name=f"block{b}")(x)
    x = long_skip(x, shallow, cfg.channels)
    outputs = upsampling_tail(x, cfg.scale, cfg.channels, cfg.input_channels)
    return keras.Model(inputs, outputs, name=f"edsr_x{cfg.scale}")


def rir(
    scale: int | None = None, preset: str | None = None, *, config: SERANConfig | None = None
) -> keras.Model:
    """SERAN without its SERA modules: the same groups, blocks, convs and skips, so training it
    the same way measures what the attention itself adds (the "w/o SERA" ablation)."""
    from keras_seran.models.seran import seran

    cfg = resolve_config(scale, preset, config)
    return seran(config=cfg, with_sera=False, name=f"rir_x{cfg.scale}")


def rcan(
    scale: int | None = None,
    preset: str | None = None,
    *,
    reduction: int = 16,
    config: SERANConfig | None = None,
) -> keras.Model:
    """RCAN-style network: SERAN's frame with channel-attention blocks and no SERA module."""
    cfg = resolve_config(scale, preset, config)
    inputs, _, features = residual_in_residual(
        cfg,
        lambda g, b: ResidualChannelAttentionBlock(
            cfg.channels, res_scale=cfg.res_scale, reduction=reduction, name=f"group{g}_block{b}"
        ),
    )
    outputs = upsampling_tail(features, cfg.scale, cfg.channels, cfg.input_channels)
    return keras.Model(inputs, outputs, name=f"rcan_x{cfg.scale}")
