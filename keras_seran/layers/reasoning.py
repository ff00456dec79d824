"""Primitive relationship reasoning (PRR), the middle step of SERA: two graph reasonings.

Both map the descriptors V (B, m, n) (n nodes, the columns, of dimension m) to reasoned
descriptors V* (B, m, n):

- :class:`GloReReasoning` (``reasoning="glore"``; GloRe, Chen et al., CVPR 2019):
  ``V* = relu(W_s ((I - A_g) V))``, a learned n x n node adjacency A_g (with a bias) and an
  m x m state map W_s.
- :class:`RsGCNReasoning` (``reasoning="rs_gcn"``; Rs_GCN, Li et al., ICCV 2019, as in PRRGAN):
  affinity ``R = theta(V)^T phi(V) / n`` between nodes, ``V* = V + W_r(R g(V))`` with W_r a
  projection and a batch norm whose scale starts at zero (the layer starts as the identity).

:func:`primitive_reasoning` picks one by name (what ``SERABlock(reasoning=...)`` and
``SERAConfig.reasoning`` hold).
"""

from __future__ import annotations

import keras
from keras import ops

from keras_seran.config import check_reasoning
from keras_seran.layers.shapes import as_shape

PACKAGE = "keras_seran"


class PrimitiveReasoning(keras.layers.Layer):
    """Base of the PRR layers: (B, m, n) -> (B, m, n) with static m and n (not registered: build
    one of its subclasses, e.g. through :func:`primitive_reasoning`)."""

    #: the name ``reasoning=`` chooses the subclass by
    kind: str = ""

    def static_dims(self, input_shape) -> tuple[int, int]:
        """(m, n) of a (B, m, n) input shape; ValueError when either is unknown."""
        _, m, n = as_shape(input_shape)
        if m is None or n is None:
            raise ValueError(f"{type(self).__name__} needs static (m, n), got {input_shape}")
        return m, n

    def compute_output_shape(self, input_shape):
        return as_shape(input_shape)


@keras.saving.register_keras_serializable(package=PACKAGE)
class GloReReasoning(PrimitiveReasoning):
    """GloRe graph convolution: ``V* = relu(W_s ((I - A_g) V))`` on V (B, m, n).

    Weights, in this order (the order the bundled ``.weights.h5`` files store them):
    ``node_kernel`` A_g (n, n), ``node_bias`` (n,), ``state_kernel`` W_s (m, m).
    """

    kind = "glore"

    def build(self, input_shape):
        m, n = self.static_dims(input_shape)
        self.node_kernel = self.add_weight(
            name="node_kernel", shape=(n, n), initializer="glorot_uniform"
        )
        self.node_bias = self.add_weight(name="node_bias", shape=(n,), initializer="zeros")
        self.state_kernel = self.add_weight(
            name="state_kernel", shape=(m, m), initializer="glorot_uniform"
        )
        super().build(input_shape)

    def call(self, inputs):
        # (I - A_g) V: mix the n nodes of every state row, subtract from the identity path.
        mixed = ops.matmul(inputs, ops.transpose(self.node_kernel)) + self.node_bias
        graph = ops.transpose(inputs - mixed, (0, 2, 1))  # (B, n, m)
        # W_s (.): the state-wise map, written as (B, n, m) @ (m, m) like a Dense layer.
        return ops.transpose(ops.relu(ops.matmul(graph, self.state_kernel)), (0, 2, 1))

    def flops(self, input_shape) -> int:
        _, m, n = as_shape(input_shape)
        return 2 * m * n * n + 2 * m * m * n


@keras.saving.register_keras_serializable(package=PACKAGE)
class RsGCNReasoning(PrimitiveReasoning):
    """Rs_GCN affinity reasoning: ``V* = V + W_r(R g(V))``, ``R = theta(V)^T phi(V) / n``.

    ``inter_dim``: width d of theta, phi and g (default m // 2, at least 1). The batch norm after
    W_r starts with a zero scale, so the layer starts as the identity.
    """

    kind = "rs_gcn"

    def __init__(self, inter_dim: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.inter_dim = None if inter_dim is None else int(inter_dim)

    def _width(self, m: int) -> int:
        return self.inter_dim or max(1, m // 2)

    def build(self, input_shape):
        m, n = self.static_dims(input_shape)
        self._n = n
        d = self._width(m)
        self.theta = keras.layers.Dense(d, name="theta", dtype=self.dtype_policy)
        self.phi = keras.layers.Dense(d, name="phi", dtype=self.dtype_policy)
        self.g = keras.layers.Dense(d, name="g", dtype=self.dtype_policy)
        self.w_r = keras.layers.Dense(m, name="w_r", dtype=self.dtype_policy)
        self.w_r_norm = keras.layers.BatchNormalization(
            gamma_initializer="zeros", name="w_r_norm", dtype=self.dtype_policy
        )
        for layer in (self.theta, self.phi, self.g):
            layer.build((None, n, m))
        self.w_r.build((None, n, d))
        self.w_r_norm.build((None, n, m))
        super().build(input_shape)

    def call(self, inputs, training=None):
        nodes = ops.transpose(inputs, (0, 2, 1))  # (B, n, m)
        affinity = ops.matmul(self.theta(nodes), ops.transpose(self.phi(nodes), (0, 2, 1)))
        affinity = affinity / float(self._n)  # (B, n, n)
        reasoned = self.w_r_norm(self.w_r(ops.matmul(affinity, self.g(nodes))), training=training)
        return ops.transpose(nodes + reasoned, (0, 2, 1))

    def flops(self, input_shape) -> int:
        _, m, n = as_shape(input_shape)
        d = self._width(m)
        return 3 * 2 * n * m * d + 2 * n * n * d * 2 + 2 * n * d * m

    def get_config(self):
        return {**super().get_config(), "inter_dim": self.inter_dim}


#: ``reasoning=`` name -> PRR layer class
REASONINGS: dict[str, type[PrimitiveReasoning]] = {
    cls.kind: cls for cls in (GloReReasoning, RsGCNReasoning)
}


def primitive_reasoning(reasoning: str = "glore", **kwargs) -> PrimitiveReasoning:
    """A new PRR layer of the kind ``reasoning`` names (a key of :data:`REASONINGS`); ``kwargs``
    go to its constructor (``name``, ``dtype``, ``inter_dim`` for rs_gcn). ValueError for an
    unknown name."""
    return REASONINGS[check_reasoning(reasoning)](**kwargs)
