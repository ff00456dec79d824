"""Shape helpers shared by the custom layers.

On reload, Keras may call ``build`` with a list instead of a tuple (and with nested lists for
multi-input layers); these helpers normalise both forms.
"""

from __future__ import annotations


def is_multi_shape(shape) -> bool:
    """True when ``shape`` is a list of shapes (a multi-input layer), not a single shape."""
    return (
        isinstance(shape, (list, tuple))
        and len(shape) > 0
        and all(isinstance(s, (list, tuple)) or hasattr(s, "as_list") for s in shape)
    )


def as_shape(shape) -> tuple:
    """A single shape as a tuple of ints/None (accepts lists and TensorShape)."""
    if hasattr(shape, "as_list"):
        shape = shape.as_list()
    return tuple(None if d is None else int(d) for d in shape)
