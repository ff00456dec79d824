"""The typed configs are the single source of the command line: every flag's default, choices and
help come from a config field, flags reach the fields they name, a bad value is refused once
(by the config) naming the flag, and one default preset holds everywhere."""

from __future__ import annotations

import argparse
import dataclasses
import re

import pytest

from keras_seran import config
from keras_seran.config import (
    DEFAULT_PRESET,
    LITERT_VARIANTS,
    DataConfig,
    ExportConfig,
    InferenceConfig,
    RunConfig,
    TrainConfig,
    config_from_args,
)
from keras_seran.errors import InputDataError, UsageError

#: command -> the configs its flags come from (evaluate and demo take a few fields only)
COMMAND_CONFIGS = {
    "predict": (InferenceConfig,),
    "export": (ExportConfig,),
    "train": (RunConfig, TrainConfig, DataConfig),
}
REQUIRED = {
    "predict": ["in.nii.gz", "out.nii.gz"],
    "export": ["x2", "--out", "b"],
    "train": ["--out", "run"],
    "evaluate": [],
    "demo": [],
}


def _parse(command: str, *argv: str) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    from keras_seran.cli import build_parser

    parser = build_parser([command])
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return sub, parser.parse_args([command, *REQUIRED[command], *argv])


def _flagged(cls):
    return [f for f in dataclasses.fields(cls) if "help" in f.metadata]


def _action(sub: argparse.ArgumentParser, field: dataclasses.Field) -> argparse.Action:
    flag = field.metadata.get("flag", "--" + field.name.replace("_", "-"))
    return next(a for a in sub._actions if flag in a.option_strings)


@pytest.mark.parametrize("command", sorted(COMMAND_CONFIGS))
def test_without_flags_every_setting_is_the_configs_default(command):
    sub, args = _parse(command)
    for cls in COMMAND_CONFIGS[command]:
        assert config_from_args(cls, args) == cls()
        for field in _flagged(cls):
            action = _action(sub, field)
            assert action.default is None, f"{command} {action.option_strings} restates a default"
            shown = field.default is not None and field.default is not False
            if shown and "default_text" not in field.metadata:
                assert f"(default: {config._show(field.default)})" in action.help, action.help


@pytest.mark.parametrize("command", sorted(REQUIRED))
def test_every_option_has_help(command):
    """No more flags without help (demo --device, train --degradation were)."""
    sub, _ = _parse(command)
    bare = [a.option_strings or a.dest for a in sub._actions if not (a.help or "").strip()]
    assert bare == []


def test_the_help_says_what_the_newcomer_asked():
    train, _ = _parse("train")
    data = next(a for a in train._actions if "--data" in a.option_strings)
    assert "required" in data.help and "--resume" in data.help
    degradation = next(a for a in train._actions if "--degradation" in a.option_strings)
    assert set(degradation.choices) == set(config.TRAINING_DEGRADATIONS)
    assert all(kind in degradation.help for kind in config.TRAINING_DEGRADATIONS)
    export, _ = _parse("export")
    variants = next(a for a in export._actions if "--tflite-variants" in a.option_strings)
    assert all(v in variants.help for v in LITERT_VARIANTS)
    demo, _ = _parse("demo")
    device = next(a for a in demo._actions if "--device" in a.option_strings)
    assert device.choices == config.DEVICES and "CPU" in device.help


def test_predict_flags_reach_the_inference_config():
    _, args = _parse(
        "predict",
        "--scale",
        "3",
        "--degradation",
        "kspace",
        "--axis",
        "1",
        "--tile-size",
        "96",
        "--overlap",
        "8",
        "--batch-size",
        "2",
        "--max-memory",
        "500",
        "--percentiles",
        "1",
        "99",
        "--self-ensemble",
        "--data-consistency",
        "0.25",
        "--output-dtype",
        "int16",
        "--device",
        "cpu",
    )
    assert config_from_args(InferenceConfig, args) == InferenceConfig(
        scale=3,
        degradation="kspace",
        slice_axis=1,
        tile_size=96,
        overlap=8,
        batch_size=2,
        max_memory_mb=500.0,
        percentiles=(1.0, 99.0),
        self_ensemble=True,
        data_consistency=0.25,
        output_dtype="int16",
        device="cpu",
    )
    _, args = _parse("predict", "--data-consistency")
    assert config_from_args(InferenceConfig, args).data_consistency == 1.0


