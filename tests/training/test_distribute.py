"""Training on several devices without a GPU: two logical CPU devices (TensorFlow), two XLA host
devices (JAX), and two local worker processes (MultiWorkerMirroredStrategy over 127.0.0.1;
JAX's ``jax.distributed`` over 127.0.0.1).

Every worker draws the global batches of a one-device run and keeps its share, so the same short
run on the bundled real MR slab gives the same loss curve on 1 and 2 devices (up to the order in
which the replicas' gradients are summed) and a resumed 2-device run continues it exactly.
Devices are configured before the backend starts, so each run is a fresh subprocess.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import socket
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from keras_seran import samples
from keras_seran.cli import main
from keras_seran.config import DataConfig, TrainConfig
from keras_seran.errors import UsageError
from keras_seran.runs import BEST, LAST, LOG, RUN_CONFIG, STATE_FILE
from tests.training.tiny_run import train_args

RUN = train_args(2)
#: the columns of log.csv compared between runs; relative tolerance of float32 sums taken in
#: another order, grown over a few Adam steps
COLUMNS = ("loss", "psnr", "val_loss", "val_psnr")
RTOL = 1e-3
#: runs ``keras-seran`` argument lists in one process whose backend sees DEVICES devices
SCRIPT = """
import json, os, sys
devices = int(sys.argv[1])
if os.environ["KERAS_BACKEND"] == "tensorflow" and devices > 1:
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
from keras_seran.cli import main
for argv in json.loads(sys.argv[2]):
    rc = main(argv)
    if rc:
        sys.exit(rc)
