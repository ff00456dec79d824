"""TensorFlow SavedModel export with a named serving signature.

The SavedModel has one signature, ``serving_default``: input ``lr`` float32 (B, H, W, 1) with
dynamic batch, height and width, output ``sr`` float32 (B, H*s, W*s, 1) (the names are
:mod:`keras_seran.contract`'s). It is written with
``keras.export.ExportArchive`` (the machinery behind ``model.export(format="tf_saved_model")``)
so that the input and output keep these names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from keras_seran.contract import INPUT_NAME, OUTPUT_NAME, SIGNATURE


def serving_fn(model):
    """``lr -> {"sr": model(lr)}`` in inference mode: the function every format exports."""

    def serve(lr):
        return {OUTPUT_NAME: model(lr, training=False)}

    return serve


def input_spec(model, shape: tuple | None = None):
    """A ``tf.TensorSpec`` named ``lr``: (None, None, None, C) unless ``shape`` is given."""
    import tensorflow as tf

    channels = model.inputs[0].shape[-1]
    return tf.TensorSpec(shape or (None, None, None, channels), tf.float32, name=INPUT_NAME)


def export_savedmodel(
    model, path: str | Path, shape: tuple | None = None, scale: int | None = None
) -> dict:
    """Write ``model`` as a SavedModel at ``path`` and return a description of its signature.

    Args:
        model: a Keras model mapping (B, H, W, C) -> (B, H*s, W*s, C).
        path: the SavedModel folder to create.
        shape: input shape of the signature; default (None, None, None, C), i.e. dynamic batch,
            H and W. (LiteRT conversion passes (1, H, W, C) or (1, None, None, C).)
        scale: the SR factor, only used to describe a fixed output shape.
    """
    import keras

    spec = input_spec(model, shape)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name=SIGNATURE, fn=serving_fn(model), input_signature=[spec])
    archive.write_out(str(path), verbose=False)
    b, h, w, c = spec.shape.as_list()

    def times(d):
        return None if d is None or scale is None else d * scale

    return {
        "signature": SIGNATURE,
        "inputs": {INPUT_NAME: {"shape": [b, h, w, c], "dtype": "float32"}},
        "outputs": {
            OUTPUT_NAME: {
                "shape": [b, times(h), times(w), model.outputs[0].shape[-1]],
                "dtype": "float32",
            }
        },
    }


class SavedModelRunner:
    """Run the ``serving_default`` signature of a SavedModel on numpy arrays."""

    def __init__(self, path: str | Path):
        import tensorflow as tf

        self._tf = tf
        self.path = Path(path)
        self.loaded = tf.saved_model.load(str(path))
        self.fn = self.loaded.signatures[SIGNATURE]

    def __call__(self, lr: np.ndarray) -> np.ndarray:
        out = self.fn(**{INPUT_NAME: self._tf.constant(np.asarray(lr, np.float32))})
        return out[OUTPUT_NAME].numpy()