def test_train_flags_reach_their_fields():
    from keras_seran.training.command import resolve_configs

    _, args = _parse(
        "train",
        "--lr",
        "0.001",
        "--noise",
        "0.01",
        "--axis",
        "1",
        "--multi-gpu",
        "--early-stop",
        "3",
        "--mixed-precision",
        "--checkpoint-every",
        "2",
        "--degradation",
        "kspace",
        "--preset",
        "tiny",
        "--scale",
        "4",
    )
    data, train = resolve_configs(args)
    assert (
        train.learning_rate,
        train.distribute,
        train.early_stop_patience,
        train.mixed_precision,
        train.checkpoint_every_epochs,
    ) == (0.001, "mirrored", 3, True, 2)
    assert (data.noise_sigma, data.slice_axis, data.degradation) == (0.01, 1, "kspace")
    assert config_from_args(RunConfig, args) == RunConfig(scale=4, arch="seran", preset="tiny")
    _, args = _parse("train", "--mixed-precision", "bfloat16")
    assert resolve_configs(args)[1].mixed_precision == "bfloat16"


def test_export_flags_reach_the_export_config():
    from keras_seran.export.command import export_config

    _, args = _parse(
        "export",
        "--formats",
        "litert,ONNX",
        "--tflite-variants",
        "int8,float32",
        "--onnx-variants",
        "float32",
        "--input-size",
        "64x48",
        "--opset",
        "18",
        "--threads",
        "1",
    )
    cfg = export_config(args)
    assert cfg.formats == ("tflite", "onnx") and cfg.tflite_variants == ("float32", "int8")
    assert (cfg.onnx_variants, cfg.input_size, cfg.opset, cfg.threads) == (
        ("float32",),
        (64, 48),
        18,
        1,
    )
    assert cfg.trt_profiles is None and cfg.needs_calibration
    _, args = _parse("export", "--trt-profile", "16x16:64x64:128x128", "--trt-profile", "64:96:128")
    assert export_config(args).trt_profiles == (
        ((16, 16), (64, 64), (128, 128)),
        ((64, 64), (96, 96), (128, 128)),
    )


@pytest.mark.parametrize(
    "command, argv, message",
    [
        ("predict", ["--batch-size", "0"], "--batch-size must be an integer >= 1, got 0"),
        (
            "predict",
            ["--tile-size", "8", "--overlap", "8"],
            "--tile-size 8 must be larger than --overlap 8",
        ),
        ("predict", ["--percentiles", "50", "50"], "--percentiles must be two numbers"),
        ("export", ["--tflite-variants", "float32,int4"], "--tflite-variants: unknown 'int4'"),
        (
            "export",
            ["--formats", "coreml"],
            "--formats: unknown 'coreml'; choose from savedmodel, tflite, onnx, tensorrt",
        ),
        ("export", ["--opset", "30"], "--opset must be between 17 and 18"),
    ],
)
def test_a_bad_value_is_refused_by_the_config_naming_the_flag(command, argv, message):
    cls = COMMAND_CONFIGS[command][0]
    _, args = _parse(command, *argv)
    with pytest.raises(UsageError) as info:
        config_from_args(cls, args)
    assert message in str(info.value)


@pytest.mark.parametrize(
    "kw, named",
    [
        ({"degradation": "blur"}, "degradation must be one of bicubic, kspace"),
        ({"scale": 5}, "scale must be an integer, one of (2, 3, 4)"),
        ({"slice_axis": 3}, "slice_axis"),
        ({"overlap": -1}, "overlap must be an integer >= 0"),
        ({"tile_size": 16, "overlap": 16}, "tile_size 16 must be larger than overlap 16"),
        ({"max_memory_mb": 0}, "max_memory_mb must be a finite number > 0"),
        ({"data_consistency": 1.5}, "data_consistency must be a finite number in [0, 1]"),
        ({"output_dtype": "float16"}, "output_dtype must be one of input, uint8"),
        ({"device": "tpu"}, "device must be one of auto, cpu, gpu"),
        ({"self_ensemble": 1}, "self_ensemble must be true or false"),
    ],
)
def test_the_inference_config_refuses_what_would_fail_later(kw, named):
    with pytest.raises(ValueError, match=re.escape(named)):
        InferenceConfig(**kw)


