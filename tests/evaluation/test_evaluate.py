"""Evaluation protocol and the `evaluate` command on the bundled real MR benchmark sets."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from keras_seran.cli import main
from keras_seran.evaluation import benchmark_pairs, bicubic_predictor, score_pairs
from keras_seran.models import seran


def test_benchmark_sets_are_real_normalised_pairs():
    pairs = benchmark_pairs(3)
    assert set(pairs) == {"t1-heldout", "brainweb-t1", "brainweb-pd", "itk-t1"}
    for lr_list, hr_list in pairs.values():
        for lr, hr in zip(lr_list, hr_list):
            assert hr.shape == (lr.shape[0] * 3, lr.shape[1] * 3)
            assert 0.0 <= hr.min() and hr.max() <= 1.0 and hr.std() > 0.05


def test_protocol_scores_bicubic_below_identity():
    lr, hr = benchmark_pairs(2)["brainweb-t1"]
    bic = score_pairs(bicubic_predictor(2), lr, hr, 2)
    perfect = score_pairs(lambda x, h=hr[0]: h, lr, hr, 2)
    assert 20 < bic.mean_psnr < 45 and 0.5 < bic.mean_ssim < 1
    assert perfect.mean_ssim == 1.0 and np.isinf(perfect.mean_psnr) or perfect.mean_psnr > 100


def test_evaluate_command_writes_markdown_and_csv(tmp_path, capsys):
    model_path = tmp_path / "tiny.keras"
    seran(2, "tiny").save(model_path)
    md, table = tmp_path / "t.md", tmp_path / "t.csv"
    rc = main(
        [
            "evaluate",
            "--scales",
            "2",
            "--models",
            f"tiny={model_path}",
            "--markdown",
            str(md),
            "--csv",
            str(table),
        ]
    )
    assert rc == 0
    text = md.read_text()
    assert "| bicubic |" in text and "| tiny |" in text and "t1-heldout x2" in text
    rows = list(csv.DictReader(open(table)))
    assert {r["method"] for r in rows} == {"bicubic", "tiny"} and len(rows) == 8
    bic = {r["dataset"]: float(r["psnr_mean"]) for r in rows if r["method"] == "bicubic"}
    assert bic["t1-heldout"] > 20
    for r in rows:  # every slice's PSNR, averaging to the mean column
        per_slice = [float(v) for v in r["psnr_per_slice"].split()]
        assert len(per_slice) == int(r["slices"])
        assert np.mean(per_slice) == pytest.approx(float(r["psnr_mean"]), abs=1e-3)


def test_evaluate_rejects_a_missing_model(tmp_path, capsys):
    rc = main(["evaluate", "--scales", "2", "--models", f"m={tmp_path / 'nope.keras'}"])
    assert rc == 2 and "nope.keras" in capsys.readouterr().err


def test_evaluate_checks_before_scoring(tmp_path, capsys, monkeypatch):
    """Bad outputs or an empty comparison fail at once (nothing scored, nothing written)."""
    from keras_seran.evaluation import command

    monkeypatch.setattr(command, "_pairs", lambda *a: pytest.fail("scored before checking"))
    (tmp_path / "isdir").mkdir()
    md = tmp_path / "t.md"
    for argv, named in (
        (["--markdown", str(md), "--csv", str(tmp_path / "isdir")], "isdir"),
        (["--markdown", str(md), "--csv", str(md)], "same file"),
        (["--markdown", str(md), "--csv", str(tmp_path / "isdir" / ".." / "t.md")], "same file"),
        (["--no-bicubic", "--models"], "nothing to evaluate"),
        (["--models", "seran"], "NAME=MODEL"),
        (["--noise", "0", "0.5"], "--noise must be a finite number in [0, 0.5), got 0.5"),
        (["--noise", "nan"], "--noise must be a finite number"),
        (["--noise", "-0.01"], "got -0.01"),
    ):
        rc = main(["evaluate", "--scales", "2", *argv])
        err = capsys.readouterr().err
        assert rc == 2 and named in err and "Traceback" not in err, err
    assert not md.exists()
    for argv in (["--scales", "0"], ["--data", "x", "--axis", "7"]):
        with pytest.raises(SystemExit) as exit_:
            main(["evaluate", *argv])
        assert exit_.value.code == 2


def test_evaluate_self_ensemble_rows(tmp_path, capsys):
    """--self-ensemble adds NAME+ rows scored on the same real slices."""
    out = tmp_path / "t.csv"
    assert (
        main(
            [
                "evaluate",
                "--scales",
                "2",
                "--models",
                "seran=x2",
                "--self-ensemble",
                "--no-bicubic",
                "--csv",
                str(out),
            ]
        )
        == 0
    )
    rows = list(csv.DictReader(open(out)))
    methods = {r["method"] for r in rows}
    assert methods == {"seran", "seran+"}
    by = {(r["method"], r["dataset"]): float(r["psnr_mean"]) for r in rows}
    for (method, dataset), value in by.items():
        if method == "seran":
            # the ensemble of a trained network stays within a fraction of a dB of one pass
            assert abs(by[("seran+", dataset)] - value) < 0.5


# ---------------------------------------------------------------------------------------------
# everything checked before scoring: inputs never overwritten, bad models and data named


@pytest.fixture(scope="module")
def ev_dir(tmp_path_factory):
    """A folder with a small real T1 volume (128x128x4, slices along axis 2) and x2/x3 models."""
    import nibabel as nib

    from keras_seran import samples

    d = tmp_path_factory.mktemp("ev")
    a = np.asarray(nib.load(samples.T1_AXIAL_SLAB).dataobj)
    nib.save(
        nib.Nifti1Image(a[64:192, 4:8, 64:192].transpose(0, 2, 1).copy(), np.eye(4)),
        d / "vol.nii.gz",
    )
    # 5x5 slices of real anatomy (every 40th voxel): too small for SSIM's 11x11 window
    nib.save(
        nib.Nifti1Image(a[30:230:40, 4:8, 30:230:40].transpose(0, 2, 1).copy(), np.eye(4)),
        d / "tiny5.nii.gz",
    )
    seran(2, "tiny").save(d / "model_x2.keras")
    seran(3, "tiny").save(d / "model_x3.keras")
    return d


def _no_scoring(monkeypatch):
    from keras_seran.evaluation import command

    monkeypatch.setattr(command, "_pairs", lambda *a: pytest.fail("scored before checking"))


def _evaluate_error(capsys, *argv) -> str:
    rc = main(["evaluate", *map(str, argv)])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def test_evaluate_never_overwrites_its_inputs(ev_dir, capsys, monkeypatch):
    _no_scoring(monkeypatch)
    vol, model = ev_dir / "vol.nii.gz", ev_dir / "model_x2.keras"
    before = {p: p.read_bytes() for p in (vol, model)}
    for data, output, what in (
        (vol, "--csv", model),
        (ev_dir, "--markdown", vol),
        (str(ev_dir / "*.nii.gz"), "--csv", vol),
    ):
        err = _evaluate_error(
            capsys,
            "--data",
            data,
            "--scales",
            "2",
            "--models",
            f"mine={ev_dir / 'model_x{scale}.keras'}",
            output,
            what,
        )
        assert f"{what}: output is an input" in err
    # the bundled benchmark files too, when no --data is given
    from keras_seran import samples

    err = _evaluate_error(
        capsys, "--scales", "2", "--models", "seran=x2", "--csv", samples.BRAINWEB_PD
    )
    assert "brainweb_pd_slice.png: output is an input (bundled benchmark data)" in err
    assert {p: p.read_bytes() for p in (vol, model)} == before


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("mine=x{scale", "expected '}'"),
        ("mine=x{sc}", "KeyError: 'sc'"),
        ("=x2", "is not NAME=MODEL"),
        ("a=x2 a=x3", "used twice"),
    ],
)
def test_evaluate_rejects_bad_model_specs(spec, expected, capsys, monkeypatch):
    _no_scoring(monkeypatch)
    err = _evaluate_error(capsys, "--scales", "2", "--models", *spec.split())
    assert expected in err


def test_evaluate_checks_every_model_scale_before_scoring(ev_dir, capsys, monkeypatch):
    """A model of the wrong scale (or no SR model at all) fails before anything is scored."""
    import keras

    _no_scoring(monkeypatch)
    x2, x3 = ev_dir / "model_x2.keras", ev_dir / "model_x3.keras"
    err = _evaluate_error(
        capsys,
        "--data",
        ev_dir / "vol.nii.gz",
        "--scales",
        "2",
        "3",
        "--no-bicubic",
        "--models",
        f"mine={x2}",
    )
    assert f"{x2}: model 'mine' upscales by x2, but --scales asks for x3" in err
    err = _evaluate_error(capsys, "--scales", "2", "--models", f"a={x3}")
    assert f"{x3}: model 'a' upscales by x3, but --scales asks for x2" in err
    rgb = ev_dir / "rgb.keras"
    keras.Sequential(
        [keras.Input((None, None, 1)), keras.layers.Conv2D(3, 3, padding="same")]
    ).save(rgb)
    err = _evaluate_error(capsys, "--scales", "2", "--models", f"rgb={rgb}")
    assert f"{rgb}: model 'rgb' is not a grayscale super-resolution network" in err


def test_evaluate_one_model_per_scale(ev_dir, capsys):
    """{scale} picks each scale's model; the --data volume's slices are all scored."""
    out = ev_dir / "scales.csv"
    rc = main(
        [
            "evaluate",
            "--data",
            str(ev_dir / "vol.nii.gz"),
            "--scales",
            "2",
            "3",
            "--models",
            f"mine={ev_dir / 'model_x{scale}.keras'}",
            "--csv",
            str(out),
        ]
    )
    assert rc == 0, capsys.readouterr().err
    rows = list(csv.DictReader(open(out)))
    assert {(r["method"], r["scale"]) for r in rows} == {
        (m, s) for m in ("bicubic", "mine") for s in ("2", "3")
    }
    assert all(r["dataset"] == "data" and r["slices"] == "4" for r in rows)


@pytest.mark.filterwarnings("ignore:only 4 usable slices")
def test_evaluate_slices_too_small_for_ssim(ev_dir, capsys):
    for split in ("all", "val"):
        err = _evaluate_error(
            capsys, "--data", ev_dir / "tiny5.nii.gz", "--scales", "2", "--split", split
        )
        assert str(ev_dir / "tiny5.nii.gz") in err and "left to score" in err
        assert "at least 16x16" in err and "patch" not in err and "training" not in err


def test_evaluate_help():
    from keras_seran.cli import build_parser

    parser = build_parser(["evaluate"])
    sub = next(a for a in parser._actions if a.dest == "command").choices["evaluate"]
    text = " ".join(sub.format_help().split())
    assert "upscaling factors to score" in text and "how LR slices are made" in text
    assert "held-out slices" not in text and "or on your --data" in text


def test_evaluate_val_split_of_a_run(tmp_path, capsys):
    """--split val --run RUN_DIR rebuilds the split that run trained with (its seed,
    val_fraction, ...), not the default one: here the run held out half of 6 subjects."""
    import json

    import nibabel as nib

    from keras_seran import samples

    a = np.asarray(nib.load(samples.T1_AXIAL_SLAB).dataobj)
    data = tmp_path / "ixi"
    data.mkdir()
    for i in range(6):  # 6 subjects, each 4 real axial slices of 64x64
        vol = a[96 + 8 * i : 160 + 8 * i, 4 * (i % 4) : 4 * (i % 4) + 4, 96:160].transpose(0, 2, 1)
        nib.save(nib.Nifti1Image(vol.copy(), np.eye(4)), data / f"IXI{i:03d}-Guys-0001-T1.nii.gz")
    run = tmp_path / "run"
    run.mkdir()
    (run / "run_config.json").write_text(
        json.dumps({"data": {"slice_axis": 2, "val_fraction": 0.5, "seed": 3}})
    )

    def scored_slices(*extra):
        out = tmp_path / "t.csv"
        rc = main(
            [
                "evaluate",
                "--data",
                str(data),
                "--scales",
                "2",
                "--models",
                "--split",
                "val",
                "--csv",
                str(out),
                *map(str, extra),
            ]
        )
        assert rc == 0, capsys.readouterr().err
        (row,) = csv.DictReader(open(out))
        return int(row["slices"])

    assert scored_slices() == 4  # default split: 1 subject of 6 held out
    assert scored_slices("--run", run) == 12  # the run's: 3 subjects of 6
    (run / "run_config.json").write_text(json.dumps({"data": {"val_fraction": 0.0}}))
    err = _evaluate_error(
        capsys, "--data", data, "--scales", "2", "--models", "--split", "val", "--run", run
    )
    assert "held nothing out" in err
    err = _evaluate_error(capsys, "--data", data, "--scales", "2", "--models", "--run", run)
    assert "--split val" in err
