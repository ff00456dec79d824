"""Custom Keras layers: the SERA attention (squeeze, reasoning, excitation) and shared blocks."""

from keras_seran.layers.blocks import (
    ChannelAttention,
    PixelShuffle,
    ResidualBlock,
    ResidualChannelAttentionBlock,
)
from keras_seran.layers.reasoning import (
    GloReReasoning,
    PrimitiveReasoning,
    RsGCNReasoning,
    primitive_reasoning,
)
from keras_seran.layers.sera import Excitation, SecondOrderPooling, SERABlock

__all__ = [
    "SecondOrderPooling",
    "PrimitiveReasoning",
    "GloReReasoning",
    "RsGCNReasoning",
    "primitive_reasoning",
    "Excitation",
    "SERABlock",
    "ResidualBlock",
    "ChannelAttention",
    "ResidualChannelAttentionBlock",
    "PixelShuffle",
]
