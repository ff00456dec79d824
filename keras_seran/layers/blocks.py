"""Convolutional building blocks shared by SERAN and the baselines (EDSR-, RCAN-style).

All blocks map (B, H, W, C) -> (B, H, W, C) except :class:`PixelShuffle`, which maps
(B, H, W, C * r^2) -> (B, H*r, W*r, C).
"""

from __future__ import annotations

import keras
from keras import ops

from keras_seran.layers.shapes import as_shape

PACKAGE = "keras_seran"


def conv_flops(h: int, w: int, kernel: int, c_in: int, c_out: int) -> int:
    """Multiply-adds x 2 of a 'same' convolution producing an (h, w, c_out) map."""
    return 2 * h * w * kernel * kernel * c_in * c_out


@keras.saving.register_keras_serializable(package=PACKAGE)
class ResidualBlock(keras.layers.Layer):
    """EDSR residual block: x + res_scale * conv3x3(relu(conv3x3(x))), no batch norm."""

    def __init__(self, channels: int, res_scale: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.res_scale = float(res_scale)
        self.conv1 = keras.layers.Conv2D(
            self.channels, 3, padding="same", name="conv1", dtype=self.dtype_policy
        )
        self.conv2 = keras.layers.Conv2D(
            self.channels, 3, padding="same", name="conv2", dtype=self.dtype_policy
        )

    def build(self, input_shape):
        input_shape = as_shape(input_shape)
        self.conv1.build(input_shape)
        self.conv2.build(input_shape[:-1] + (self.channels,))
        super().build(input_shape)

    def residual(self, inputs):
        return self.conv2(ops.relu(self.conv1(inputs)))

    def call(self, inputs):
        return inputs + self.res_scale * self.residual(inputs)

    def compute_output_shape(self, input_shape):
        return as_shape(input_shape)

    def flops(self, input_shape) -> int:
        _, h, w, c = as_shape(input_shape)
        return conv_flops(h, w, 3, c, self.channels) + conv_flops(
            h, w, 3, self.channels, self.channels
        )

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "res_scale": self.res_scale}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ChannelAttention(keras.layers.Layer):
    """RCAN channel attention: x * sigmoid(W2 relu(W1 mean_hw(x))), first-order, per channel."""

    def __init__(self, reduction: int = 16, **kwargs):
        super().__init__(**kwargs)
        self.reduction = int(reduction)

    def build(self, input_shape):
        channels = as_shape(input_shape)[-1]
        hidden = max(1, channels // self.reduction)
        self.down = keras.layers.Dense(
            hidden, activation="relu", name="down", dtype=self.dtype_policy
        )
        self.up = keras.layers.Dense(
            channels, activation="sigmoid", name="up", dtype=self.dtype_policy
        )
        self.down.build((None, 1, 1, channels))
        self.up.build((None, 1, 1, hidden))
        super().build(input_shape)

    def call(self, inputs):
        return inputs * self.up(self.down(ops.mean(inputs, axis=(1, 2), keepdims=True)))

    def compute_output_shape(self, input_shape):
        return as_shape(input_shape)

    def flops(self, input_shape) -> int:
        _, h, w, c = as_shape(input_shape)
        return h * w * c * 2 + 4 * c * max(1, c // self.reduction)

    def get_config(self):
        return {**super().get_config(), "reduction": self.reduction}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ResidualChannelAttentionBlock(ResidualBlock):
    """RCAN's RCAB: a residual block whose branch ends with channel attention."""

    def __init__(self, channels: int, res_scale: float = 1.0, reduction: int = 16, **kwargs):
        super().__init__(channels, res_scale=res_scale, **kwargs)
        self.reduction = int(reduction)
        self.attention = ChannelAttention(
            self.reduction, name="channel_attention", dtype=self.dtype_policy
        )

    def build(self, input_shape):
        super().build(input_shape)
        self.attention.build(as_shape(input_shape)[:-1] + (self.channels,))

    def residual(self, inputs):
        return self.attention(super().residual(inputs))

    def flops(self, input_shape) -> int:
        return super().flops(input_shape) + self.attention.flops(input_shape)

    def get_config(self):
        return {**super().get_config(), "reduction": self.reduction}


@keras.saving.register_keras_serializable(package=PACKAGE)
class PixelShuffle(keras.layers.Layer):
    """Sub-pixel rearrangement (B, H, W, C*r^2) -> (B, H*r, W*r, C) via ``ops.depth_to_space``."""

    def __init__(self, factor: int, **kwargs):
        super().__init__(**kwargs)
        self.factor = int(factor)

    def call(self, inputs):
        return ops.depth_to_space(inputs, self.factor)

    def compute_output_shape(self, input_shape):
        b, h, w, c = as_shape(input_shape)
        r = self.factor
        return (b, None if h is None else h * r, None if w is None else w * r, c // (r * r))

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}
