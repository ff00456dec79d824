"""batch_runner: the one way the package runs a Keras SR model on (B, h, w) slices."""

from __future__ import annotations

import numpy as np

from keras_seran.inference.runner import batch_runner
from keras_seran.models import bicubic, seran


def test_runs_a_traced_model_like_a_direct_call(slab_slices):
    model = seran(2, "tiny")
    batch = slab_slices[3:5, 100:132, 90:130]                      # (2, 32, 40) real T1
    out = batch_runner(model)(batch)
    assert out.shape == (2, 64, 80) and out.dtype == np.float32
    np.testing.assert_allclose(out, np.asarray(model(batch[..., None]))[..., 0], atol=1e-5)


def test_bicubic_baseline_runs_on_any_size(slab_slices):
    """The weightless bicubic model cannot always be traced with unknown H, W: still runs."""
    run = batch_runner(bicubic(2))
    for h, w in ((32, 40), (27, 33)):
        out = run(slab_slices[:1, 100:100 + h, 90:90 + w])
        assert out.shape == (1, 2 * h, 2 * w)
        assert abs(out.mean() - slab_slices[:1, 100:100 + h, 90:90 + w].mean()) < 0.02
