"""Training on JAX (the numpy PyDataset) gives what training on TensorFlow (tf.data) gives.

The GPU machine has JAX and no TensorFlow, so ``keras_seran.training.train`` feeds it the
numpy ``PatchPyDataset``; TensorFlow feeds the tf.data pipeline. Both cut the same slices with
the same split, but draw their random patches with different generators, so two runs are not
bit-equal: they are two draws of the training noise. Measured here (tiny preset, x2, the
settings below, 150 steps from the same initial weights, seeds 0/1/2 each): held-out PSNR
TensorFlow 27.57 / 27.42 / 27.40 dB, JAX 27.57 / 27.65 / 27.64 dB, a seed-to-seed spread of
about 0.1 dB (sd), so the difference of one run on each backend has an sd of about 0.14 dB;
MARGIN is about 3 of those. The untrained network scores about 9 dB, so a JAX path that does
not train, or trains on mismatched pairs, fails the test.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from keras_seran import samples
from keras_seran.config import DataConfig, TrainConfig
from keras_seran.data import validation_pairs
from keras_seran.metrics import psnr
from keras_seran.models import seran
from keras_seran.training import train

MARGIN = 0.4  # dB; see the module docstring
DATA = {"patch_size": 24, "batch_size": 16, "slice_axis": 1, "val_fraction": 0.25, "seed": 0}
TRAIN = {
    "epochs": 3,
    "steps_per_epoch": 50,
    "learning_rate": 2e-3,
    "lr_decay_epochs": 1,
    "lr_decay_factor": 0.5,
}
TRAIN_CODE = """
    import sys
    import keras
    import keras_seran.data.pydataset as pydataset
    from keras_seran.config import DataConfig, TrainConfig
    from keras_seran.training import train

    calls = []
    make = pydataset.make_pydatasets
    pydataset.make_pydatasets = lambda *a, **k: calls.append(a) or make(*a, **k)
    out, init = sys.argv[1], sys.argv[2]
    history = train({data!r}, 2, out + "/run", preset="tiny", data=DataConfig(**{cfg!r}),
                    train_cfg=TrainConfig(**{tcfg!r}), init_from=init, verbose=0,
                    tensorboard=False)
    history.model.save_weights(out + "/" + keras.backend.backend() + ".weights.h5")
    print("make_pydatasets calls:", len(calls))
"""


def heldout_psnr(model: keras.Model) -> float:
    lrs, hrs = validation_pairs(str(samples.T1_AXIAL_SLAB), 2, DataConfig(**DATA))
    sr = model.predict(np.stack(lrs)[..., None], verbose=0)[..., 0]
    return float(np.mean([psnr(np.clip(a, 0, 1), b, border=2) for a, b in zip(sr, hrs)]))


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")
def test_training_on_jax_pydataset_matches_tensorflow_tfdata(tmp_path):
    keras.utils.set_random_seed(0)
    init = seran(2, "tiny")
    init.save(tmp_path / "init.keras")  # the same initial weights for both
    script = tmp_path / "train.py"
    script.write_text(
        textwrap.dedent(TRAIN_CODE.format(data=str(samples.T1_AXIAL_SLAB), cfg=DATA, tcfg=TRAIN))
    )
    (tmp_path / "jax").mkdir()
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", CUDA_VISIBLE_DEVICES="")
    # JAX trains in a subprocess while TensorFlow trains here
    proc = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "jax"), str(tmp_path / "init.keras")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        history = train(
            str(samples.T1_AXIAL_SLAB),
            2,
            tmp_path / "tf" / "run",
            preset="tiny",
            data=DataConfig(**DATA),
            train_cfg=TrainConfig(**TRAIN),
            init_from=tmp_path / "init.keras",
            verbose=0,
            tensorboard=False,
        )
        output, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output[-3000:]
    assert "make_pydatasets calls: 1" in output  # fed by the numpy PyDataset
    on_tf = heldout_psnr(history.model)
    jax_model = seran(2, "tiny")
    jax_model.load_weights(tmp_path / "jax" / "jax.weights.h5")
    on_jax = heldout_psnr(jax_model)
    untrained = heldout_psnr(init)
    print(f"held-out PSNR: untrained {untrained:.2f}, tensorflow {on_tf:.2f}, jax {on_jax:.2f} dB")
    assert on_tf - untrained > 10 * MARGIN and on_jax - untrained > 10 * MARGIN
    assert abs(on_jax - on_tf) <= MARGIN
