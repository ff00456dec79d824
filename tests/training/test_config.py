"""The typed configs refuse what would fail later or mean something else (1 for True, inf)."""

from __future__ import annotations

import json
import math

import pytest

from keras_seran.cli import main
from keras_seran.config import DataConfig, SERAConfig, SERANConfig, TrainConfig, to_dict
from tests.training.tiny_run import config_file_args


@pytest.mark.parametrize(
    "cls, kw, named",
    [
        (TrainConfig, {"mixed_precision": 1}, "mixed_precision"),
        (TrainConfig, {"mixed_precision": 0.0}, "mixed_precision"),
        (TrainConfig, {"mixed_precision": "yes"}, "mixed_precision"),
        (TrainConfig, {"learning_rate": math.inf}, "learning_rate must be a finite number > 0"),
        (TrainConfig, {"learning_rate": math.nan}, "learning_rate"),
        (TrainConfig, {"clipnorm": math.inf}, "clipnorm"),
        (TrainConfig, {"epsilon": True}, "epsilon"),
        (DataConfig, {"slice_axis": True}, "slice_axis"),
        (DataConfig, {"slice_axis": 2.0}, "slice_axis"),
        (DataConfig, {"contrast_augment": "0.5"}, "contrast_augment"),
        (DataConfig, {"contrast_augment": True}, "contrast_augment"),
        (DataConfig, {"contrast_augment": None}, "contrast_augment"),
        (DataConfig, {"contrast_augment": math.nan}, "contrast_augment"),
        (DataConfig, {"contrast_knots": 6.0}, "contrast_knots"),
        (DataConfig, {"contrast": "FLAIR"}, "contrast must be one of"),
        (DataConfig, {"contrast": 1}, "contrast"),
        (DataConfig, {"noise_sigma": math.nan}, "noise_sigma"),
        (
            SERAConfig,
            {"residual_scale_init": math.inf},
            "residual_scale_init must be a finite number,",
        ),
        (SERAConfig, {"residual_scale": -math.inf}, "residual_scale must be a finite number,"),
        (SERANConfig, {"res_scale": math.inf}, "res_scale"),
    ],
)
def test_bad_values_are_refused_with_their_name(cls, kw, named):
    with pytest.raises(ValueError, match=named.replace("(", r"\(")) as info:
        cls(**kw)
    assert "inf" not in str(info.value).split(", got")[0]  # not "a number >= -inf"


@pytest.mark.parametrize(
    "cls, kw",
    [
        (TrainConfig, {"mixed_precision": True}),
        (TrainConfig, {"mixed_precision": False}),
        (TrainConfig, {"mixed_precision": "bfloat16"}),
        (TrainConfig, {"mixed_precision": "float16"}),
        (DataConfig, {"slice_axis": None}),
        (DataConfig, {"slice_axis": 0}),
        (DataConfig, {"contrast": "T2"}),
        (DataConfig, {"contrast": "pd"}),
        (DataConfig, {"contrast_augment": 1}),
        (DataConfig, {"contrast_augment": 0.25}),
        (SERAConfig, {"residual_scale": -0.5}),
        (SERAConfig, {"residual_scale": None}),
    ],
)
def test_the_documented_values_are_kept(cls, kw):
    cfg = cls(**kw)
    assert all(getattr(cfg, k) == v for k, v in kw.items())


def test_a_data_config_survives_a_json_round_trip():
    cfg = DataConfig(percentiles=[1.0, 99.0], slice_axis=1, contrast="T1")
    assert cfg.percentiles == (1.0, 99.0)
    back = DataConfig(**json.loads(json.dumps(to_dict(cfg))))
    assert back == cfg and hash(back) == hash(cfg)


def test_mixed_precision_1_in_a_config_file_fails_before_the_run_dir(tmp_path, capsys):
    cfg = tmp_path / "run.json"
    cfg.write_text(json.dumps({"train": {"mixed_precision": 1}}))
    rc = main(config_file_args(cfg, tmp_path / "run"))
    err = capsys.readouterr().err
    assert rc == 2 and "mixed_precision" in err and "Traceback" not in err, err
    assert not (tmp_path / "run").exists()
