"""One shared test for every custom layer (in the spirit of keras-hub's ``run_layer_test``).

:func:`run_layer_test` takes a layer class, its constructor kwargs, the input shape(s) and the
output shape(s) it must give, and checks on real MR (never noise):

- serialisation: ``get_config``/``from_config`` and ``serialize_keras_object``/
  ``deserialize_keras_object`` round trips, the registered name ``keras_seran>Class``, and a
  functional model holding the layer saved to ``.keras`` and loaded back computing the same;
- symbolic call: the KerasTensor output shapes (batch unknown, and H, W unknown for images);
- eager call: the output shapes and finite values;
- training: every trainable weight (and input) gets a finite gradient, nonzero within a few SGD
  steps, and those steps reduce a loss;
- dtype policies float32, mixed_bfloat16 and mixed_float16: finite outputs near the float32
  ones, outputs in the policy's compute dtype (except those the layer keeps in float32 by
  contract), float32 variables, and every sublayer under the same policy.

Inputs are built from the bundled real T1 slab (:mod:`tests.real_mr`): an image-like input
(B, H, W, C) is a first 3x3 convolution (seeded) over B real patches, the way SERAN's trunk
sees a slice; a descriptor input (B, m, n) is the second-order pooling of such features.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import keras
import numpy as np

from tests.real_mr import bundled_slab_slices

POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")
#: relative tolerance (to the float32 output's largest magnitude) of a mixed-precision output
MIXED_TOLERANCE = {"mixed_bfloat16": 0.05, "mixed_float16": 0.01}
SGD_STEPS = 5


def mr_patches(batch: int, height: int, width: int) -> np.ndarray:
    """``batch`` real (height, width) patches, one per slab slice, centred on the head:
    (B, H, W, 1) float32 in [0, 1]."""
    slices = bundled_slab_slices()
    r0, c0 = (slices.shape[1] - height) // 2, (slices.shape[2] - width) // 2
    picks = np.linspace(2, len(slices) - 3, batch).round().astype(int)
    return np.stack([slices[i, r0 : r0 + height, c0 : c0 + width] for i in picks])[..., None]


def mr_features(shape, seed: int = 0) -> np.ndarray:
    """Features (B, H, W, C) of real MR: a seeded 3x3 convolution over real patches (C = 1: the
    patches themselves)."""
    b, h, w, c = shape
    patches = mr_patches(b, h, w)
    if c == 1:
        return patches
    conv = keras.layers.Conv2D(
        c,
        3,
        padding="same",
        kernel_initializer=keras.initializers.GlorotUniform(seed),
        bias_initializer=keras.initializers.Constant(0.05),
    )
    return keras.ops.convert_to_numpy(conv(patches)).astype("float32")


def mr_descriptors(shape, seed: int = 0) -> np.ndarray:
    """Descriptors V (B, m, n) of real MR: the second-order pooling (seeded) of 16x16 real
    features with 8 channels."""
    from keras_seran.layers import SecondOrderPooling

    b, m, n = shape
    keras.utils.set_random_seed(seed)
    descriptors, _ = SecondOrderPooling(m, n)(mr_features((b, 16, 16, 8), seed))
    return keras.ops.convert_to_numpy(descriptors).astype("float32")


def mr_inputs(input_shape):
    """Real-MR input(s) for one shape (rank 4: features, rank 3: descriptors) or a list of them."""
    if isinstance(input_shape, list):
        return [mr_inputs(s) for s in input_shape]
    makers = {4: mr_features, 3: mr_descriptors}
    if len(input_shape) not in makers:
        raise ValueError(f"no real-MR input of rank {len(input_shape)}: {input_shape}")
    return makers[len(input_shape)](tuple(input_shape))


def run_layer_test(
    cls,
    init_kwargs: dict,
    input_shape,
    expected_output_shape,
    *,
    float32_outputs: tuple[int, ...] = (),
) -> None:
    """Every shared check of a custom layer (see the module docstring); AssertionError on the first
    that fails.

    Args:
        cls: the layer class (registered with ``keras.saving.register_keras_serializable``).
        init_kwargs: constructor kwargs (without ``name`` and ``dtype``).
        input_shape: a static shape, or a list of them for a layer called on a list.
        expected_output_shape: the output shape, or a tuple of them for several outputs.
        float32_outputs: flat indices of the outputs the layer returns in float32 under any
            policy by contract (e.g. an attention map computed in float32).
    """
    inputs = mr_inputs(input_shape)
    expected = _as_shape_list(expected_output_shape)
    check_serialization(cls, init_kwargs, inputs)
    check_symbolic_call(cls, init_kwargs, input_shape, expected)
    check_eager_call(cls, init_kwargs, inputs, expected)
    check_training(cls, init_kwargs, inputs)
    for policy in POLICIES:
        check_dtype_policy(cls, init_kwargs, inputs, policy, float32_outputs)


def _as_shape_list(shapes) -> list[tuple]:
    """Flat list of shapes from one shape or a tuple/list of shapes."""
    if shapes and isinstance(shapes[0], (tuple, list)):
        return [tuple(s) for s in shapes]
    return [tuple(shapes)]


def _flat_numpy(outputs) -> list[np.ndarray]:
    return [keras.ops.convert_to_numpy(o) for o in keras.tree.flatten(outputs)]


def _keras_inputs(inputs):
    """Functional-model inputs matching real arrays (batch dimension left unknown)."""
    if isinstance(inputs, list):
        return [_keras_inputs(x) for x in inputs]
    return keras.Input(inputs.shape[1:])


def _config_json(layer) -> str:
    return json.dumps(layer.get_config(), sort_keys=True)


def check_serialization(cls, init_kwargs, inputs) -> None:
    """Config and serialisation round trips, registered name, and a ``.keras`` file round trip."""
    assert keras.saving.get_registered_name(cls) == f"keras_seran>{cls.__name__}"
    layer = cls(**init_kwargs)
    revived = cls.from_config(layer.get_config())
    assert _config_json(revived) == _config_json(layer)
    assert set(dir(revived)) == set(dir(layer)), "from_config builds other attributes"
    serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(layer)))
    assert serialized["registered_name"] == f"keras_seran>{cls.__name__}"
    revived = keras.saving.deserialize_keras_object(serialized)
    assert type(revived) is cls and _config_json(revived) == _config_json(layer)

    # built, its config is unchanged, and a model holding it reloads computing the same
    keras_inputs = _keras_inputs(inputs)
    model = keras.Model(keras_inputs, cls(**init_kwargs, name="probe")(keras_inputs))
    reference = _flat_numpy(model(inputs))
    assert _config_json(model.get_layer("probe")) == _config_json(cls(**init_kwargs, name="probe"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "layer.keras"
        model.save(path)
        loaded = keras.saving.load_model(path)
    assert type(loaded.get_layer("probe")) is cls
    assert _config_json(loaded.get_layer("probe")) == _config_json(model.get_layer("probe"))
    for got, want in zip(_flat_numpy(loaded(inputs)), reference, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def check_symbolic_call(cls, init_kwargs, input_shape, expected: list[tuple]) -> None:
    """KerasTensor outputs: the expected shapes with an unknown batch; for image-like inputs also
    with unknown H and W (same rank and channels)."""

    def spec(shape, unknown_hw=False):
        if isinstance(shape, list):
            return [spec(s, unknown_hw) for s in shape]
        dims = (None,) + tuple(shape[1:])
        if unknown_hw and len(shape) == 4:
            dims = (None, None, None, shape[-1])
        return keras.KerasTensor(dims)

    outputs = keras.tree.flatten(cls(**init_kwargs)(spec(input_shape)))
    assert [tuple(o.shape) for o in outputs] == [(None,) + s[1:] for s in expected]
    if any(len(s) == 4 for s in (input_shape if isinstance(input_shape, list) else [input_shape])):
        outputs = keras.tree.flatten(cls(**init_kwargs)(spec(input_shape, unknown_hw=True)))
        assert [(len(o.shape), o.shape[-1]) for o in outputs] == [(len(s), s[-1]) for s in expected]


def check_eager_call(cls, init_kwargs, inputs, expected: list[tuple]) -> None:
    """Called on real MR: the expected shapes, finite float32 values."""
    outputs = _flat_numpy(cls(**init_kwargs)(inputs))
    assert [o.shape for o in outputs] == expected
    for o in outputs:
        assert o.dtype == np.float32 and np.isfinite(o).all()


def _loss_and_gradients(model, inputs, targets):
    """Mean squared error over every output, and its gradients for each trainable weight and
    each input (TensorFlow backend)."""
    import tensorflow as tf

    flat_inputs = [tf.constant(x) for x in keras.tree.flatten(inputs)]
    with tf.GradientTape() as tape:
        tape.watch(flat_inputs)
        outputs = model(keras.tree.pack_sequence_as(inputs, flat_inputs), training=True)
        loss = sum(
            keras.ops.mean((o - t) ** 2)
            for o, t in zip(keras.tree.flatten(outputs), targets, strict=True)
        )
    weight_grads, input_grads = tape.gradient(loss, (model.trainable_weights, flat_inputs))
    return float(loss), weight_grads, input_grads


def _finite(grad, what: str) -> np.ndarray:
    assert grad is not None, f"{what} gets no gradient"
    grad = keras.ops.convert_to_numpy(grad)
    assert np.isfinite(grad).all(), f"{what} gets a non-finite gradient"
    return grad


def check_training(cls, init_kwargs, inputs) -> None:
    """A few SGD steps towards a real-MR target: every input and trainable weight gets a finite
    gradient at every step, nonzero at some step, and the loss goes down (a layer without weights:
    the input gradients only).

    The target of each output is that output at the start reversed along its second axis (a
    flipped image, a permutation of the descriptors), plus 0.1 (so that a branch starting at zero
    is not already on target)."""
    keras.utils.set_random_seed(0)
    keras_inputs = _keras_inputs(inputs)
    model = keras.Model(keras_inputs, cls(**init_kwargs)(keras_inputs))
    targets = [np.flip(o, axis=1) + 0.1 for o in _flat_numpy(model(inputs))]
    optimizer = keras.optimizers.SGD(learning_rate=0.05)
    names = [w.path for w in model.trainable_weights]
    names += [f"input {i}" for i in range(len(keras.tree.flatten(inputs)))]
    ever_nonzero = dict.fromkeys(names, False)
    losses = []
    for _ in range(SGD_STEPS if model.trainable_weights else 1):
        loss, weight_grads, input_grads = _loss_and_gradients(model, inputs, targets)
        losses.append(loss)
        for name, grad in zip(names, list(weight_grads) + list(input_grads), strict=True):
            ever_nonzero[name] |= bool(np.any(_finite(grad, name) != 0))
        if model.trainable_weights:
            optimizer.apply(weight_grads, model.trainable_weights)
    stuck = [name for name, moved in ever_nonzero.items() if not moved]
    assert not stuck, f"zero gradient at every one of {len(losses)} steps: {stuck}"
    if model.trainable_weights:
        final, _, _ = _loss_and_gradients(model, inputs, targets)
        assert np.isfinite(losses).all() and final < losses[0], (losses, final)


def check_dtype_policy(
    cls, init_kwargs, inputs, policy: str, float32_outputs: tuple[int, ...] = ()
) -> None:
    """Under ``policy``: outputs finite, near the float32 layer's with the same weights, in the
    compute dtype (float32 for ``float32_outputs``), eager and symbolic alike; float32
    variables; every sublayer under the same policy."""
    policy = keras.dtype_policies.get(policy)
    reference = cls(**init_kwargs)
    layer = cls(**init_kwargs, dtype=policy)
    reference_out = _flat_numpy(reference(inputs))
    layer(inputs)
    layer.set_weights(reference.get_weights())
    outputs = keras.tree.flatten(layer(inputs))
    specs = keras.tree.flatten(
        layer(keras.tree.map_structure(lambda x: keras.KerasTensor(x.shape), inputs))
    )

    for i, (out, spec, ref) in enumerate(zip(outputs, specs, reference_out, strict=True)):
        want = "float32" if i in float32_outputs else policy.compute_dtype
        assert keras.backend.standardize_dtype(out.dtype) == want, (policy.name, i, out.dtype)
        assert keras.backend.standardize_dtype(spec.dtype) == want, (policy.name, i, spec.dtype)
        got = keras.ops.convert_to_numpy(keras.ops.cast(out, "float32"))
        assert np.isfinite(got).all(), (policy.name, i)
        tolerance = MIXED_TOLERANCE.get(policy.name, 1e-6) * max(np.abs(ref).max(), 1e-3)
        np.testing.assert_allclose(
            got, ref, rtol=0, atol=tolerance, err_msg=f"{policy.name}: output {i}"
        )
    for w in layer.weights:
        assert keras.backend.standardize_dtype(w.dtype) == "float32", (policy.name, w.path)
    for sublayer in layer._flatten_layers():
        assert sublayer.dtype_policy.name == policy.name, (policy.name, sublayer.name)
