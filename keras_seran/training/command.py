"""``keras-seran train``: train on MR volumes through ``model.fit``, resumable.

    keras-seran train --data /data/IXI-T1 --scale 2 --epochs 300 --out runs/x2 --preset small
    keras-seran train --config run.json --resume --out runs/x2

Settings come from the typed configs (``DataConfig``, ``TrainConfig``): defaults, then (with
``--resume``) the run's saved settings, then a JSON file (``--config``, with "data" and "train"
sections), then the flags.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from keras_seran.config import MIXED_PRECISION_KINDS, DataConfig, TrainConfig

# flag -> (section, field)
FLAGS = {
    "epochs": ("train", "epochs"), "steps_per_epoch": ("train", "steps_per_epoch"),
    "lr": ("train", "learning_rate"), "lr_decay_epochs": ("train", "lr_decay_epochs"),
    "clipnorm": ("train", "clipnorm"), "mixed_precision": ("train", "mixed_precision"),
    "multi_gpu": ("train", "distribute"), "early_stop": ("train", "early_stop_patience"),
    "checkpoint_every": ("train", "checkpoint_every_epochs"),
    "patch_size": ("data", "patch_size"), "batch_size": ("data", "batch_size"),
    "degradation": ("data", "degradation"), "noise": ("data", "noise_sigma"),
    "axis": ("data", "slice_axis"), "contrast": ("data", "contrast"),
    "val_fraction": ("data", "val_fraction"), "seed": ("data", "seed"),
    "contrast_augment": ("data", "contrast_augment"),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", nargs="+", help="folder(s), glob(s) or files of MR volumes/slices")
    p.add_argument("--scale", type=int, default=2, choices=[2, 3, 4])
    p.add_argument("--out", type=Path, required=True, help="run directory (checkpoints, logs)")
    p.add_argument("--arch", default="seran", choices=["seran", "edsr", "rcan", "rir", "srcnn"],
                   help="rir: SERAN without its SERA modules (the 'w/o SERA' ablation)")
    p.add_argument("--preset", default="small", choices=["paper", "small", "tiny"])
    p.add_argument("--config", type=Path, help='JSON file {"data": {...}, "train": {...}}')
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--init-from", metavar="MODEL",
                   help="start from the matching layers of a .keras file or bundled name (x2): "
                        "fine-tuning, or x3/x4 from a trained x2 network")
    p.add_argument("--no-tensorboard", action="store_true")
    g = p.add_argument_group("training (TrainConfig)")
    g.add_argument("--epochs", type=int)
    g.add_argument("--steps-per-epoch", type=int)
    g.add_argument("--lr", type=float, help="initial learning rate (paper: 1e-4)")
    g.add_argument("--lr-decay-epochs", type=int, help="halve the lr every N epochs (paper: 200)")
    g.add_argument("--clipnorm", type=float, help="clip gradients to this global norm")
    g.add_argument("--mixed-precision", nargs="?", const=True, default=None,
                   choices=MIXED_PRECISION_KINDS,
                   help="mixed-precision training (no value: float16 on a GPU, bfloat16 on CPU)")
    g.add_argument("--multi-gpu", action="store_true", default=None,
                   help="tf.distribute.MirroredStrategy over all visible GPUs")
    g.add_argument("--early-stop", type=int, metavar="PATIENCE")
    g.add_argument("--checkpoint-every", type=int, metavar="EPOCHS")
    g = p.add_argument_group("data (DataConfig)")
    g.add_argument("--patch-size", type=int, help="LR patch side (paper: 48)")
    g.add_argument("--batch-size", type=int)
    g.add_argument("--degradation", choices=["bicubic", "blur", "kspace"])
    g.add_argument("--noise", type=float, help="Rician noise sigma, [0, 1] units")
    g.add_argument("--axis", type=int, choices=[0, 1, 2], help="slice axis (default 2)")
    g.add_argument("--contrast", help="IXI contrast to select: T1, T2 or PD")
    g.add_argument("--contrast-augment", type=float, metavar="PROB",
                   help="probability of a random intensity remapping per HR patch, so a network "
                        "trained on one contrast generalises to others (default 0)")
    g.add_argument("--val-fraction", type=float)
    g.add_argument("--seed", type=int)


def resolve_configs(args, saved: dict | None = None) -> tuple[DataConfig, TrainConfig]:
    """Defaults <- the resumed run's saved configs <- JSON file <- flags, into the typed configs
    (unknown keys are an error)."""
    from keras_seran.errors import InputDataError

    sections: dict[str, dict] = {"data": dict((saved or {}).get("data", {})),
                                 "train": dict((saved or {}).get("train", {}))}
    if args.config is not None:
        try:
            loaded = json.loads(Path(args.config).read_text())
        except (OSError, ValueError) as exc:
            raise InputDataError(args.config, f"cannot read the config file ({exc})") from None
        for key in loaded:
            if key not in sections:
                raise InputDataError(args.config, f"unknown section {key!r}; use 'data' and 'train'")
            sections[key].update(loaded[key])
    for flag, (section, name) in FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            sections[section][name] = value
    try:
        if "percentiles" in sections["data"]:
            sections["data"]["percentiles"] = tuple(sections["data"]["percentiles"])
        return DataConfig(**sections["data"]), TrainConfig(**sections["train"])
    except (TypeError, ValueError) as exc:
        raise InputDataError(args.config, f"bad configuration: {exc}") from None


def run(args) -> int:
    from keras_seran.data.degrade import resolve_lr_mode
    from keras_seran.errors import InputDataError
    from keras_seran.training import train
    from keras_seran.training.trainer import load_run_config

    saved = load_run_config(args.out) if args.resume else None
    data_cfg, train_cfg = resolve_configs(args, saved)
    data = args.data
    if saved is not None:  # the run's own settings, unless a flag changes them
        data = data or saved.get("sources")
        args.arch, args.preset, args.scale = saved["arch"], saved["preset"], saved["scale"]
    if not data:
        raise InputDataError(None, "no training data: pass --data FOLDER_OR_GLOB")
    try:   # the pipeline's own rule, checked before anything is written
        resolve_lr_mode("auto", data_cfg.degradation, data_cfg.contrast_augment)
    except ValueError as exc:
        raise InputDataError(args.config, f"--contrast-augment: {exc}") from None
    history = train(data, args.scale, args.out, arch=args.arch, preset=args.preset,
                    data=data_cfg, train_cfg=train_cfg, resume=args.resume,
                    tensorboard=not args.no_tensorboard, init_from=args.init_from,
                    verbose=2 if not sys.stdout.isatty() else "auto")
    logs = {k: v[-1] for k, v in history.history.items()} if history.history else {}
    print(f"done: {args.out} (last.keras, best.keras); final " +
          ", ".join(f"{k} {v:.4f}" for k, v in sorted(logs.items())))
    return 0
