"""Model analysis: FLOP counts and a view of the SERA attention intermediates."""

from __future__ import annotations

import keras


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

    explained = seran(config=config_from_model(model), return_attention=True,
                      name=f"{model.name}_attention")
    explained.set_weights(model.get_weights())
    return explained
