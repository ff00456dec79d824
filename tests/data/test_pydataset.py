"""numpy PyDataset: same kind of pairs as the tf.data pipeline, deterministic, TensorFlow-free."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_seran import samples
from keras_seran.config import DataConfig
from keras_seran.data import degrade, load_slice_sets, validation_pairs
from keras_seran.data.pydataset import PatchPyDataset, SlicePairPyDataset

SLAB = samples.T1_AXIAL_SLAB
CFG = DataConfig(slice_axis=1, patch_size=16, batch_size=4, val_fraction=0.2, val_gap=4, seed=4)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def train_set():
    return load_slice_sets(SLAB, 2, CFG)[0]


@pytest.mark.parametrize("kind", ["bicubic", "blur"])
def test_shapes_and_exact_lr(train_set, kind):
    import dataclasses
    cfg = dataclasses.replace(CFG, degradation=kind)
    ds = PatchPyDataset(train_set, 2, cfg, steps_per_epoch=5)
    assert len(ds) == 5
    lr, hr = ds[0]
    assert lr.shape == (4, 16, 16, 1) and hr.shape == (4, 32, 32, 1)
    assert lr.dtype == hr.dtype == np.float32
    np.testing.assert_allclose(lr[..., 0], degrade(hr[..., 0], 2, kind), atol=1e-6)


def test_deterministic_per_seed_and_epoch(train_set):
    a = PatchPyDataset(train_set, 2, CFG, steps_per_epoch=3)
    b = PatchPyDataset(SLAB, 2, CFG, steps_per_epoch=3)       # from files: same slices
    for i in range(3):
        np.testing.assert_array_equal(a[i][1], b[i][1])
    first = a[1][1]
    a.on_epoch_end()
    assert not np.array_equal(first, a[1][1])                  # a new epoch draws new patches
    import dataclasses
    c = PatchPyDataset(train_set, 2, dataclasses.replace(CFG, seed=5), steps_per_epoch=3)
    assert not np.array_equal(c[1][1], first)


def test_kspace_precomputed_and_noise(train_set):
    import dataclasses
    cfg = dataclasses.replace(CFG, degradation="kspace", noise_sigma=0.02)
    ds = PatchPyDataset(train_set, 2, cfg, steps_per_epoch=2)
    assert ds.lr_mode == "precomputed"
    lr, hr = ds[0]
    assert lr.shape == (4, 16, 16, 1) and lr.min() >= 0
    np.testing.assert_array_equal(lr, ds[0][0])


def test_fit_with_pydatasets(train_set):
    ds = PatchPyDataset(train_set, 2, CFG, steps_per_epoch=2)
    val = SlicePairPyDataset(*validation_pairs(SLAB, 2, CFG))
    assert val[0][0].shape == (1, 128, 128, 1) and val[0][1].shape == (1, 256, 256, 1)
    inp = keras.Input((None, None, 1))
    out = keras.layers.Conv2D(1, 3, padding="same")(keras.layers.UpSampling2D(2)(inp))
    model = keras.Model(inp, out)
    model.compile("adam", "mae")
    hist = model.fit(ds, epochs=1, validation_data=val, verbose=0)
    assert np.isfinite(hist.history["val_loss"][0])


def test_a_resumed_stream_starts_at_its_epoch(train_set):
    """start_epoch=e gives the batches a dataset gives after e epochs (a resumed run's stream)."""
    run = PatchPyDataset(train_set, 2, CFG, steps_per_epoch=2)
    run.on_epoch_end()
    run.on_epoch_end()
    resumed = PatchPyDataset(train_set, 2, CFG, steps_per_epoch=2, start_epoch=2)
    for i in range(2):
        np.testing.assert_array_equal(resumed[i][1], run[i][1])
        np.testing.assert_array_equal(resumed[i][0], run[i][0])


def test_make_pydatasets_mirrors_make_datasets_split(train_set):
    from keras_seran.data import make_pydatasets

    train, val = make_pydatasets(SLAB, 2, CFG, steps_per_epoch=3, start_epoch=1, workers=2)
    assert len(train) == 3 and train.epoch == 1 and train.workers == 2
    assert len(train._hr) == len(train_set.slices)
    lrs, hrs = validation_pairs(SLAB, 2, CFG)
    assert len(val) == len(lrs) > 0
    for i in range(len(val)):
        np.testing.assert_array_equal(val[i][0][0, ..., 0], lrs[i])
        np.testing.assert_array_equal(val[i][1][0, ..., 0], hrs[i])
    import dataclasses
    assert make_pydatasets(SLAB, 2, dataclasses.replace(CFG, val_fraction=0.0))[1] is None


def test_too_small_slices_rejected(train_set):
    import dataclasses
    with pytest.raises(ValueError, match="smaller than the HR patch"):
        PatchPyDataset(train_set, 4, dataclasses.replace(CFG, patch_size=128))


def test_module_does_not_import_tensorflow():
    """Under JAX/PyTorch there is no TensorFlow: import the data modules with TensorFlow (and the
    real Keras, which would load its TF backend here) blocked and a stub ``keras.utils.PyDataset``."""
    code = textwrap.dedent(f"""
        import sys, types, importlib.abc
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split('.')[0] in ('tensorflow', 'keras', 'jax', 'torch'):
                    raise ImportError('blocked ' + name)
        sys.meta_path.insert(0, Block())
        keras = types.ModuleType('keras'); utils = types.ModuleType('keras.utils')
        class PyDataset:
            def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10): pass
        utils.PyDataset = PyDataset; keras.utils = utils
        sys.modules['keras'] = keras; sys.modules['keras.utils'] = utils
        pkg = types.ModuleType('keras_seran'); pkg.__path__ = [{str(REPO / 'keras_seran')!r}]
        sys.modules['keras_seran'] = pkg          # skip keras_seran/__init__ (it builds TF models)
        import keras_seran.data as d
        from keras_seran.data import PatchPyDataset
        from keras_seran.config import DataConfig
        ds = PatchPyDataset({str(SLAB)!r}, 2, DataConfig(slice_axis=1, patch_size=16, batch_size=2),
                            steps_per_epoch=1)
        lr, hr = ds[0]
        assert lr.shape == (2, 16, 16, 1), lr.shape
        lrs, hrs = d.validation_pairs({str(SLAB)!r}, 2, DataConfig(slice_axis=1, patch_size=16))
        bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'jax', 'torch')]
        assert not bad, bad
        print('NO_TF_OK')
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       cwd=REPO, env=env)
    assert r.returncode == 0 and "NO_TF_OK" in r.stdout, r.stderr[-3000:]