@pytest.mark.parametrize(
    "kw, named",
    [
        ({"int8_io": True, "tflite_variants": "float32"}, "int8_io applies to the full-int8"),
        ({"calibration": "slab.nii.gz", "formats": "savedmodel"}, "calibration calibrates"),
        ({"input_size": (0, 64)}, "input_size must be two integers >= 1"),
        ({"trt_profiles": [((16, 16), (64, 64))]}, "trt_profiles must be (min, opt, max)"),
        ({"threads": 0}, "threads must be an integer >= 1"),
        ({"onnx_variants": ""}, "onnx_variants: none given"),
    ],
)
def test_the_export_config_refuses_what_would_fail_later(kw, named):
    with pytest.raises(ValueError, match=re.escape(named)):
        ExportConfig(**kw)


def test_one_check_per_rule_one_message():
    """Percentiles and reasoning are checked by one function each, wherever they come in."""
    import numpy as np

    from keras_seran.config import SERAConfig
    from keras_seran.data.normalize import fit_normalization
    from keras_seran.layers.reasoning import primitive_reasoning

    messages = set()
    for make in (
        lambda: DataConfig(percentiles=(99, 1)),
        lambda: InferenceConfig(percentiles=(99, 1)),
        lambda: fit_normalization(np.arange(16.0), (99, 1)),
    ):
        with pytest.raises(ValueError) as info:
            make()
        messages.add(str(info.value))
    assert len(messages) == 1 and "0 <= low < high <= 100" in messages.pop()
    messages = set()
    for make in (lambda: SERAConfig(reasoning="gcn"), lambda: primitive_reasoning("gcn")):
        with pytest.raises(ValueError) as info:
            make()
        messages.add(str(info.value))
    assert len(messages) == 1 and "glore" in messages.pop()


def test_one_default_preset_everywhere():
    """seran() used to default to "paper" while the trainer, the registry and the bundled weights
    used "small"; now every builder and every entry point defaults to DEFAULT_PRESET."""
    import inspect

    from keras_seran import registry
    from keras_seran.config import preset_config
    from keras_seran.inference.resolver import SuperResolver
    from keras_seran.models import build, edsr, seran, seran_param_count

    assert DEFAULT_PRESET == "small"
    assert seran().count_params() == seran_param_count(preset_config(DEFAULT_PRESET, 2))
    assert edsr().count_params() == edsr(2, DEFAULT_PRESET).count_params()
    assert build("rir").count_params() == build("rir", 2, DEFAULT_PRESET).count_params()
    assert RunConfig().preset == registry.Bundled().preset == DEFAULT_PRESET
    signature = inspect.signature(SuperResolver.from_pretrained).parameters
    assert signature["preset"].default == DEFAULT_PRESET
    assert signature["degradation"].default == InferenceConfig.degradation


def test_the_tensorrt_module_restates_the_default_profile_exactly():
    """tensorrt_engine loads without the package (on a Jetson), so it keeps its own copy."""
    from keras_seran.export import tensorrt_engine

    assert tuple(tensorrt_engine.DEFAULT_PROFILES) == config.DEFAULT_TRT_PROFILES


def test_a_config_file_can_give_the_training_data(tmp_path, capsys):
    """train --data is required unless --resume or a --config file with "sources" gives it;
    relative sources are relative to the file."""
    import json

    from keras_seran.cli import main
    from keras_seran.training.command import read_config_file

    cfg = tmp_path / "cfg" / "run.json"
    cfg.parent.mkdir()
    cfg.write_text(json.dumps({"sources": ["scans/*.nii.gz", "/data/ixi"], "train": {}}))
    assert read_config_file(cfg)["sources"] == [str(cfg.parent / "scans/*.nii.gz"), "/data/ixi"]
    cfg.write_text(json.dumps({"sources": 3}))
    with pytest.raises(InputDataError, match='"sources" must be a path or glob'):
        read_config_file(cfg)
    cfg.write_text(json.dumps({"train": {"epochs": 1}}))
    rc = main(["train", "--out", str(tmp_path / "run"), "--config", str(cfg)])
    err = capsys.readouterr().err
    assert rc == 2 and "no training data: pass --data" in err and '"sources"' in err
    assert not (tmp_path / "run").exists()
