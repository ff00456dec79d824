"""Model analysis: FLOP counts, a view of the SERA attention intermediates, and how much the
attention is used (how peaked its softmaxes are, what switching a module off costs)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np


def _concrete_clone(model: keras.Model, input_hw: tuple[int, int]) -> keras.Model:
    """A fresh copy of ``model``'s architecture on a fixed (1, H, W, C) input: static shapes."""
    channels = model.inputs[0].shape[-1]
    inputs = keras.Input(shape=(*input_hw, channels), batch_size=1)
    return keras.models.clone_model(model, input_tensors=inputs)


def _shape(t):
    return [tuple(x.shape) for x in t] if isinstance(t, (list, tuple)) else tuple(t.shape)


def count_flops(model: keras.Model, input_hw: tuple[int, int] = (128, 128)) -> int:
    """FLOPs (2 x multiply-adds) of one forward pass on a (1, H, W, 1) input.

    Counts convolutions, dense layers, and the matmuls inside the SERA and channel-attention
    layers (through their ``flops`` method); element-wise ops, softmax and interpolation are not
    counted (they are < 1% for these networks).
    """
    clone = _concrete_clone(model, input_hw)
    total = 0
    for layer in clone.layers:
        if hasattr(layer, "flops"):
            total += int(layer.flops(_shape(layer.input)))
        elif isinstance(layer, keras.layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            kh, kw = layer.kernel_size
            total += 2 * h * w * kh * kw * layer.input.shape[-1] * c_out // layer.groups
        elif isinstance(layer, keras.layers.Dense):
            positions = 1
            for d in layer.input.shape[:-1]:
                positions *= d
            total += 2 * positions * layer.input.shape[-1] * layer.units
    return total


def attention_model(model: keras.Model) -> keras.Model:
    """A copy of a SERAN ``model`` (same weights) that also outputs the SERA intermediates.

    Returns a model mapping the LR input to a dict with ``"sr"`` (the normal output) and, for
    each SERA layer ``name``: ``name/attention_maps`` M (B,H,W,n, softmax over positions),
    ``name/descriptors`` V (B,m,n), ``name/reasoned_descriptors`` V* (B,m,n) and
    ``name/excitation`` D (B,H,W,n, softmax over descriptors).
    """
    from keras_seran.models.seran import config_from_model, seran

    explained = seran(
        config=config_from_model(model), return_attention=True, name=f"{model.name}_attention"
    )
    explained.set_weights(model.get_weights())
    return explained


@dataclass(frozen=True)
class AttentionUse:
    """How one SERA module of a trained network attends, on one LR slice.

    Attributes:
        name: the SERA layer's name.
        residual_scale: s in ``out = E + s * Z``.
        support: median over the n maps M of their effective support exp(entropy) / (H*W):
            1.0 is a uniform average over the slice (global pooling), small is local.
        excitation_peak: mean over positions of the largest weight of D (1/n is uniform).
    """

    name: str
    residual_scale: float
    support: float
    excitation_peak: float


def effective_support(maps: np.ndarray) -> np.ndarray:
    """exp(entropy) / (H*W) of each attention map of one image: M (H, W, n) -> (n,).

    1.0 for a uniform map (an average over the whole image), 1/(H*W) for a single position.
    """
    m = np.asarray(maps, "float64").reshape(-1, np.shape(maps)[-1])
    return np.exp(-(m * np.log(m + 1e-12)).sum(axis=0)) / m.shape[0]


def attention_use(model: keras.Model, lr_slice: np.ndarray) -> list[AttentionUse]:
    """Per SERA module of ``model``: how peaked M and D are on ``lr_slice`` (h, w)."""
    from keras_seran.layers import SERABlock

    out = attention_model(model).predict(
        np.asarray(lr_slice, "float32")[None, ..., None], verbose=0
    )
    rows = []
    for block in (l for l in model.layers if isinstance(l, SERABlock)):
        support = effective_support(out[f"{block.name}/attention_maps"][0])
        d = np.asarray(out[f"{block.name}/excitation"][0])
        s = block.residual_scale if block.residual_scale is not None else block.scale.numpy()
        rows.append(
            AttentionUse(
                block.name, float(s), float(np.median(support)), float(d.max(axis=-1).mean())
            )
        )
    return rows


def sera_ablation(model: keras.Model, score: Callable[[keras.Model], float]) -> dict[str, float]:
    """Change of ``score(model)`` when each SERA module in turn is switched off (Z = 0, the
    module becomes the identity), e.g. a PSNR: negative means the module helps.

    Switches a module off by zeroing its excitation output conv (works for a learnable or a
    fixed s) and restores the weights afterwards, also on error.
    """
    from keras_seran.layers import SERABlock

    base = score(model)
    deltas = {}
    for block in (l for l in model.layers if isinstance(l, SERABlock)):
        conv = block.excite.output_conv
        saved = conv.get_weights()
        try:
            conv.set_weights([np.zeros_like(w) for w in saved])
            deltas[block.name] = float(score(model) - base)
        finally:
            conv.set_weights(saved)
    return deltas
