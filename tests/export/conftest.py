"""Fixtures of the export tests: a tiny SERAN trained briefly on real MR so it beats bicubic, its
.keras file, and one full bundle (every format and precision) shared by the checks."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

TRAIN_STEPS = 300
TRAIN_LR = 2e-3
PATCH = 24
BATCH = 16


def _train_tiny(scale: int = 2):
    """seran(scale, "tiny") after ~300 Adam steps (L1) on 24x24 LR patches of the calibration
    slices of the real T1 slab (never the parity slices). ~20 s on 2 CPU cores."""
    import keras

    from keras_seran.export import parity
    from keras_seran.models import seran

    hr = parity.load_mr_slices(indices=parity.CALIBRATION_SLICES)
    pairs = parity.slice_pairs(hr, scale)
    lr_all = np.concatenate([a for a, _ in pairs])
    hr_all = np.concatenate([b for _, b in pairs])
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    model = seran(scale, "tiny")
    model.compile(optimizer=keras.optimizers.Adam(TRAIN_LR), loss="mae")
    n, h, w = lr_all.shape[:3]
    for _ in range(TRAIN_STEPS):
        i = rng.integers(0, n, BATCH)
        y = rng.integers(0, h - PATCH, BATCH)
        x = rng.integers(0, w - PATCH, BATCH)
        lb = np.stack([lr_all[a, b : b + PATCH, c : c + PATCH] for a, b, c in zip(i, y, x)])
        hb = np.stack(
            [
                hr_all[a, scale * b : scale * (b + PATCH), scale * c : scale * (c + PATCH)]
                for a, b, c in zip(i, y, x)
            ]
        )
        model.train_on_batch(lb, hb)
    return model


@pytest.fixture(scope="session")
def trained_tiny():
    return _train_tiny(2)


@pytest.fixture(scope="session")
def untrained_tiny():
    import keras

    from keras_seran.models import seran

    keras.utils.set_random_seed(1)
    return seran(2, "tiny")


@pytest.fixture(scope="session")
def tiny_keras_file(trained_tiny, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "seran_tiny_x2.keras"
    trained_tiny.save(path)
    return path


@pytest.fixture(scope="session")
def full_bundle(trained_tiny, tmp_path_factory):
    """(bundle dir, manifest) with every format and precision, from the trained tiny model."""
    from keras_seran.export import export_bundle

    out = tmp_path_factory.mktemp("bundles") / "bundle_x2"
    manifest = export_bundle(
        trained_tiny, out, "savedmodel,tflite,onnx,tensorrt", model_source="trained_tiny"
    )
    return out, manifest


@pytest.fixture(scope="session")
def pretrained_small_bundle(tmp_path_factory):
    """(bundle dir, manifest): the bundled SERAN small x2 weights, every format and precision."""
    from keras_seran.export import export_bundle
    from keras_seran.registry import load_pretrained

    out = tmp_path_factory.mktemp("bundles") / "small_x2"
    manifest = export_bundle(
        load_pretrained(2), out, "savedmodel,tflite,onnx,tensorrt", model_source="x2"
    )
    return out, manifest
