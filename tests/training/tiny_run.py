"""The smallest real training run (tiny SERAN x2 on the bundled T1 slab), as CLI arguments or
as a :func:`keras_seran.training.train` call with a test's own callbacks."""

from __future__ import annotations

from pathlib import Path

from keras_seran import samples


def train_args(steps: int = 4) -> list[str]:
    """``keras-seran train`` arguments of a tiny run of ``steps`` steps an epoch (add --epochs,
    --out and the rest)."""
    return [
        "train",
        "--data",
        str(samples.T1_AXIAL_SLAB),
        "--scale",
        "2",
        "--preset",
        "tiny",
        "--axis",
        "1",
        "--patch-size",
        "12",
        "--batch-size",
        "4",
        "--steps-per-epoch",
        str(steps),
        "--val-fraction",
        "0.25",
        "--no-tensorboard",
        "--lr",
        "1e-3",
    ]


def config_file_args(config: Path, out: Path) -> list[str]:
    """``keras-seran train`` on the slab with a ``--config`` file, one step of one epoch."""
    return [
        "train",
        "--data",
        str(samples.T1_AXIAL_SLAB),
        "--out",
        str(out),
        "--config",
        str(config),
        "--epochs",
        "1",
        "--steps-per-epoch",
        "1",
    ]


def train_from_args(argv: list[str], run_dir: Path, **kwargs):
    """:func:`keras_seran.training.train` with the configs the CLI would make of ``argv`` (tiny
    SERAN x2 on the slab); ``kwargs`` go to ``train`` (callbacks, resume, ...)."""
    from keras_seran.cli import build_parser
    from keras_seran.training import train
    from keras_seran.training.command import resolve_configs

    data_cfg, train_cfg = resolve_configs(build_parser(argv).parse_args(argv))
    return train(
        [str(samples.T1_AXIAL_SLAB)],
        2,
        run_dir,
        arch="seran",
        preset="tiny",
        data=data_cfg,
        train_cfg=train_cfg,
        tensorboard=False,
        verbose=0,
        **kwargs,
    )