"""


def _env(backend: str = "tensorflow", **extra: str) -> dict:
    return {
        **os.environ,
        "KERAS_BACKEND": backend,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "JAX_PLATFORMS": "cpu",
        "CUDA_VISIBLE_DEVICES": "",
        **extra,
    }


def _launch(tmp_path, devices: int, runs: list[list[str]], env: dict) -> subprocess.Popen:
    tmp_path.mkdir(parents=True, exist_ok=True)
    script = tmp_path / "runs.py"
    script.write_text(textwrap.dedent(SCRIPT))
    return subprocess.Popen(
        [sys.executable, str(script), str(devices), json.dumps(runs)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _run(tmp_path, devices: int, runs: list[list[str]], env: dict, timeout=420) -> str:
    proc = _launch(tmp_path, devices, runs, env)
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-4000:]
    return out


def _log(run_dir) -> dict[str, np.ndarray]:
    with open(run_dir / LOG) as f:
        rows = list(csv.DictReader(f))
    return {
        "epoch": np.array([int(r["epoch"]) for r in rows]),
        **{c: np.array([float(r[c]) for r in rows]) for c in COLUMNS},
    }


def _assert_same_curve(a: dict, b: dict) -> None:
    np.testing.assert_array_equal(a["epoch"], b["epoch"])
    for c in COLUMNS:
        np.testing.assert_allclose(a[c], b[c], rtol=RTOL, err_msg=c)


@pytest.fixture
def init_model(tmp_path):
    """The same initial weights for every run (``--init-from``)."""
    from keras_seran.models import seran

    keras.utils.set_random_seed(0)
    path = tmp_path / "init.keras"
    seran(2, "tiny").save(path)
    return str(path)


@pytest.mark.slow
def test_two_logical_cpus_train_as_one_and_resume(tmp_path, init_model):
    one, two, resumed = tmp_path / "one", tmp_path / "two", tmp_path / "resumed"
    start = [*RUN, "--init-from", init_model]
    out = _run(
        tmp_path,
        2,
        [
            [*start, "--epochs", "3", "--out", str(one)],
            [*start, "--epochs", "3", "--out", str(two), "--distribute", "mirrored"],
            [*start, "--epochs", "1", "--out", str(resumed), "--multi-gpu"],
        ],
        _env(),
    )
    assert "2 replica(s); global batch 4 = 2 per replica" in out
    # a new process (as after a kill) continues the 2-device run from its checkpoint
    _run(tmp_path, 2, [[*RUN, "--epochs", "3", "--out", str(resumed), "--resume"]], _env())
    curve = _log(one)
    assert curve["epoch"].tolist() == [0, 1, 2] and curve["loss"][-1] < curve["loss"][0]
    _assert_same_curve(curve, _log(two))
    _assert_same_curve(curve, _log(resumed))
    state = json.loads((resumed / STATE_FILE).read_text())
    assert state["epoch"] == 3 and state["optimizer_iterations"] == 6
    saved = json.loads((resumed / RUN_CONFIG).read_text())
    assert saved["train"]["distribute"] == "mirrored" and saved["resumed"][0]["at_epoch"] == 1
    for a, b in zip(
        keras.saving.load_model(two / LAST).get_weights(),
        keras.saving.load_model(resumed / LAST).get_weights(),
    ):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")
def test_jax_data_parallel_on_two_devices_or_processes_trains_as_one(tmp_path, init_model):
    one, two = tmp_path / "one", tmp_path / "two"
    start = [*RUN, "--init-from", init_model, "--epochs", "3"]
    out = _run(
        tmp_path,
        2,
        [[*start, "--out", str(one)], [*start, "--out", str(two), "--distribute", "data-parallel"]],
        _env("jax", XLA_FLAGS="--xla_force_host_platform_device_count=2"),
    )
    assert "keras.distribution.DataParallel): 2 replica(s); global batch 4 = 2 per replica" in out
    curve = _log(one)
    assert curve["loss"][-1] < curve["loss"][0]
    _assert_same_curve(curve, _log(two))
    # two processes of one device each (jax.distributed over 127.0.0.1), one shared --out
    run_dir = tmp_path / "processes"
    coordinator = f"127.0.0.1:{_free_ports(1)[0]}"
    procs = [
        _launch(
            tmp_path / f"p{i}",
            1,
            [[*start, "--out", str(run_dir), "--distribute", "data-parallel"]],
            _env(
                "jax",
                KERAS_DISTRIBUTION_JOB_ADDRESSES=coordinator,
                KERAS_DISTRIBUTION_NUM_PROCESSES="2",
                KERAS_DISTRIBUTION_PROCESS_ID=str(i),
            ),
        )
        for i in range(2)
    ]
    outs = _communicate(procs)
    assert "2 replica(s) on 2 workers; global batch 4 = 2 per replica" in outs[0]
    assert "worker 1: the chief writes" in outs[1]
    assert sorted(x.name for x in run_dir.iterdir()) == sorted(
        [LAST, BEST, STATE_FILE, RUN_CONFIG, LOG]
    )
    _assert_same_curve(curve, _log(run_dir))


def _communicate(procs: list[subprocess.Popen], timeout=420) -> list[str]:
    """The outputs of worker processes that must all succeed (all killed on a timeout)."""
    try:
        outs = [p.communicate(timeout=timeout)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-4000:]
    return outs


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_two_local_workers_train_as_one_and_only_the_chief_writes(tmp_path, init_model):
    run_dir = tmp_path / "run"
    start = [*RUN, "--init-from", init_model, "--epochs", "2"]
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs = []
    for index in range(2):
        scratch = tmp_path / f"tmp{index}"
        scratch.mkdir()
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = _env(TF_CONFIG=json.dumps(tf_config), TMPDIR=str(scratch))
        procs.append(
            _launch(
                tmp_path / f"w{index}",
                1,
                [[*start, "--out", str(run_dir), "--distribute", "multi-worker"]],
                env,
            )
        )
    outs = _communicate(procs)
    for out in outs:
        assert "2 replica(s) on 2 workers; global batch 4 = 2 per replica" in out
    assert "worker 1: the chief writes" in outs[1] and "worker 0:" not in outs[0]
    # one checkpoint set, the chief's, and nothing left of the other worker's saves
    assert sorted(x.name for x in run_dir.iterdir()) == sorted(
        [LAST, BEST, STATE_FILE, RUN_CONFIG, LOG]
    )
    assert json.loads((run_dir / STATE_FILE).read_text())["epoch"] == 2
    assert _log(run_dir)["epoch"].tolist() == [0, 1]
    assert not any((tmp_path / "tmp1").iterdir())
    # the workers trained on the stream of a one-device run, here
    assert main([*start, "--out", str(tmp_path / "one")]) == 0
    _assert_same_curve(_log(tmp_path / "one"), _log(run_dir))


def test_a_strategy_of_another_backend_is_a_one_line_error(tmp_path, capsys):
    rc = main(
        [*RUN, "--epochs", "1", "--out", str(tmp_path / "run"), "--distribute", "data-parallel"]
    )
    err = capsys.readouterr().err
    assert (
        rc == 2
        and "--distribute data-parallel uses keras.distribution.DataParallel, which "
        "needs the jax backend (this is tensorflow)"
        in err
    )
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_multi_worker_without_tf_config_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    rc = main(
        [*RUN, "--epochs", "1", "--out", str(tmp_path / "run"), "--distribute", "multi-worker"]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "TF_CONFIG environment variable, which is not set" in err
    monkeypatch.setenv("TF_CONFIG", "{not json")
    rc = main(
        [*RUN, "--epochs", "1", "--out", str(tmp_path / "run"), "--distribute", "multi-worker"]
    )
    assert rc == 2 and "TF_CONFIG is not a cluster description" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_pydataset_processes_share_the_global_batch():
    from keras_seran.data.pydataset import PatchPyDataset
    from keras_seran.data.slices import load_slice_sets

    cfg = DataConfig(slice_axis=1, patch_size=12, batch_size=4, val_fraction=0.0)
    train = load_slice_sets(samples.T1_AXIAL_SLAB, 2, cfg)[0]
    whole = PatchPyDataset(train, 2, cfg, steps_per_epoch=3)
    shares = [
        PatchPyDataset(train, 2, cfg, steps_per_epoch=3, process_index=i, process_count=2)
        for i in range(2)
    ]
    for n in (0, 4):
        lr, hr = whole.batch(n)
        parts = [s.batch(n) for s in shares]
        assert parts[0][0].shape == (2, 12, 12, 1) and parts[0][1].shape == (2, 24, 24, 1)
        np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), lr)
        np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), hr)
        assert not np.array_equal(parts[0][1], parts[1][1])
    with pytest.raises(ValueError, match="batch_size 4 does not split over 3 processes"):
        PatchPyDataset(train, 2, cfg, steps_per_epoch=3, process_index=0, process_count=3)


def test_global_batch_splits_evenly_and_old_runs_keep_their_setting():
    from keras_seran.training.distribute import Placement

    mirrored = Placement("mirrored", replicas=4)
    assert mirrored.per_replica(16) == 4
    assert mirrored.describe(16) == (
        "distribute mirrored (tf.distribute.MirroredStrategy): "
        "4 replica(s); global batch 16 = 4 per replica"
    )
    with pytest.raises(UsageError, match="--batch-size 6 .* does not split over 4 replicas"):
        mirrored.per_replica(6)
    # run_config.json of runs made before --distribute holds a bool (--multi-gpu)
    assert TrainConfig(distribute=True).distribute == "mirrored"
    assert TrainConfig(distribute=False).distribute == "none"
    with pytest.raises(ValueError, match="distribute must be one of"):
        TrainConfig(distribute="horovod")
