"""Pieces shared by every SR network here: the input, the residual groups, the pixel-shuffle
upsampler, the output."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras

from keras_seran.config import (
    DEFAULT_PRESET,
    DEFAULT_SCALE,
    SERANConfig,
    preset_config,
    with_overrides,
)
from keras_seran.layers import PixelShuffle, ResidualBlock, SERABlock


def resolve_config(
    scale: int | None, preset: str | None, config: SERANConfig | None, **overrides: Any
) -> SERANConfig:
    """The config a model builder uses: ``config`` (with ``overrides``), else ``preset`` at
    ``scale`` (defaults: ``DEFAULT_PRESET``, ``DEFAULT_SCALE``).

    A ``scale`` or ``preset`` passed beside ``config`` is checked, not dropped: a different scale
    or any preset is a ValueError (``seran(config=cfg, scale=4)`` used to build ``cfg``'s x2).
    """
    if config is None:
        return preset_config(
            DEFAULT_PRESET if preset is None else preset,
            DEFAULT_SCALE if scale is None else scale,
            **overrides,
        )
    if preset is not None:
        raise ValueError(
            f"pass either preset={preset!r} or config, not both (the config has every size already)"
        )
    if scale is not None and scale != config.scale:
        raise ValueError(
            f"scale={scale!r} contradicts config.scale={config.scale}; pass one of "
            "them, or config.replace(scale=...)"
        )
    return with_overrides(config, **overrides)


def lr_input(channels: int = 1) -> keras.KerasTensor:
    """Grayscale LR input of any height and width: (B, H, W, channels)."""
    return keras.Input(shape=(None, None, channels), name="lr")


def upsampler(x, scale: int, channels: int, prefix: str = "upsample"):
    """Pixel-shuffle upsampling (conv to C*r^2, depth_to_space): x2, x3, or x4 as two x2 steps
    (``scale`` as checked by :class:`~keras_seran.config.SERANConfig`)."""
    steps = [2, 2] if scale == 4 else [scale]
    for i, r in enumerate(steps):
        x = keras.layers.Conv2D(channels * r * r, 3, padding="same", name=f"{prefix}_conv{i}")(x)
        x = PixelShuffle(r, name=f"{prefix}_shuffle{i}")(x)
    return x


def conv3x3(channels: int, name: str, **kwargs) -> keras.layers.Conv2D:
    return keras.layers.Conv2D(channels, 3, padding="same", name=name, **kwargs)


def residual_groups(
    x,
    cfg: SERANConfig,
    block: Callable[[int, int], keras.layers.Layer],
    attention: Callable[[int, Any], Any] | None = None,
):
    """The residual-in-residual trunk of RCAN / SERAN: ``cfg.num_groups`` times
    ``[cfg.blocks_per_group x block -> attention -> conv3x3, + group skip]``.

    ``block(g, b)`` makes block b of group g (a layer taking and giving (B, H, W, C));
    ``attention(g, y)``, when given, is applied to group g's features after its blocks (SERAN's
    SERA module). Layer names: ``group{g}_conv``, ``group{g}_skip``.
    """
    for g in range(cfg.num_groups):
        y = x
        for b in range(cfg.blocks_per_group):
            y = block(g, b)(y)
        if attention is not None:
            y = attention(g, y)
        y = conv3x3(cfg.channels, f"group{g}_conv")(y)
        x = keras.layers.Add(name=f"group{g}_skip")([x, y])
    return x


def residual_in_residual(
    cfg: SERANConfig,
    block: Callable[[int, int], keras.layers.Layer] | None = None,
    attention: Callable[[int, Any], Any] | None = None,
):
    """``(inputs, shallow, features)`` of the residual-in-residual networks (SERAN, RCAN, RIR,
    through-plane): LR input (B, H, W, 1) -> shallow conv3x3 (C) -> :func:`residual_groups` ->
    conv3x3, + long skip from the shallow features (B, H, W, C).

    ``block`` defaults to the plain :class:`ResidualBlock` of ``cfg``'s size.
    """
    if block is None:
        block = lambda g, b: ResidualBlock(  # noqa: E731
            cfg.channels, res_scale=cfg.res_scale, name=f"group{g}_block{b}"
        )
    inputs = lr_input(cfg.input_channels)
    shallow = conv3x3(cfg.channels, "shallow_conv")(inputs)
    trunk = residual_groups(shallow, cfg, block, attention)
    return inputs, shallow, long_skip(trunk, shallow, cfg.channels)


def long_skip(trunk, shallow, channels: int):
    """conv3x3 on the trunk's output, + the shallow features (layers ``trunk_conv``,
    ``long_skip``)."""
    x = conv3x3(channels, "trunk_conv")(trunk)
    return keras.layers.Add(name="long_skip")([shallow, x])


def sera_block(cfg: SERANConfig, group: int) -> SERABlock:
    """Group ``group``'s SERA module with the sizes of ``cfg.sera`` (named ``group{g}_sera``)."""
    sera = cfg.sera
    return SERABlock(
        sera.feature_dim,
        sera.num_descriptors,
        reasoning=sera.reasoning,
        residual_scale=sera.residual_scale,
        residual_scale_init=sera.residual_scale_init,
        attention_norm=sera.attention_norm,
        name=f"group{group}_sera",
    )


def upsampling_tail(features, scale: int, channels: int, out_channels: int = 1):
    """The end of every in-plane network here: pixel-shuffle upsampling of the (B, H, W, C)
    features, then the reconstruction conv3x3 (C -> out_channels): (B, H*s, W*s, out)."""
    x = upsampler(features, scale, channels)
    # float32 even under a mixed-precision policy: the image itself is not rounded to 8 bits
    return conv3x3(out_channels, "reconstruction", dtype="float32")(x)
