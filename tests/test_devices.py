"""keras_seran.devices, and the package on the JAX backend with no TensorFlow importable.

The JAX tests run in a subprocess (this process runs the TensorFlow backend) and are skipped when
JAX is not installed (it is in the ``[dev]`` extra). They stand in for a GPU machine that has JAX
but no TensorFlow: the bundled weights, ``predict``, training with resume and the clear refusals
of what needs TensorFlow.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from keras_seran import devices, samples
from keras_seran.errors import UsageError

HAS_JAX = importlib.util.find_spec("jax") is not None
needs_jax = pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed (pip install jax)")

# Run first in the subprocess: TensorFlow cannot be imported there, as on a JAX-only machine.
BLOCK_TENSORFLOW = textwrap.dedent("""
    import importlib.abc, sys
    class BlockTensorFlow(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split('.')[0] in ('tensorflow', 'tf2onnx'):
                raise ImportError('no TensorFlow on this machine: ' + name)
    sys.meta_path.insert(0, BlockTensorFlow())
    import importlib.util
    _find_spec = importlib.util.find_spec
    importlib.util.find_spec = lambda name, *a: (
        None if name.split('.')[0] in ('tensorflow', 'tf2onnx') else _find_spec(name, *a))
""")


def run_on_jax(code: str, tmp_path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", CUDA_VISIBLE_DEVICES="")
    script = tmp_path / "on_jax.py"
    script.write_text(BLOCK_TENSORFLOW + textwrap.dedent(code))
    return subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tmp_path,
        env=env,
    )


def test_this_process_runs_tensorflow_and_can_stay_on_the_cpu():
    assert devices.backend() == "tensorflow" and devices.has_tensorflow()
    assert devices.select_device("cpu") == "cpu"
    assert devices.describe().startswith("tensorflow, ")


def test_gpu_is_refused_clearly_when_none_is_visible():
    if devices.gpu_count():
        assert devices.select_device("gpu").startswith("gpu (")
        return
    with pytest.raises(UsageError, match="--device gpu: the tensorflow backend sees no GPU"):
        devices.select_device("gpu")
    assert devices.select_device("auto") == "cpu"


def test_an_unknown_device_is_refused():
    with pytest.raises(UsageError, match="--device must be cpu, gpu or auto, got 'tpu'"):
        devices.select_device("tpu")


@needs_jax
def test_bundled_weights_give_the_same_slices_on_jax_as_on_tensorflow(tmp_path, mr_slice):
    """The layers are pure keras.ops: the same weights give the same image on both backends."""
    from keras_seran import SuperResolver

    lr = mr_slice[:96, :96]
    np.save(tmp_path / "lr.npy", lr)
    r = run_on_jax(
        """
        import numpy as np, sys
        import keras, keras_seran
        lr = np.load('lr.npy')
        out = {f'x{s}': keras_seran.SuperResolver.from_pretrained(scale=s).predict_slice(lr)
               for s in (2, 4)}
        np.savez('jax.npz', **out)
        bad = [m for m in sys.modules if m.split('.')[0] == 'tensorflow']
        print(keras.backend.backend(), 'tensorflow modules:', bad)
    """,
        tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "jax tensorflow modules: []" in r.stdout
    on_jax = np.load(tmp_path / "jax.npz")
    for s in (2, 4):
        on_tf = SuperResolver.from_pretrained(scale=s).predict_slice(lr)
        assert on_jax[f"x{s}"].shape == on_tf.shape == (96 * s, 96 * s)
        assert np.abs(on_jax[f"x{s}"] - on_tf).max() < 1e-4


@needs_jax
def test_training_runs_and_resumes_on_jax_without_tensorflow(tmp_path):
    """``keras-seran train`` on JAX feeds the numpy PyDatasets, skips TensorBoard with a note,
    and ``--resume`` continues the epoch counter and the optimizer."""
    r = run_on_jax(
        f"""
        import sys
        from keras_seran.cli import main
        common = ['train', '--data', {str(samples.T1_AXIAL_SLAB)!r}, '--scale', '2',
                  '--preset', 'tiny', '--patch-size', '16', '--batch-size', '4',
                  '--steps-per-epoch', '2', '--axis', '1', '--out', 'run']
        assert main(common + ['--epochs', '1']) == 0
        assert main(common + ['--epochs', '2', '--resume']) == 0
        print('tensorflow modules:', [m for m in sys.modules if m.split('.')[0] == 'tensorflow'])
    """,
        tmp_path,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert "TensorBoard logs need TensorFlow (not installed): skipped" in r.stdout
    assert "tensorflow modules: []" in r.stdout
    state = json.loads((tmp_path / "run" / "training_state.json").read_text())
    assert state["epoch"] == 2 and state["optimizer_iterations"] == 4
    rows = (tmp_path / "run" / "log.csv").read_text().strip().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["0", "1"]
    assert not (tmp_path / "run" / "tensorboard").exists()


@needs_jax
def test_what_needs_tensorflow_is_refused_clearly_on_jax(tmp_path):
    r = run_on_jax(
        f"""
        from keras_seran.cli import main
        print('export rc', main(['export', 'x2', '--out', 'bundle', '--formats', 'onnx']))
        print('multi-gpu rc', main(['train', '--data', {str(samples.T1_AXIAL_SLAB)!r},
                                    '--scale', '2', '--preset', 'tiny', '--epochs', '1',
                                    '--multi-gpu', '--out', 'run']))
    """,
        tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "export rc 2" in r.stdout and "multi-gpu rc 2" in r.stdout
    assert (
        "keras-seran export: error: export converts through TensorFlow and needs the "
        "tensorflow backend (this is jax)" in r.stderr
    )
    assert (
        "keras-seran train: error: --distribute mirrored uses tf.distribute.MirroredStrategy, "
        "which needs the tensorflow backend (this is jax)" in r.stderr
    )
    assert not (tmp_path / "bundle").exists() and not (tmp_path / "run").exists()
