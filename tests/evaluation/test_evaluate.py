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
    rc = main(["evaluate", "--scales", "2", "--models", f"tiny={model_path}",
               "--markdown", str(md), "--csv", str(table)])
    assert rc == 0
    text = md.read_text()
    assert "| bicubic |" in text and "| tiny |" in text and "t1-heldout x2" in text
    rows = list(csv.DictReader(open(table)))
    assert {r["method"] for r in rows} == {"bicubic", "tiny"} and len(rows) == 8
    bic = {r["dataset"]: float(r["psnr_mean"]) for r in rows if r["method"] == "bicubic"}
    assert bic["t1-heldout"] > 20
    for r in rows:   # every slice's PSNR, averaging to the mean column
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
    for argv, named in ((["--markdown", str(md), "--csv", str(tmp_path / "isdir")], "isdir"),
                        (["--markdown", str(md), "--csv", str(md)], "same file"),
                        (["--markdown", str(md), "--csv", str(tmp_path / "isdir" / ".." / "t.md")],
                         "same file"),
                        (["--no-bicubic", "--models"], "nothing to evaluate"),
                        (["--models", "seran"], "NAME=MODEL")):
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
    assert main(["evaluate", "--scales", "2", "--models", "seran=x2", "--self-ensemble",
                 "--no-bicubic", "--csv", str(out)]) == 0
    rows = list(csv.DictReader(open(out)))
    methods = {r["method"] for r in rows}
    assert methods == {"seran", "seran+"}
    by = {(r["method"], r["dataset"]): float(r["psnr_mean"]) for r in rows}
    for (method, dataset), value in by.items():
        if method == "seran":
            # the ensemble of a trained network stays within a fraction of a dB of one pass
            assert abs(by[("seran+", dataset)] - value) < 0.5
