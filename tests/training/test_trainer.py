"""Training through model.fit: schedule, configs, checkpoints, kill-and-resume on real MR."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from keras_seran import samples
from keras_seran.cli import main
from keras_seran.config import TrainConfig
from keras_seran.runs import LAST, STATE_FILE
from keras_seran.training import step_schedule
from tests.training.tiny_run import config_file_args, train_args, train_from_args

STEPS = 4
TRAIN_ARGS = train_args(STEPS)


def test_step_schedule_halves_every_decay_period():
    sched = step_schedule(TrainConfig(learning_rate=1e-4, lr_decay_epochs=200, steps_per_epoch=10))
    assert float(sched(0)) == pytest.approx(1e-4)
    assert float(sched(1999)) == pytest.approx(1e-4)
    assert float(sched(2000)) == pytest.approx(5e-5)
    assert float(sched(4000)) == pytest.approx(2.5e-5)


class _StartProbe(keras.callbacks.Callback):
    """Records the model's weights and optimizer step when fit starts."""

    def on_train_begin(self, logs=None):
        self.weights = [np.array(w) for w in self.model.get_weights()]
        self.iterations = int(self.model.optimizer.iterations.numpy())


def _wait_for_epoch(run_dir, proc, epoch, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = run_dir / STATE_FILE
        if state.exists() and json.loads(state.read_text())["epoch"] >= epoch:
            return
        if proc.poll() is not None:
            raise AssertionError(f"training exited early:\n{proc.stdout.read()}")
        time.sleep(0.5)
    raise AssertionError("no checkpoint in time")


@pytest.mark.slow
def test_killed_run_resumes_at_the_right_epoch_with_its_optimizer_state(tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "keras_seran.cli",
            *TRAIN_ARGS,
            "--epochs",
            "200",
            "--out",
            str(run_dir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    try:
        _wait_for_epoch(run_dir, proc, 2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    state = json.loads((run_dir / STATE_FILE).read_text())
    killed_at = state["epoch"]
    assert state["optimizer_iterations"] == killed_at * STEPS
    saved = keras.saving.load_model(run_dir / LAST)
    saved_weights = saved.get_weights()

    argv = [*TRAIN_ARGS, "--epochs", str(killed_at + 2), "--out", str(run_dir), "--resume"]
    probe = _StartProbe()
    history = train_from_args(argv, run_dir, resume=True, callbacks=[probe])
    # started exactly from the checkpoint: same weights, same optimizer step
    assert probe.iterations == killed_at * STEPS
    for a, b in zip(probe.weights, saved_weights):
        np.testing.assert_array_equal(a, b)
    # and continued: two more epochs, counters and log continue, weights moved on
    assert len(history.history["loss"]) == 2
    assert history.epoch == [killed_at, killed_at + 1]
    state = json.loads((run_dir / STATE_FILE).read_text())
    assert state["epoch"] == killed_at + 2
    assert state["optimizer_iterations"] == (killed_at + 2) * STEPS
    epochs = [int(r["epoch"]) for r in csv.DictReader(open(run_dir / "log.csv"))]
    assert epochs[-2:] == [killed_at, killed_at + 1]
    final = keras.saving.load_model(run_dir / LAST).get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(final, saved_weights))


def test_fresh_run_refuses_to_overwrite_a_checkpoint(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main([*TRAIN_ARGS, "--epochs", "1", "--out", str(run_dir)]) == 0
    before = (run_dir / LAST).read_bytes()
    rc = main([*TRAIN_ARGS, "--epochs", "1", "--out", str(run_dir)])
    err = capsys.readouterr().err
    assert rc == 2 and str(run_dir) in err and "--resume" in err
    assert (run_dir / LAST).read_bytes() == before
    assert (run_dir / "best.keras").exists() and (run_dir / "log.csv").exists()
    # --resume alone continues with the run's own data and settings
    assert main(["train", "--resume", "--out", str(run_dir), "--epochs", "2"]) == 0
    state = json.loads((run_dir / STATE_FILE).read_text())
    assert state["epoch"] == 2 and state["optimizer_iterations"] == 2 * STEPS


def test_resume_keeps_the_saved_run(tmp_path, capsys):
    """A resumed run may train longer, not differently; a finished one says so; the log has one
    row per epoch even when epochs after the last checkpoint had been logged already."""
    run_dir = tmp_path / "run"
    assert main([*TRAIN_ARGS, "--epochs", "1", "--out", str(run_dir)]) == 0
    capsys.readouterr()
    before = (run_dir / LAST).read_bytes()
    for extra, named in (
        (["--lr", "0.5"], "learning_rate"),
        (["--scale", "4"], "--scale 4"),
        (["--patch-size", "16"], "patch_size"),
        (["--init-from", "x2"], "--init-from"),
    ):
        rc = main(["train", "--resume", "--out", str(run_dir), "--epochs", "2", *extra])
        err = capsys.readouterr().err
        assert rc == 2 and "run_config.json" in err and named in err, err
        assert "Traceback" not in err
    assert (run_dir / LAST).read_bytes() == before
    # epoch 1 ran and was logged but the run died before its checkpoint: logged once, not twice
    log = run_dir / "log.csv"
    row = log.read_text().splitlines()[1]
    log.write_text(log.read_text() + "1" + row[row.index(",") :] + "\n")
    # the data folder moved: --data may point at it, and the run records the move
    moved = tmp_path / "moved.nii.gz"
    moved.write_bytes(open(samples.T1_AXIAL_SLAB, "rb").read())
    assert (
        main(["train", "--resume", "--out", str(run_dir), "--epochs", "2", "--data", str(moved)])
        == 0
    )
    assert [int(r["epoch"]) for r in csv.DictReader(open(log))] == [0, 1]
    saved = json.loads((run_dir / "run_config.json").read_text())
    assert saved["train"]["epochs"] == 2 and saved["resumed"][0]["at_epoch"] == 1
    assert saved["sources"] == [str(moved)]
    assert saved["resumed"][0]["previous_sources"] == [str(samples.T1_AXIAL_SLAB)]
    # nothing left to do: said, and nothing touched
    capsys.readouterr()
    state = (run_dir / STATE_FILE).read_text()
    assert main(["train", "--resume", "--out", str(run_dir)]) == 0
    assert "already trained for 2 epoch(s)" in capsys.readouterr().out
    assert (run_dir / STATE_FILE).read_text() == state


def test_damaged_run_directory_is_named(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main([*TRAIN_ARGS, "--epochs", "1", "--out", str(run_dir)]) == 0
    good = {n: (run_dir / n).read_bytes() for n in (LAST, STATE_FILE, "run_config.json")}
    for name in good:
        (run_dir / name).write_bytes(good[name][: len(good[name]) // 2])
        for argv in (
            ["train", "--resume", "--out", str(run_dir), "--epochs", "2"],
            [*TRAIN_ARGS, "--epochs", "1", "--out", str(run_dir)],
        ):
            rc = main(argv)
            err = capsys.readouterr().err
            assert rc == 2 and "Traceback" not in err, err
            if "--resume" in argv:
                assert name in err, err
        (run_dir / name).write_bytes(good[name])


@pytest.mark.parametrize(
    "extra, named",
    [
        (["--steps-per-epoch", "0"], "--steps-per-epoch must"),
        (["--batch-size", "0"], "--batch-size"),
        (["--patch-size", "0"], "--patch-size"),
        (["--lr-decay-epochs", "0"], "--lr-decay-epochs"),
        (["--val-fraction", "1"], "--val-fraction"),
        (["--val-fraction", "-0.5"], "--val-fraction"),
        (["--epochs", "0"], "--epochs must"),
        (["--lr", "-1"], "--lr must"),
    ],
)
def test_bad_settings_fail_before_anything_is_written(extra, named, tmp_path, capsys):
    rc = main([*TRAIN_ARGS, "--out", str(tmp_path / "run"), *extra])
    err = capsys.readouterr().err
    assert rc == 2 and named in err and "Traceback" not in err, err
    assert not (tmp_path / "run").exists()


def test_bad_config_files(tmp_path, capsys):
    cfg = tmp_path / "run.json"
    for text, named in (
        ('{"data": [1, 2]}', "'data'"),
        ("[1]", "JSON object"),
        ('{"data": {"patch_size": "16"}}', "patch_size"),
        ('{"train": {"learning_rate": "1e-3"}}', "learning_rate"),
        ('{"data": {"slice_axis": 5}}', "slice_axis"),
    ):
        cfg.write_text(text)
        rc = main(config_file_args(cfg, tmp_path / "run"))
        err = capsys.readouterr().err
        assert rc == 2 and "run.json" in err and named in err and "Traceback" not in err, err
        assert not (tmp_path / "run").exists()


def test_out_is_a_file_and_init_from_that_matches_nothing(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    rc = main([*TRAIN_ARGS, "--epochs", "1", "--out", str(f)])
    assert rc == 2 and "not a run directory" in capsys.readouterr().err
    rc = main([*TRAIN_ARGS, "--epochs", "1", "--out", str(tmp_path / "run"), "--init-from", "x2"])
    err = capsys.readouterr().err
    assert rc == 2 and "x2" in err and "no layer matches" in err
    assert not (tmp_path / "run").exists()


def test_resume_without_checkpoint_is_a_clear_error(tmp_path, capsys):
    rc = main([*TRAIN_ARGS, "--epochs", "1", "--out", str(tmp_path / "nothing"), "--resume"])
    assert rc == 2 and "nothing" in capsys.readouterr().err


def test_a_run_that_cannot_start_leaves_no_run_directory(tmp_path, capsys):
    bad = tmp_path / "not_mr.nii.gz"
    bad.write_bytes(b"not a nifti file")
    rc = main(
        [*TRAIN_ARGS[:1], "--data", str(bad), "--out", str(tmp_path / "run"), "--epochs", "1"]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "not_mr.nii.gz" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
    # a directory the user made beforehand stays
    (tmp_path / "mine").mkdir()
    rc = main(
        [*TRAIN_ARGS[:1], "--data", str(bad), "--out", str(tmp_path / "mine"), "--epochs", "1"]
    )
    assert rc == 2 and (tmp_path / "mine").is_dir()


def test_config_file_then_flags(tmp_path, capsys):
    from keras_seran.cli import build_parser
    from keras_seran.training.command import resolve_configs

    cfg = tmp_path / "run.json"
    cfg.write_text(
        json.dumps(
            {
                "data": {"patch_size": 24, "degradation": "kspace"},
                "train": {"learning_rate": 3e-4, "epochs": 7},
            }
        )
    )
    argv = [
        "train",
        "--out",
        "x",
        "--config",
        str(cfg),
        "--epochs",
        "9",
        "--contrast-augment",
        "0.3",
    ]
    args = build_parser(argv).parse_args(argv)
    data_cfg, train_cfg = resolve_configs(args)
    assert (data_cfg.patch_size, data_cfg.degradation) == (24, "kspace")
    assert data_cfg.contrast_augment == 0.3
    assert (train_cfg.learning_rate, train_cfg.epochs) == (3e-4, 9)
    cfg.write_text(json.dumps({"train": {"learnin_rate": 1}}))
    rc = main(["train", "--out", str(tmp_path / "r"), "--config", str(cfg), "--data", "x"])
    err = capsys.readouterr().err
    assert rc == 2 and "run.json" in err and "learnin_rate" in err
    cfg.write_text(json.dumps({"train": {"mixed_precision": "float8"}}))
    rc = main(["train", "--out", str(tmp_path / "r8"), "--config", str(cfg), "--data", "x"])
    err = capsys.readouterr().err
    assert rc == 2 and "run.json" in err and "float8" in err and "Traceback" not in err
    assert not (tmp_path / "r8").exists()
    rc = main(["train", "--out", str(tmp_path / "rc"), "--data", "x", "--contrast-augment", "3"])
    err = capsys.readouterr().err
    assert rc == 2 and "--contrast-augment must" in err and "Traceback" not in err
    assert not (tmp_path / "rc").exists()
    rc = main(
        [
            "train",
            "--out",
            str(tmp_path / "rk"),
            "--data",
            str(samples.T1_AXIAL_SLAB),
            "--degradation",
            "kspace",
            "--contrast-augment",
            "0.5",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "kspace" in err and "--contrast-augment" in err and "Traceback" not in err
    assert not (tmp_path / "rk").exists()


def test_init_from_an_x2_network_copies_every_matching_layer(tmp_path):
    from keras_seran.models import seran
    from keras_seran.training.trainer import transfer_weights

    x2 = seran(2, "tiny")
    for w in x2.weights:
        w.assign(np.random.default_rng(0).standard_normal(w.shape).astype("float32"))
    x4 = seran(4, "tiny")
    copied = transfer_weights(x4, x2)
    assert "shallow_conv" in copied and "group0_sera" in copied and "reconstruction" in copied
    # x4 = two x2 steps: the first matches the x2 upsampler, the second has no counterpart
    assert "upsample_conv0" in copied and "upsample_conv1" not in copied
    assert "upsample_conv0" not in transfer_weights(seran(3, "tiny"), x2)
    np.testing.assert_array_equal(
        x4.get_layer("group0_sera").get_weights()[0], x2.get_layer("group0_sera").get_weights()[0]
    )


def test_mixed_policy_picks_the_device_kind_and_rejects_others():
    from keras_seran.training.trainer import mixed_policy

    assert mixed_policy("float16") == "mixed_float16"
    assert mixed_policy("bfloat16") == "mixed_bfloat16"
    assert mixed_policy(True) in ("mixed_float16", "mixed_bfloat16")
    with pytest.raises(ValueError, match="float8"):
        mixed_policy("float8")


def test_bfloat16_training_on_real_mr_keeps_a_float32_image_and_restores_the_policy(tmp_path):
    run_dir = tmp_path / "bf16"
    argv = [*TRAIN_ARGS, "--epochs", "2", "--out", str(run_dir), "--mixed-precision", "bfloat16"]
    history = train_from_args(argv, run_dir)
    model = history.model
    # trunk computes in bfloat16, variables and the reconstructed image stay float32
    assert model.get_layer("group0_block0").compute_dtype == "bfloat16"
    assert all(w.dtype == "float32" for w in model.weights)
    assert model.get_layer("reconstruction").compute_dtype == "float32"
    lr = samples_lr_slice()
    out = model.predict_on_batch(lr)
    assert str(out.dtype) == "float32" and out.shape == (1, 2 * lr.shape[1], 2 * lr.shape[2], 1)
    # the global policy is back to float32 for whatever the user builds next
    assert keras.mixed_precision.global_policy().name == "float32"
    # the checkpoint reloads with its policy, and a float32 copy of the weights predicts alike
    reloaded = keras.saving.load_model(run_dir / LAST)
    assert reloaded.get_layer("group0_block0").compute_dtype == "bfloat16"
    from keras_seran.training.trainer import build_model

    fp32 = build_model("seran", 2, "tiny")
    fp32.set_weights(reloaded.get_weights())
    np.testing.assert_allclose(fp32.predict_on_batch(lr), reloaded.predict_on_batch(lr), atol=0.03)
    assert np.isfinite(history.history["loss"]).all()


def samples_lr_slice() -> np.ndarray:
    """A real LR input: a 64x64 crop of the bundled T1 slab's middle slice, in [0, 1]."""
    from keras_seran.data.io import load_volume
    from keras_seran.data.normalize import normalize

    slab, _ = normalize(load_volume(samples.T1_AXIAL_SLAB).data)
    mid = slab[:, slab.shape[1] // 2, :]
    return np.ascontiguousarray(mid[96:160, 96:160], np.float32)[None, ..., None]


class _StopAfter(keras.callbacks.Callback):
    """Stops fit after ``epochs`` completed epochs, as EarlyStopping does."""

    def __init__(self, epochs):
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 >= self.epochs:
            self.model.stop_training = True


def _checkpointed(run_dir):
    state = json.loads((run_dir / STATE_FILE).read_text())
    iterations = int(keras.saving.load_model(run_dir / LAST).optimizer.iterations.numpy())
    return state["epoch"], state["optimizer_iterations"], iterations


def test_the_last_epoch_is_checkpointed_between_intervals_and_on_early_stop(tmp_path):
    run_dir = tmp_path / "every2"
    assert (
        main([*TRAIN_ARGS, "--epochs", "3", "--checkpoint-every", "2", "--out", str(run_dir)]) == 0
    )
    assert len(list(csv.DictReader(open(run_dir / "log.csv")))) == 3
    assert _checkpointed(run_dir) == (3, 3 * STEPS, 3 * STEPS)
    # stopped early (as EarlyStopping stops) after epoch 2 of 5, checkpoints every 3 epochs
    run_dir = tmp_path / "stopped"
    argv = [*TRAIN_ARGS, "--epochs", "5", "--checkpoint-every", "3", "--out", str(run_dir)]
    history = train_from_args(argv, run_dir, callbacks=[_StopAfter(2)])
    assert history.epoch == [0, 1]
    assert _checkpointed(run_dir) == (2, 2 * STEPS, 2 * STEPS)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_min_patch_size_is_what_the_ssim_metric_needs(scale, slab_slices):
    from keras_seran.metrics import SSIMMetric
    from keras_seran.training.optim import min_patch_size

    p = min_patch_size(scale)
    hr = slab_slices[:2, 100 : 100 + p * scale, 100 : 100 + p * scale, None]
    metric = SSIMMetric(border=scale)
    metric.update_state(hr, hr)
    assert float(metric.result()) == pytest.approx(1.0)
    small = (p - 1) * scale
    with pytest.raises(ValueError, match="at least 11x11"):
        SSIMMetric(border=scale).update_state(hr[:, :small, :small], hr[:, :small, :small])


def test_too_small_a_patch_for_the_metrics_is_a_one_line_error(tmp_path, capsys):
    argv = [*TRAIN_ARGS, "--epochs", "1", "--out", str(tmp_path / "run"), "--patch-size", "7"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "patch_size 7 is too small at x2" in err and ">= 8" in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()
    argv[argv.index("--scale") + 1] = "4"
    argv[-1] = "4"
    assert main(argv) == 2 and ">= 5" in capsys.readouterr().err


def test_half_a_checkpoint_names_the_file_and_the_way_out(tmp_path, capsys):
    """Killed between writing last.keras and training_state.json (or a file deleted): neither
    --resume nor a fresh run may go on, and both say which file to delete to start afresh."""
    run_dir = tmp_path / "run"
    assert main([*TRAIN_ARGS, "--epochs", "1", "--out", str(run_dir)]) == 0
    capsys.readouterr()
    state = (run_dir / STATE_FILE).read_bytes()
    fresh = [*TRAIN_ARGS, "--epochs", "1", "--out", str(run_dir)]
    resume = ["train", "--resume", "--out", str(run_dir), "--epochs", "2"]
    for there, missing in ((LAST, STATE_FILE), (STATE_FILE, LAST)):
        (run_dir / missing).rename(tmp_path / missing)
        for argv in (resume, fresh):
            assert main(argv) == 2
            err = capsys.readouterr().err
            assert f"holds {there} but no {missing}" in err and f"delete {there}" in err, err
            assert "Traceback" not in err
        (tmp_path / missing).rename(run_dir / missing)
    # the way out: deleting the half checkpoint lets a fresh run start here
    (run_dir / STATE_FILE).unlink()
    (run_dir / LAST).unlink()
    rc = main(["train", "--resume", "--out", str(run_dir), "--epochs", "2"])
    err = capsys.readouterr().err
    assert rc == 2 and f"no {LAST} or {STATE_FILE} here" in err and "without --resume" in err
    assert main(fresh) == 0
    assert json.loads((run_dir / STATE_FILE).read_text())["epoch"] == json.loads(state)["epoch"]


def test_train_help_gives_every_flag_a_text_and_the_configs_defaults(capsys):
    from keras_seran.config import DataConfig

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag, default in (
        ("--epochs", TrainConfig.epochs),
        ("--steps-per-epoch", TrainConfig.steps_per_epoch),
        ("--checkpoint-every", TrainConfig.checkpoint_every_epochs),
        ("--batch-size", DataConfig.batch_size),
        ("--val-fraction", DataConfig.val_fraction),
        ("--seed", DataConfig.seed),
        ("--patch-size", DataConfig.patch_size),
        ("--lr", TrainConfig.learning_rate),
    ):
        assert f"default: {default:g}" in text.split(flag + " ", 2)[-1].split(" --")[0], flag
    for flag in ("--early-stop PATIENCE", "--no-tensorboard"):
        assert "default" in text.split(flag + " ", 2)[-1].split(" --")[0], flag


def test_ready_endless_datasets_must_match_the_steps_per_epoch():
    """A PatchPyDataset made for another steps_per_epoch than the run's would shift its stream
    and trip its guard part-way through an epoch: refused before the run starts."""
    from keras_seran.config import DataConfig, TrainConfig
    from keras_seran.data import load_slice_sets
    from keras_seran.data.pydataset import PatchPyDataset
    from keras_seran.training.trainer import check_datasets

    cfg = DataConfig(slice_axis=1, patch_size=16, batch_size=2, val_fraction=0.0)
    ds = PatchPyDataset(
        load_slice_sets(samples.T1_AXIAL_SLAB, 2, cfg)[0], 2, cfg, steps_per_epoch=10
    )
    check_datasets((ds, None), TrainConfig(steps_per_epoch=10))
    check_datasets(None, TrainConfig(steps_per_epoch=100))
    with pytest.raises(ValueError, match="10 steps per epoch but train_cfg.steps_per_epoch is 100"):
        check_datasets((ds, None), TrainConfig(steps_per_epoch=100))
