"""Squeeze-and-excitation reasoning attention (SERA), Zhang et al., CVPR 2021, as Keras 3 layers.

Shapes use B (batch), H, W (spatial), C (feature channels), m (descriptor dimension) and
n (number of descriptors). The three steps of the paper's Fig. 2 are separate layers so that
they compose (and can be inspected), and :class:`SERABlock` strings them together with the
residual scaling ``out = E + s * Z``:

    E (B,H,W,C) --SecondOrderPooling--> V (B,m,n), M (B,H,W,n)   softmax over the H*W positions
    V           --PrimitiveReasoning--> V* (B,m,n)                graph reasoning over the n nodes
                                                                  (GloRe or Rs_GCN: .reasoning)
    E, V*       --Excitation---------> Z (B,H,W,C), D (B,H,W,n)  softmax over the n descriptors
    out = E + s * Z     (Z starts at zero: the block starts as the identity)

Everything is reshape + matmul + softmax (no einsum, no H*W x H*W matrix), so the cost is linear
in the number of pixels and the graph exports to LiteRT with builtin ops and to ONNX/TensorRT.
Only ``keras.ops`` is used: the layers run on the TensorFlow, JAX and PyTorch backends.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_seran.layers.reasoning import primitive_reasoning
from keras_seran.layers.shapes import as_shape, is_multi_shape

PACKAGE = "keras_seran"


def _flatten_positions(x):
    """(B, H, W, K) -> (B, H*W, K), with dynamic B, H, W."""
    return ops.reshape(x, (ops.shape(x)[0], -1, ops.shape(x)[-1]))


def rms_normalize(x, epsilon: float = 1e-6):
    """x / sqrt(mean(x^2) + eps) over (H, W, C) of each sample: (B, H, W, C) -> same shape.

    Used on E before the attention convs (``attention_norm=True``) so that the softmax
    temperature does not depend on the intensity scale of the input (on [0, 1] MR the trunk's
    small features leave both softmaxes nearly uniform otherwise). A single scalar per sample,
    so conv1x1 of the result is still a linear map of E (the paper's form) with a
    data-independent temperature. Computed in float32.
    """
    x32 = ops.cast(x, "float32")
    mean_square = ops.mean(x32 * x32, axis=(1, 2, 3), keepdims=True)
    return ops.cast(x32 * ops.rsqrt(mean_square + epsilon), x.dtype)  # int8 LiteRT kernels exist


def _unflatten_positions(x, like):
    """(B, H*W, K) -> (B, H, W, K), taking H and W from ``like`` (B, H, W, *)."""
    s = ops.shape(like)
    return ops.reshape(x, (s[0], s[1], s[2], ops.shape(x)[-1]))


@keras.saving.register_keras_serializable(package=PACKAGE)
class SecondOrderPooling(keras.layers.Layer):
    """Squeeze: second-order attention pooling (A^2-Nets "gather").

    A = conv1x1(E) -> (B, HW, m) feature maps; M = softmax over positions of conv1x1(E) ->
    (B, HW, n) attention maps; V = A^T M -> (B, m, n): n global descriptors of dimension m, each
    an attention-weighted average of the features over the whole image.

    Call returns ``(V, M)`` with V of shape (B, m, n) and M of shape (B, H, W, n); every M[..., j]
    sums to 1 over the H*W positions. ``attention_norm=True`` computes the attention logits on
    :func:`rms_normalize` (E) (scale-invariant M); A is always computed on E itself. The softmax
    and V are computed in float32 under a mixed policy (M is returned in float32, V in the
    compute dtype).
    """

    def __init__(
        self, feature_dim: int, num_descriptors: int, attention_norm: bool = False, **kwargs
    ):
        super().__init__(**kwargs)
        self.feature_dim = int(feature_dim)
        self.num_descriptors = int(num_descriptors)
        self.attention_norm = bool(attention_norm)
        self.feature_conv = keras.layers.Conv2D(
            self.feature_dim, 1, name="feature_conv", dtype=self.dtype_policy
        )
        self.attention_conv = keras.layers.Conv2D(
            self.num_descriptors, 1, name="attention_conv", dtype=self.dtype_policy
        )

    def build(self, input_shape):
        input_shape = as_shape(input_shape)
        self.feature_conv.build(input_shape)
        self.attention_conv.build(input_shape)
        super().build(input_shape)

    def call(self, inputs):
        features = _flatten_positions(self.feature_conv(inputs))  # (B, HW, m)
        keys = rms_normalize(inputs) if self.attention_norm else inputs
        logits = self.attention_conv(keys)  # (B, H, W, n)
        # float32 under any policy: a float16 sum over HW positions overflows (65,504) once a
        # map is broad (512x512: 262,144 terms) and the map becomes zeros, and its weights
        # (~1/HW) are float16 subnormals; bfloat16 sums drift by ~1 %. No-op casts in float32.
        attention = ops.softmax(ops.cast(_flatten_positions(logits), "float32"), axis=1)
        descriptors = ops.matmul(
            ops.transpose(ops.cast(features, "float32"), (0, 2, 1)), attention
        )  # (B, m, n)
        return ops.cast(descriptors, features.dtype), _unflatten_positions(attention, logits)

    def compute_output_shape(self, input_shape):
        b, h, w, _ = as_shape(input_shape)
        return (b, self.feature_dim, self.num_descriptors), (b, h, w, self.num_descriptors)

    def compute_output_spec(self, inputs):
        # M is float32 under any policy (see call): the symbolic dtype says so too
        descriptors, maps = self.compute_output_shape(inputs.shape)
        return (
            keras.KerasTensor(descriptors, dtype=self.compute_dtype),
            keras.KerasTensor(maps, dtype="float32"),
        )

    def flops(self, input_shape) -> int:
        _, h, w, c = as_shape(input_shape)
        hw = h * w
        m, n = self.feature_dim, self.num_descriptors
        return 2 * hw * c * (m + n) + 2 * hw * m * n

    def get_config(self):
        return {
            **super().get_config(),
            "feature_dim": self.feature_dim,
            "num_descriptors": self.num_descriptors,
            "attention_norm": self.attention_norm,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class Excitation(keras.layers.Layer):
    """Excitation: distribute the reasoned descriptors back to every position (A^2-Nets "distribute").

    Call on ``[E, V*]`` with E (B, H, W, C) and V* (B, m, n). Attention vectors
    D = softmax over the n descriptors of conv1x1(E) -> (B, HW, n): each position selects a subset
    of the descriptors; Z = D V*^T -> (B, HW, m) -> reshape -> conv1x1 back to C channels.

    Returns ``(Z, D)``: Z (B, H, W, C) and D (B, H, W, n); D sums to 1 over the last axis.
    ``zero_init=True`` starts the output conv at zero (Z = 0): a residual branch that starts as
    nothing but still receives gradients (used by :class:`SERABlock`). ``attention_norm=True``
    computes D's logits on :func:`rms_normalize` (E).
    """

    def __init__(
        self, num_descriptors: int, zero_init: bool = False, attention_norm: bool = False, **kwargs
    ):
        super().__init__(**kwargs)
        self.num_descriptors = int(num_descriptors)
        self.zero_init = bool(zero_init)
        self.attention_norm = bool(attention_norm)
        self.attention_conv = keras.layers.Conv2D(
            self.num_descriptors, 1, name="attention_conv", dtype=self.dtype_policy
        )
        self.output_conv = None

    def build(self, input_shape):
        if not is_multi_shape(input_shape):
            raise ValueError("Excitation is called on [features, descriptors]")
        feature_shape, descriptor_shape = (as_shape(s) for s in input_shape)
        channels, m = feature_shape[-1], descriptor_shape[1]
        self.attention_conv.build(feature_shape)
        init = "zeros" if self.zero_init else "glorot_uniform"
        self.output_conv = keras.layers.Conv2D(
            channels, 1, name="output_conv", kernel_initializer=init, dtype=self.dtype_policy
        )
        self.output_conv.build(feature_shape[:-1] + (m,))
        super().build(input_shape)

    def call(self, inputs):
        features, descriptors = inputs
        keys = rms_normalize(features) if self.attention_norm else features
        logits = self.attention_conv(keys)  # (B, H, W, n)
        attention = ops.softmax(logits, axis=-1)  # over descriptors
        gathered = ops.matmul(
            _flatten_positions(attention), ops.transpose(descriptors, (0, 2, 1))
        )  # (B, HW, m)
        return self.output_conv(_unflatten_positions(gathered, features)), attention

    def compute_output_shape(self, input_shape):
        feature_shape = as_shape(input_shape[0])
        return feature_shape, feature_shape[:-1] + (self.num_descriptors,)

    def flops(self, input_shape) -> int:
        feature_shape, descriptor_shape = (as_shape(s) for s in input_shape)
        _, h, w, c = feature_shape
        m, n = descriptor_shape[1], self.num_descriptors
        return 2 * h * w * (c * n + n * m + m * c)

    def get_config(self):
        return {
            **super().get_config(),
            "num_descriptors": self.num_descriptors,
            "zero_init": self.zero_init,
            "attention_norm": self.attention_norm,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class SERABlock(keras.layers.Layer):
    """The SERA module: squeeze -> reasoning -> excitation, with residual scaling.

    ``out = E + s * Z`` with s a learnable scalar (``residual_scale=None``, starting at
    ``residual_scale_init``) or a fixed constant. ``reasoning`` names the PRR step ("glore" or
    "rs_gcn", :func:`~keras_seran.layers.reasoning.primitive_reasoning`). ``attention_norm=True``
    computes both softmaxes' logits on the RMS-normalised E (see :func:`rms_normalize`); the layer
    default is False so that files saved before the option existed reload unchanged (models built
    by :func:`keras_seran.models.seran` take it from :class:`keras_seran.config.SERAConfig`). The
    excitation's output conv starts at zero, so the block starts as the identity: at the first
    step only that conv gets a gradient, and every other weight of the module as soon as it is
    nonzero (for ``rs_gcn``, theta/phi/g/w_r once the reasoning's zero-initialised batch norm
    has moved too).

    Input (B, H, W, C) -> output (B, H, W, C). With ``return_attention=True`` the call returns
    ``(out, {"attention_maps": M, "descriptors": V, "reasoned_descriptors": V*,
    "excitation": D})`` for inspection (see ``keras_seran.models.attention_model``).
    """

    def __init__(
        self,
        feature_dim: int = 64,
        num_descriptors: int = 32,
        reasoning: str = "glore",
        residual_scale: float | None = None,
        residual_scale_init: float = 1.0,
        attention_norm: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.feature_dim = int(feature_dim)
        self.num_descriptors = int(num_descriptors)
        self.reasoning = reasoning
        self.residual_scale = None if residual_scale is None else float(residual_scale)
        self.residual_scale_init = float(residual_scale_init)
        self.attention_norm = bool(attention_norm)
        self.squeeze = SecondOrderPooling(
            self.feature_dim,
            self.num_descriptors,
            attention_norm=self.attention_norm,
            name="squeeze",
            dtype=self.dtype_policy,
        )
        self.reason = primitive_reasoning(reasoning, name="reasoning", dtype=self.dtype_policy)
        self.excite = Excitation(
            self.num_descriptors,
            zero_init=True,
            attention_norm=self.attention_norm,
            name="excitation",
            dtype=self.dtype_policy,
        )

    def build(self, input_shape):
        input_shape = as_shape(input_shape)
        self.squeeze.build(input_shape)
        descriptor_shape = (input_shape[0], self.feature_dim, self.num_descriptors)
        self.reason.build(descriptor_shape)
        self.excite.build([input_shape, descriptor_shape])
        if self.residual_scale is None:
            self.scale = self.add_weight(
                name="residual_scale",
                shape=(),
                initializer=keras.initializers.Constant(self.residual_scale_init),
            )
        super().build(input_shape)

    def call(self, inputs, training=None, return_attention=False):
        descriptors, attention_maps = self.squeeze(inputs)
        reasoned = self.reason(descriptors, training=training)
        excited, excitation = self.excite([inputs, reasoned])
        s = self.scale if self.residual_scale is None else self.residual_scale
        outputs = inputs + ops.cast(s, excited.dtype) * excited
        if not return_attention:
            return outputs
        return outputs, {
            "attention_maps": attention_maps,
            "descriptors": descriptors,
            "reasoned_descriptors": reasoned,
            "excitation": excitation,
        }

    def flops(self, input_shape) -> int:
        input_shape = as_shape(input_shape)
        descriptor_shape = (input_shape[0], self.feature_dim, self.num_descriptors)
        return (
            self.squeeze.flops(input_shape)
            + self.reason.flops(descriptor_shape)
            + self.excite.flops([input_shape, descriptor_shape])
        )

    def get_config(self):
        return {
            **super().get_config(),
            "feature_dim": self.feature_dim,
            "num_descriptors": self.num_descriptors,
            "reasoning": self.reasoning,
            "residual_scale": self.residual_scale,
            "residual_scale_init": self.residual_scale_init,
            "attention_norm": self.attention_norm,
        }
