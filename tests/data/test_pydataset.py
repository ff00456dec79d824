"""numpy PyDataset: same kind of pairs as the tf.data pipeline, deterministic, TensorFlow-free."""

from __future__ import annotations

import importlib.util
import json
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
    b = PatchPyDataset(SLAB, 2, CFG, steps_per_epoch=3)  # from files: same slices
    for i in range(3):
        np.testing.assert_array_equal(a[i][1], b[i][1])
    first = a[1][1]
    a.on_epoch_end()  # no state: the stream stays put
    np.testing.assert_array_equal(a[1][1], first)
    assert not np.array_equal(first, a[4][1])  # the next epoch draws new patches
    import dataclasses

    c = PatchPyDataset(train_set, 2, dataclasses.replace(CFG, seed=5), steps_per_epoch=3)
    assert not np.array_equal(c[1][1], first)


def test_prefetching_workers_give_the_stream_in_any_access_order(train_set):
    plain = PatchPyDataset(train_set, 2, CFG, steps_per_epoch=3)
    threaded = PatchPyDataset(train_set, 2, CFG, steps_per_epoch=3, workers=3, max_queue_size=4)
    assert plain.num_batches is None and len(threaded) == 3
    for k in (0, 1, 2, 0, 1, 7, 8, 3, 9):  # in order, restarted, jumping
        np.testing.assert_array_equal(threaded[k][0], plain.batch(k)[0])
        np.testing.assert_array_equal(threaded[k][1], plain[k][1])
    with pytest.raises(ValueError, match="use_multiprocessing"):
        PatchPyDataset(train_set, 2, CFG, workers=2, use_multiprocessing=True)


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
    hist = model.fit(
        ds, epochs=1, steps_per_epoch=len(ds), validation_data=val, shuffle=False, verbose=0
    )
    assert np.isfinite(hist.history["val_loss"][0])


def _tiny_model():
    inp = keras.Input((None, None, 1))
    out = keras.layers.Conv2D(1, 3, padding="same")(keras.layers.UpSampling2D(2)(inp))
    model = keras.Model(inp, out)
    model.compile("adam", "mae")
    return model


def test_the_endless_stream_stays_usable_as_a_keras_dataset(train_set):
    """Iterating gives one epoch; fit without steps_per_epoch gets a clear error instead of a
    first epoch that never ends; no prefetch thread outlives a fit."""
    import threading
    import time

    ds = PatchPyDataset(train_set, 2, CFG, steps_per_epoch=3, workers=2)
    assert len(list(ds)) == len(ds) == 3
    with pytest.raises(Exception, match=r"steps_per_epoch=len\(ds\)"):
        _tiny_model().fit(ds, epochs=1, verbose=0)
    ds = PatchPyDataset(train_set, 2, CFG, steps_per_epoch=3, workers=2)
    _tiny_model().fit(ds, epochs=2, steps_per_epoch=len(ds), verbose=0)
    assert ds._pool is None and not ds._finalizer.alive  # nothing kept per epoch either
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(
        t.name.startswith("PatchPyDataset") for t in threading.enumerate()
    ):
        time.sleep(0.05)
    assert not [t.name for t in threading.enumerate() if t.name.startswith("PatchPyDataset")]


def test_a_resumed_stream_starts_at_its_epoch(train_set):
    """start_epoch=e gives the batches a dataset gives after e epochs (a resumed run's stream)."""
    run = PatchPyDataset(train_set, 2, CFG, steps_per_epoch=2)
    resumed = PatchPyDataset(train_set, 2, CFG, steps_per_epoch=2, start_epoch=2)
    for i in range(2):
        np.testing.assert_array_equal(resumed[i][1], run[4 + i][1])
        np.testing.assert_array_equal(resumed[i][0], run[4 + i][0])


FIT_RECORDER = """
import json, sys
import keras, numpy as np
from keras_seran.config import DataConfig
from keras_seran.data import load_slice_sets
from keras_seran.data.pydataset import PatchPyDataset

cfg = DataConfig(slice_axis=1, patch_size=8, batch_size=2, val_fraction=0.2, val_gap=4, seed=4)
train = load_slice_sets(sys.argv[1], 2, cfg)[0]
seen = []

def loss(y_true, y_pred):   # eager: y_true is the HR batch fit consumes
    try:
        seen.append(float(np.asarray(y_true, np.float64).sum()))
    except Exception:        # the symbolic build
        pass
    return keras.ops.mean(keras.ops.abs(y_true - y_pred))

def fit(workers, start_epoch, epochs):
    ds = PatchPyDataset(train, 2, cfg, steps_per_epoch=3, workers=workers, start_epoch=start_epoch)
    inp = keras.Input((None, None, 1))
    up = keras.layers.UpSampling2D(2)(inp)
    model = keras.Model(inp, keras.layers.Conv2D(1, 3, padding="same")(up))
    model.compile("adam", loss, run_eagerly=True)
    seen.clear()
    model.fit(ds, epochs=epochs, initial_epoch=start_epoch, steps_per_epoch=len(ds),
              shuffle=False, verbose=0)
    return list(seen)

def batch(k):   # batch i of epoch e, taken where a run resumed at epoch e starts
    e, i = divmod(k, 3)
    return PatchPyDataset(train, 2, cfg, steps_per_epoch=3, start_epoch=e)[i]

print(json.dumps({"expected": [float(batch(k)[1].astype(np.float64).sum()) for k in range(6)],
                  "w1": fit(1, 0, 2), "w2": fit(2, 0, 2), "w4": fit(4, 0, 2),
                  "resumed_w2": fit(2, 1, 2)}))
"""


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")
def test_fit_consumes_the_same_stream_whatever_the_workers_on_jax(tmp_path):
    """On JAX, fit peeks at a first batch to build the model and calls on_epoch_end around it;
    with prefetching workers the batches fit consumed used to depend on the number of workers."""
    script = tmp_path / "record.py"
    script.write_text(FIT_RECORDER)
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", CUDA_VISIBLE_DEVICES="")
    r = subprocess.run(
        [sys.executable, str(script), str(SLAB)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=env,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    expected = got["expected"]
    assert len(set(expected)) > 3  # distinct batches to tell apart
    for key in ("w1", "w2", "w4"):
        assert got[key] == pytest.approx(expected, rel=1e-6), key
    # a run resumed at epoch 1 continues with batches 3, 4, 5
    assert got["resumed_w2"] == pytest.approx(expected[3:], rel=1e-6)


def test_make_pydatasets_mirrors_make_datasets_split(train_set):
    from keras_seran.data import make_pydatasets

    train, val = make_pydatasets(SLAB, 2, CFG, steps_per_epoch=3, start_epoch=1, workers=2)
    assert len(train) == 3 and train.start_epoch == 1 and train.threads == 2
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
        pkg = types.ModuleType('keras_seran'); pkg.__path__ = [{str(REPO / "keras_seran")!r}]
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
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO, env=env
    )
    assert r.returncode == 0 and "NO_TF_OK" in r.stdout, r.stderr[-3000:]
