"""SERAN for through-plane super-resolution: restore a reformat interpolated along its rows.

    x (B,H,W,1): a 2D reformat of a thick-slice stack whose rows run along the slice axis,
                 interpolated onto the fine grid (cubic)
      -> conv3x3 (shallow, C) -> G x [ B x ResidualBlock -> SERABlock -> conv3x3, + group skip ]
      -> conv3x3, + long skip -> conv3x3 (C -> 1), + x  -> (B,H,W,1)

The trunk is SERAN's (same layer names, so an in-plane SERAN's trunk initialises it); there is
no upsampler: the grid is already fine, of any thick-to-fine ratio, and the network adds the
detail the thick slices lost. The reconstruction conv starts at zero, so the untrained network
is the cubic interpolation itself.
"""

from __future__ import annotations

from typing import Any

import keras

from keras_seran.config import SERANConfig
from keras_seran.models.common import conv3x3, residual_in_residual, resolve_config, sera_block


def seran_through_plane(
    preset: str | None = None,
    *,
    config: SERANConfig | None = None,
    name: str = "seran_through_plane",
    **overrides: Any,
) -> keras.Model:
    """Build the through-plane SERAN, a functional ``keras.Model`` (B, H, W, 1) -> (B, H, W, 1).

    Args:
        preset: "small" (default, the bundled size), "paper" or "tiny"; its scale is unused.
        config: a full :class:`SERANConfig` instead of ``preset`` (scale unused).
        **overrides: fields of :class:`SERANConfig` to change.
    """
    cfg = resolve_config(None if config is not None else 2, preset, config, **overrides)
    inputs, _, features = residual_in_residual(cfg, attention=lambda g, y: sera_block(cfg, g)(y))
    detail = conv3x3(
        cfg.input_channels, "reconstruction", dtype="float32", kernel_initializer="zeros"
    )(features)
    outputs = keras.layers.Add(name="input_skip", dtype="float32")([inputs, detail])
    return keras.Model(inputs, outputs, name=name)
