"""Shape helpers: the forms Keras hands to ``build`` (tuples, lists on reload, TensorShape)."""

from __future__ import annotations

import tensorflow as tf

from keras_seran.layers.shapes import as_shape, is_multi_shape


def test_as_shape_accepts_tuples_lists_and_tensor_shapes():
    assert as_shape((None, 16, 20, 8)) == (None, 16, 20, 8)
    assert as_shape([None, 16, 20, 8]) == (None, 16, 20, 8)  # from a .keras config
    assert as_shape(tf.TensorShape([None, None, None, 8])) == (None, None, None, 8)
    assert all(type(d) is int for d in as_shape([2.0, 16]))


def test_is_multi_shape_tells_a_list_of_shapes_from_one_shape():
    assert is_multi_shape([(None, 16, 20, 8), (None, 6, 4)])
    assert is_multi_shape([[1, 16, 20, 8], [1, 6, 4]])  # nested lists on reload
    assert is_multi_shape((tf.TensorShape([1, 4, 4, 5]), tf.TensorShape([1, 6, 3])))
    assert not is_multi_shape((None, 16, 20, 8))
    assert not is_multi_shape([None, 16, 20, 8])
    assert not is_multi_shape([])
