"""Squeeze-and-excitation reasoning attention (SERA), Zhang et al., CVPR 2021, as Keras 3 layers.

Shapes use B (batch), H, W (spatial), C (feature channels), m (descriptor dimension) and
n (number of descriptors). The three steps of the paper's Fig. 2 are separate layers so that
they compose (and can be inspected), and :class:`SERABlock` strings them together with the
residual scaling ``out = E + s * Z``:

    E (B,H,W,C) --SecondOrderPooling--> V (B,m,n), M (B,H,W,n)   softmax over the H*W positions
    V           --PrimitiveReasoning--> V* (B,m,n)                graph reasoning over the n nodes
    E, V*       --Excitation---------> Z (B,H,W,C), D (B,H,W,n)  softmax over the n descriptors
    out = E + s * Z     (Z starts at zero: the block starts as the identity)

Everything is reshape + matmul + softmax (no einsum, no H*W x H*W matrix), so the cost is linear
in the number of pixels and the graph exports to LiteRT with builtin ops and to ONNX/TensorRT.
Only ``keras.ops`` is used: the layers run on the TensorFlow, JAX and PyTorch backends.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_seran.config import check_reasoning
from keras_seran.layers.shapes import as_shape, is_multi_shape

PACKAGE = "keras_seran"


def _flatten_positions(x):
    """(B, H, W, K) -> (B, H*W, K), with dynamic B, H, W."""
    return ops.reshape(x, (ops.shape(x)[0], -1, ops.shape(x)[-1]))


def rms_normalize(x, epsilon: float = 1e-6):
    """x / sqrt(mean(x^2) + eps) over (H, W, C) of each sample: (B, H, W, C) -> same shape.

    Used on E before the attention convs (``attention_norm=True``) so that the softmax
    temperature does not depend on the intensity scale of the input: on [0, 1] MR the trunk's
    features have a std of about 0.04, which leaves conv1x1(E) nearly constant and both softmaxes
    uniform. A single scalar per sample, so conv1x1 of the result is still a linear map of E
    (the paper's form) with a data-independent temperature. Computed in float32.
    """
    x32 = ops.cast(x, "float32")
    mean_square = ops.mean(x32 * x32, axis=(1, 2, 3), keepdims=True)
    return ops.cast(x32 * ops.rsqrt(mean_square + epsilon), x.dtype)   # int8 LiteRT kernels exist


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
    :func:`rms_normalize` (E) (scale-invariant M); A is always computed on E itself.
    """

    def __init__(self, feature_dim: int, num_descriptors: int, attention_norm: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        self.feature_dim = int(feature_dim)
        self.num_descriptors = int(num_descriptors)
        self.attention_norm = bool(attention_norm)
        self.feature_conv = keras.layers.Conv2D(self.feature_dim, 1, name="feature_conv",
                                                dtype=self.dtype_policy)
        self.attention_conv = keras.layers.Conv2D(self.num_descriptors, 1, name="attention_conv",
                                                  dtype=self.dtype_policy)

    def build(self, input_shape):
        input_shape = as_shape(input_shape)
        self.feature_conv.build(input_shape)
        self.attention_conv.build(input_shape)
        super().build(input_shape)

    def call(self, inputs):
        features = _flatten_positions(self.feature_conv(inputs))            # (B, HW, m)
        keys = rms_normalize(inputs) if self.attention_norm else inputs
        logits = self.attention_conv(keys)                                   # (B, H, W, n)
        attention = ops.softmax(_flatten_positions(logits), axis=1)         # over HW positions
        descriptors = ops.matmul(ops.transpose(features, (0, 2, 1)), attention)  # (B, m, n)
        return descriptors, _unflatten_positions(attention, logits)

    def compute_output_shape(self, input_shape):
        b, h, w, _ = as_shape(input_shape)
        return (b, self.feature_dim, self.num_descriptors), (b, h, w, self.num_descriptors)

    def flops(self, input_shape) -> int:
        _, h, w, c = as_shape(input_shape)
        hw = h * w
        m, n = self.feature_dim, self.num_descriptors
        return 2 * hw * c * (m + n) + 2 * hw * m * n

    def get_config(self):
        return {**super().get_config(), "feature_dim": self.feature_dim,
                "num_descriptors": self.num_descriptors, "attention_norm": self.attention_norm}


@keras.saving.register_keras_serializable(package=PACKAGE)
class PrimitiveReasoning(keras.layers.Layer):
    """Primitive relationship reasoning (PRR): a graph convolution over the n descriptors.

    Input and output: (B, m, n), descriptors as the columns.

    - ``reasoning="glore"`` (default; GloRe, Chen et al. CVPR 2019): node-wise linear map across
      the n nodes (a learned n x n adjacency A_g) with a residual, then a state-wise linear map
      over the m dimensions with ReLU: ``V* = relu(W_s ((I - A_g) V))``.
    - ``reasoning="rs_gcn"`` (Rs_GCN, Li et al. ICCV 2019, as in PRRGAN): affinity between nodes
      ``R = theta(V)^T phi(V) / n``, ``V* = V + W_r(R g(V))``, W_r a projection and a batch norm
      whose scale starts at zero, so the module starts as the identity.
    """

    def __init__(self, reasoning: str = "glore", inter_dim: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.reasoning = check_reasoning(reasoning)
        self.inter_dim = None if inter_dim is None else int(inter_dim)

    def build(self, input_shape):
        _, m, n = as_shape(input_shape)
        if m is None or n is None:
            raise ValueError(f"PrimitiveReasoning needs static (m, n), got {input_shape}")
        self._m, self._n = m, n
        if self.reasoning == "glore":
            self.node_kernel = self.add_weight(name="node_kernel", shape=(n, n),
                                               initializer="glorot_uniform")
            self.node_bias = self.add_weight(name="node_bias", shape=(n,), initializer="zeros")
            self.state_kernel = self.add_weight(name="state_kernel", shape=(m, m),
                                                initializer="glorot_uniform")
        else:
            d = self.inter_dim or max(1, m // 2)
            self._d = d
            self.theta = keras.layers.Dense(d, name="theta", dtype=self.dtype_policy)
            self.phi = keras.layers.Dense(d, name="phi", dtype=self.dtype_policy)
            self.g = keras.layers.Dense(d, name="g", dtype=self.dtype_policy)
            self.w_r = keras.layers.Dense(m, name="w_r", dtype=self.dtype_policy)
            self.w_r_norm = keras.layers.BatchNormalization(gamma_initializer="zeros",
                                                            name="w_r_norm",
                                                            dtype=self.dtype_policy)
            for layer in (self.theta, self.phi, self.g):
                layer.build((None, n, m))
            self.w_r.build((None, n, d))
            self.w_r_norm.build((None, n, m))
        super().build(input_shape)

    def call(self, inputs, training=None):
        if self.reasoning == "glore":
            # (I - A_g) V: mix the n nodes of every state row, subtract from the identity path.
            mixed = ops.matmul(inputs, ops.transpose(self.node_kernel)) + self.node_bias
            graph = ops.transpose(inputs - mixed, (0, 2, 1))                      # (B, n, m)
            # W_s (.): the state-wise map, written as (B, n, m) @ (m, m) like a Dense layer.
            return ops.transpose(ops.relu(ops.matmul(graph, self.state_kernel)), (0, 2, 1))
        nodes = ops.transpose(inputs, (0, 2, 1))                                  # (B, n, m)
        affinity = ops.matmul(self.theta(nodes), ops.transpose(self.phi(nodes), (0, 2, 1)))
        affinity = affinity / float(self._n)                                      # (B, n, n)
        reasoned = self.w_r_norm(self.w_r(ops.matmul(affinity, self.g(nodes))), training=training)
        return ops.transpose(nodes + reasoned, (0, 2, 1))

    def compute_output_shape(self, input_shape):
        return as_shape(input_shape)

    def flops(self, input_shape) -> int:
        _, m, n = as_shape(input_shape)
        if self.reasoning == "glore":
            return 2 * m * n * n + 2 * m * m * n
        d = self.inter_dim or max(1, m // 2)
        return 3 * 2 * n * m * d + 2 * n * n * d * 2 + 2 * n * d * m

    def get_config(self):
        return {**super().get_config(), "reasoning": self.reasoning, "inter_dim": self.inter_dim}


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

    def __init__(self, num_descriptors: int, zero_init: bool = False,
                 attention_norm: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.num_descriptors = int(num_descriptors)
        self.zero_init = bool(zero_init)
        self.attention_norm = bool(attention_norm)
        self.attention_conv = keras.layers.Conv2D(self.num_descriptors, 1, name="attention_conv",
                                                  dtype=self.dtype_policy)
        self.output_conv = None

    def build(self, input_shape):
        if not is_multi_shape(input_shape):
            raise ValueError("Excitation is called on [features, descriptors]")
        feature_shape, descriptor_shape = (as_shape(s) for s in input_shape)
        channels, m = feature_shape[-1], descriptor_shape[1]
        self.attention_conv.build(feature_shape)
        init = "zeros" if self.zero_init else "glorot_uniform"
        self.output_conv = keras.layers.Conv2D(channels, 1, name="output_conv",
                                               kernel_initializer=init, dtype=self.dtype_policy)
        self.output_conv.build(feature_shape[:-1] + (m,))
        super().build(input_shape)

    def call(self, inputs):
        features, descriptors = inputs
        keys = rms_normalize(features) if self.attention_norm else features
        logits = self.attention_conv(keys)                                      # (B, H, W, n)
        attention = ops.softmax(logits, axis=-1)                                 # over descriptors
        gathered = ops.matmul(_flatten_positions(attention),
                              ops.transpose(descriptors, (0, 2, 1)))             # (B, HW, m)
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
        return {**super().get_config(), "num_descriptors": self.num_descriptors,
                "zero_init": self.zero_init, "attention_norm": self.attention_norm}


@keras.saving.register_keras_serializable(package=PACKAGE)
class SERABlock(keras.layers.Layer):
    """The SERA module: squeeze -> reasoning -> excitation, with residual scaling.

    ``out = E + s * Z`` with s a learnable scalar (``residual_scale=None``, starting at
    ``residual_scale_init``) or a fixed constant. ``attention_norm=True`` computes both softmaxes'
    logits on the RMS-normalised E (see :func:`rms_normalize`); the layer default is False so
    that files saved before the option existed reload unchanged (models built by
    :func:`keras_seran.models.seran` take it from :class:`keras_seran.config.SERAConfig`). The excitation's output conv starts at zero, so
    the block starts as the identity (stable deep training): at the first step only that conv
    gets a gradient, and every other weight of the module as soon as it is nonzero (for
    ``rs_gcn``, theta/phi/g/w_r once the reasoning's zero-initialised batch norm has moved too).
    (Starting s itself at 0 instead, our first design, left the attention weights almost
    without gradient: trained that way, s stayed below 3e-3 and the modules were inert.)

    Input (B, H, W, C) -> output (B, H, W, C). With ``return_attention=True`` the call returns
    ``(out, {"attention_maps": M, "descriptors": V, "reasoned_descriptors": V*,
    "excitation": D})`` for inspection (see ``keras_seran.models.attention_model``).
    """

    def __init__(self, feature_dim: int = 64, num_descriptors: int = 32,
                 reasoning: str = "glore", residual_scale: float | None = None,
                 residual_scale_init: float = 1.0, attention_norm: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.feature_dim = int(feature_dim)
        self.num_descriptors = int(num_descriptors)
        self.reasoning = reasoning
        self.residual_scale = None if residual_scale is None else float(residual_scale)
        self.residual_scale_init = float(residual_scale_init)
        self.attention_norm = bool(attention_norm)
        self.squeeze = SecondOrderPooling(self.feature_dim, self.num_descriptors,
                                          attention_norm=self.attention_norm, name="squeeze",
                                          dtype=self.dtype_policy)
        self.reason = PrimitiveReasoning(reasoning, name="reasoning", dtype=self.dtype_policy)
        self.excite = Excitation(self.num_descriptors, zero_init=True,
                                 attention_norm=self.attention_norm, name="excitation",
                                 dtype=self.dtype_policy)

    def build(self, input_shape):
        input_shape = as_shape(input_shape)
        self.squeeze.build(input_shape)
        descriptor_shape = (input_shape[0], self.feature_dim, self.num_descriptors)
        self.reason.build(descriptor_shape)
        self.excite.build([input_shape, descriptor_shape])
        if self.residual_scale is None:
            self.scale = self.add_weight(
                name="residual_scale", shape=(),
                initializer=keras.initializers.Constant(self.residual_scale_init))
        super().build(input_shape)

    def call(self, inputs, training=None, return_attention=False):
        descriptors, attention_maps = self.squeeze(inputs)
        reasoned = self.reason(descriptors, training=training)
        excited, excitation = self.excite([inputs, reasoned])
        s = self.scale if self.residual_scale is None else self.residual_scale
        outputs = inputs + ops.cast(s, excited.dtype) * excited
        if not return_attention:
            return outputs
        return outputs, {"attention_maps": attention_maps, "descriptors": descriptors,
                         "reasoned_descriptors": reasoned, "excitation": excitation}

    def flops(self, input_shape) -> int:
        input_shape = as_shape(input_shape)
        descriptor_shape = (input_shape[0], self.feature_dim, self.num_descriptors)
        return (self.squeeze.flops(input_shape) + self.reason.flops(descriptor_shape)
                + self.excite.flops([input_shape, descriptor_shape]))

    def get_config(self):
        return {**super().get_config(), "feature_dim": self.feature_dim,
                "num_descriptors": self.num_descriptors, "reasoning": self.reasoning,
                "residual_scale": self.residual_scale,
                "residual_scale_init": self.residual_scale_init,
                "attention_norm": self.attention_norm}
