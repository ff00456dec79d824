"""Custom Keras layers: the SERA attention (squeeze, reasoning, excitation) and shared blocks."""

from keras_seran.layers.blocks import (ChannelAttention, PixelShuffle, ResidualBlock,
                                       ResidualChannelAttentionBlock)
from keras_seran.layers.sera import Excitation, PrimitiveReasoning, SecondOrderPooling, SERABlock

__all__ = [
    "SecondOrderPooling", "PrimitiveReasoning", "Excitation", "SERABlock",
    "ResidualBlock", "ChannelAttention", "ResidualChannelAttentionBlock", "PixelShuffle",
]
