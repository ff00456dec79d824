"""batch_runner: the one way the package runs a Keras SR model on (B, h, w) slices."""

from __future__ import annotations

import numpy as np

from keras_seran.inference.runner import batch_runner
from keras_seran.models import bicubic, seran


def test_runs_a_traced_model_like_a_direct_call(slab_slices):
    model = seran(2, "tiny")
    batch = slab_slices[3:5, 100:132, 90:130]  # (2, 32, 40) real T1
    out = batch_runner(model)(batch)
    assert out.shape == (2, 64, 80) and out.dtype == np.float32
    np.testing.assert_allclose(out, np.asarray(model(batch[..., None]))[..., 0], atol=1e-5)


def test_bicubic_baseline_runs_on_any_size(slab_slices):
    """The weightless bicubic model cannot always be traced with unknown H, W: still runs."""
    run = batch_runner(bicubic(2))
    for h, w in ((32, 40), (27, 33)):
        out = run(slab_slices[:1, 100 : 100 + h, 90 : 90 + w])
        assert out.shape == (1, 2 * h, 2 * w)
        assert abs(out.mean() - slab_slices[:1, 100 : 100 + h, 90 : 90 + w].mean()) < 0.02


def test_out_of_memory_is_raised_not_retried_eagerly(slab_slices):
    """A traced call that runs out of memory is not retried eagerly (which needs more memory and
    hid the cause); a tracing failure still is."""
    import pytest

    class Model:
        def __init__(self, error):
            self.error, self.eager_calls = error, 0

        def predict_on_batch(self, x):
            raise self.error

        def __call__(self, x, training=False):
            self.eager_calls += 1
            return np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)

    batch = slab_slices[:1, 100:116, 90:106]
    oom = Model(RuntimeError("CUDA error: out of memory"))
    with pytest.raises(RuntimeError, match="out of memory"):
        batch_runner(oom)(batch)
    assert oom.eager_calls == 0
    untraceable = Model(TypeError("cannot trace with unknown H, W"))
    assert batch_runner(untraceable)(batch).shape == (1, 32, 32)
    assert untraceable.eager_calls == 1
