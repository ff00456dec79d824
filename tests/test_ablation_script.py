"""scripts/ablation_from_scratch.py: the table's statistics and the finished-run check."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "ablation_from_scratch.py"


@pytest.fixture(scope="module")
def ablation():
    spec = importlib.util.spec_from_file_location("ablation_from_scratch", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_table_gives_mean_sd_and_same_seed_differences(ablation):
    scores = {
        ("seran", 1): {"a": 24.0, "b": 22.0},
        ("seran", 2): {"a": 24.2, "b": 22.2},
        ("edsr", 1): {"a": 23.0, "b": 22.0},
        ("edsr", 2): {"a": 24.4, "b": 22.4},
    }
    text = ablation.table(scores, [1, 2], ["seran", "edsr"], 4)
    assert "| seran x4 | 24.10 ± 0.14 | 22.10 ± 0.14 | 23.10 | 23.00 / 23.20 |" in text
    assert "| edsr x4 | 23.70 ± 0.99 | 22.20 ± 0.28 | 22.95 | 22.50 / 23.40 |" in text
    assert (
        "- seran - edsr, same seed, mean of sets: +0.50 / -0.20 dB (mean +0.15; seran ahead "
        "in 1 of 2)" in text
    )
    assert "rir" not in text


def test_a_run_counts_as_finished_only_with_every_epoch(ablation, tmp_path):
    d = ablation.run_dir(tmp_path, 101, "rir", 4)
    assert d == tmp_path / "s101" / "rir_x4" and not ablation.finished(d)
    d.mkdir(parents=True)
    (d / "last.keras").write_bytes(b"")
    (d / "training_state.json").write_text(json.dumps({"epoch": ablation.EPOCHS - 1}))
    assert not ablation.finished(d)
    (d / "training_state.json").write_text(json.dumps({"epoch": ablation.EPOCHS}))
    assert ablation.finished(d)


def test_steps_per_epoch_reach_every_training_command(ablation, tmp_path, monkeypatch):
    commands = []

    class FakeProcess:
        def __init__(self, cmd, **kwargs):
            commands.append(cmd)

        def wait(self):
            return 0

    monkeypatch.setattr(ablation.subprocess, "Popen", FakeProcess)
    ablation.train_missing(tmp_path, [7], ["seran", "edsr"], 4, parallel=2, steps=800)
    assert len(commands) == 2
    for cmd in commands:
        assert cmd[cmd.index("--steps") + 1] == "800"
        assert cmd[cmd.index("--epochs") + 1] == str(ablation.EPOCHS)
        assert cmd[cmd.index("--threads") + 1] == "1"
    ablation.train_missing(tmp_path, [7], ["seran"], 4, parallel=1)
    assert commands[-1][commands[-1].index("--steps") + 1] == str(ablation.STEPS_PER_EPOCH)
    assert "--threads" not in commands[-1]


def test_steps_below_one_are_refused(ablation, tmp_path, capsys):
    with pytest.raises(SystemExit):
        ablation.main(["--steps", "0", "--out", str(tmp_path / "runs")])
    assert "--steps must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_a_run_of_other_steps_per_epoch_is_not_reused(ablation, tmp_path):
    d = ablation.run_dir(tmp_path, 101, "seran", 4)
    d.mkdir(parents=True)
    (d / "last.keras").write_bytes(b"")
    (d / "training_state.json").write_text(json.dumps({"epoch": ablation.EPOCHS}))
    (d / "run_config.json").write_text(json.dumps({"train": {"steps_per_epoch": 800}}))
    assert ablation.finished(d, steps=800)
    with pytest.raises(SystemExit, match="trained with 800 steps per epoch, not 100"):
        ablation.finished(d)
