"""SERAN: the residual-in-residual SR network of RCAN with one SERA module per residual group.

lr (B,H,W,1) -> conv3x3 (shallow, C)
  -> G x [ B x ResidualBlock -> SERABlock -> conv3x3, + group skip ]
  -> conv3x3, + long skip from the shallow features
  -> pixel-shuffle upsampler (x2, x3; x4 = two x2) -> conv3x3 (C -> 1) -> sr (B,H*s,W*s,1)
"""

from __future__ import annotations

from typing import Any

import keras

from keras_seran.config import SERAConfig, SERANConfig
from keras_seran.layers import PixelShuffle, SERABlock
from keras_seran.models.common import (
    residual_in_residual,
    resolve_config,
    sera_block,
    upsampling_tail,
)


def seran(
    scale: int | None = None,
    preset: str | None = None,
    *,
    config: SERANConfig | None = None,
    return_attention: bool = False,
    name: str | None = None,
    with_sera: bool = True,
    **overrides: Any,
) -> keras.Model:
    """Build SERAN as a functional ``keras.Model`` mapping (B, H, W, 1) -> (B, H*s, W*s, 1).

    Args:
        scale: 2, 3 or 4 (default ``DEFAULT_SCALE``, 2).
        preset: "small" (default, ``DEFAULT_PRESET``: CPU-trainable, the size of the bundled
            weights), "paper" (C=64, G=10, B=20, m=64, n=32) or "tiny".
        config: a full :class:`SERANConfig` instead of ``preset`` (the ``overrides`` still apply
            on top of it); a ``scale`` beside it must agree with ``config.scale``.
        return_attention: also output every SERA module's intermediates (see
            :func:`keras_seran.models.attention_model`); the output is then a dict.
        **overrides: fields of :class:`SERANConfig` to change (e.g. ``channels=48``, or
            ``sera={"reasoning": "rs_gcn"}``).
        with_sera: False leaves the SERA modules out (every group: blocks -> conv3x3): the
            "w/o SERA" ablation, :func:`keras_seran.models.rir`.
    """
    cfg = resolve_config(scale, preset, config, **overrides)
    if return_attention and not with_sera:
        raise ValueError("return_attention needs the SERA modules (with_sera=True)")
    attention: dict[str, Any] = {}

    def sera_module(g: int, y):
        block = sera_block(cfg, g)
        if not return_attention:
            return block(y)
        y, maps = block(y, return_attention=True)
        attention.update({f"group{g}_sera/{k}": v for k, v in maps.items()})
        return y

    inputs, _, features = residual_in_residual(cfg, attention=sera_module if with_sera else None)
    outputs = upsampling_tail(features, cfg.scale, cfg.channels, cfg.input_channels)
    if return_attention:
        outputs = {"sr": outputs, **attention}
    return keras.Model(inputs, outputs, name=name or f"seran_x{cfg.scale}")


def seran_param_count(cfg: SERANConfig) -> int:
    """Closed-form parameter count of :func:`seran` (GloRe reasoning, learnable s).

    conv k x k (a -> b): k*k*a*b + b. Per group: B residual blocks (two 3x3 C->C), one SERA
    (pooling: 1x1 C->m, C->n; reasoning: n*n + n + m*m; excitation: 1x1 C->n, m->C; s: 1) and a
    3x3 C->C; plus shallow 3x3 1->C, trunk 3x3 C->C, upsampler, reconstruction 3x3 C->1.
    """
    if cfg.sera.reasoning != "glore" or cfg.sera.residual_scale is not None:
        raise ValueError("closed form covers GloRe reasoning with a learnable residual scale")
    c, ci, m, n = cfg.channels, cfg.input_channels, cfg.sera.feature_dim, cfg.sera.num_descriptors

    def conv(k, a, b):
        return k * k * a * b + b

    block = 2 * conv(3, c, c)
    sera = (
        (conv(1, c, m) + conv(1, c, n)) + (n * n + n + m * m) + (conv(1, c, n) + conv(1, m, c)) + 1
    )
    group = cfg.blocks_per_group * block + sera + conv(3, c, c)
    up = 2 * conv(3, c, 4 * c) if cfg.scale == 4 else conv(3, c, c * cfg.scale**2)
    return conv(3, ci, c) + cfg.num_groups * group + conv(3, c, c) + up + conv(3, c, ci)


def config_from_model(model: keras.Model) -> SERANConfig:
    """Recover the :class:`SERANConfig` of a model built by :func:`seran` from its layers."""
    blocks = [l for l in model.layers if isinstance(l, SERABlock)]
    if not blocks:
        raise ValueError(f"model {model.name!r} is not a SERAN model (no SERABlock layer)")
    scale = 1
    for layer in model.layers:
        if isinstance(layer, PixelShuffle):
            scale *= layer.factor
    group0 = [l for l in model.layers if l.name.startswith("group0_block")]
    first = blocks[0]
    return SERANConfig(
        scale=scale,
        channels=model.get_layer("shallow_conv").filters,
        num_groups=len(blocks),
        blocks_per_group=len(group0),
        input_channels=model.inputs[0].shape[-1],
        res_scale=group0[0].res_scale,
        sera=SERAConfig(
            first.feature_dim,
            first.num_descriptors,
            first.reasoning,
            first.residual_scale,
            first.residual_scale_init,
            first.attention_norm,
        ),
    )
