"""``keras-seran train``: train on MR volumes through ``model.fit``, resumable.

    keras-seran train --data /data/IXI-T1 --scale 2 --epochs 300 --out runs/x2 --preset small
    keras-seran train --config run.json --resume --out runs/x2

Settings come from the typed configs (``DataConfig``, ``TrainConfig``): defaults, then (with
``--resume``) the run's saved settings, then a JSON file (``--config``, with "data" and "train"
sections), then the flags. A resumed run continues exactly what was saved: only the number of
epochs, the early-stop patience and the checkpoint interval may change (``RESUMABLE``); any
other setting that differs from ``run_config.json`` is an error (start a new run with
``--init-from RUN/last.keras`` to change it). ``--data`` may point elsewhere on resume (a data
folder that moved); the new sources are recorded in ``run_config.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from keras_seran.config import (DEGRADATIONS, MIXED_PRECISION_KINDS, PRESETS, SUPPORTED_SCALES,
                                TRAINABLE_ARCHS, DataConfig, TrainConfig)

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


#: (section, field) a resumed run may change: they do not alter the model, the optimizer state
#: or the patch stream it continues.
RESUMABLE = {("train", "epochs"), ("train", "early_stop_patience"),
             ("train", "checkpoint_every_epochs")}
#: the network the run trains, and the default of each flag (None in the parser, so that a flag
#: given on the command line can be told apart from the default)
NETWORK_DEFAULTS = {"scale": 2, "arch": "seran", "preset": "small"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", nargs="+", help="folder(s), glob(s) or files of MR volumes/slices")
    p.add_argument("--scale", type=int, default=None, choices=SUPPORTED_SCALES, help="default 2")
    p.add_argument("--out", type=Path, required=True, help="run directory (checkpoints, logs)")
    p.add_argument("--arch", default=None, choices=TRAINABLE_ARCHS,
                   help="default seran; rir: SERAN without its SERA modules (the 'w/o SERA' "
                        "ablation)")
    p.add_argument("--preset", default=None, choices=list(PRESETS),
                   help="default small")
    p.add_argument("--config", type=Path, help='JSON file {"data": {...}, "train": {...}}')
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--init-from", metavar="MODEL",
                   help="start from the matching layers of a .keras file or bundled name (x2): "
                        "fine-tuning, or x3/x4 from a trained x2 network")
    p.add_argument("--no-tensorboard", action="store_true",
                   help="write no TensorBoard logs (log.csv has the metrics; default: write them "
                        "under OUT/tensorboard)")
    t, d = TrainConfig, DataConfig   # the defaults shown are the configs' own
    g = p.add_argument_group("training (TrainConfig)")
    g.add_argument("--epochs", type=int, help=f"epochs to train in all (default {t.epochs})")
    g.add_argument("--steps-per-epoch", type=int,
                   help=f"batches per epoch (default {t.steps_per_epoch})")
    g.add_argument("--lr", type=float,
                   help=f"initial learning rate (default {t.learning_rate:g}, the paper's)")
    g.add_argument("--lr-decay-epochs", type=int,
                   help=f"halve the lr every N epochs (default {t.lr_decay_epochs}, the paper's)")
    g.add_argument("--clipnorm", type=float, help="clip gradients to this global norm")
    g.add_argument("--mixed-precision", nargs="?", const=True, default=None,
                   choices=MIXED_PRECISION_KINDS,
                   help="mixed-precision training (no value: float16 on a GPU, bfloat16 on CPU)")
    g.add_argument("--multi-gpu", action="store_true", default=None,
                   help="tf.distribute.MirroredStrategy over all visible GPUs (tensorflow "
                        "backend only)")
    g.add_argument("--early-stop", type=int, metavar="PATIENCE",
                   help="stop after PATIENCE epochs without a better val_psnr (psnr without "
                        "validation data; default: no early stop)")
    g.add_argument("--checkpoint-every", type=int, metavar="EPOCHS",
                   help="write last.keras every EPOCHS epochs, and at the end of training "
                        f"(default {t.checkpoint_every_epochs})")
    g = p.add_argument_group("data (DataConfig)")
    g.add_argument("--patch-size", type=int,
                   help=f"LR patch side (default {d.patch_size}, the paper's)")
    g.add_argument("--batch-size", type=int,
                   help=f"patches per batch (default {d.batch_size}, the paper's)")
    g.add_argument("--degradation", choices=DEGRADATIONS)
    g.add_argument("--noise", type=float, help="Rician noise sigma, [0, 1] units")
    g.add_argument("--axis", type=int, choices=[0, 1, 2], help="slice axis (default 2)")
    g.add_argument("--contrast", help="IXI/BIDS contrast to select by file name: T1, T2, PD, "
                                      "MRA or DTI (any case)")
    g.add_argument("--contrast-augment", type=float, metavar="PROB",
                   help="probability of a random intensity remapping per HR patch, so a network "
                        "trained on one contrast generalises to others (default 0)")
    g.add_argument("--val-fraction", type=float,
                   help="fraction of the subjects held out for validation (at least one; one "
                        "subject: a slab at the end of each volume; 2D slice files of one "
                        f"subject: of the files) (default {d.val_fraction})")
    g.add_argument("--seed", type=int,
                   help=f"seed of the split, patch positions and augmentation (default {d.seed})")


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
        if not isinstance(loaded, dict):
            raise InputDataError(args.config, 'must hold a JSON object {"data": {...}, '
                                              '"train": {...}}')
        for key in loaded:
            if key not in sections:
                raise InputDataError(args.config, f"unknown section {key!r}; use 'data' and 'train'")
            if not isinstance(loaded[key], dict):
                raise InputDataError(args.config, f"section {key!r} must be a JSON object of "
                                                  f"settings, not {type(loaded[key]).__name__}")
            sections[key].update(loaded[key])
    for flag, (section, name) in FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            sections[section][name] = value
    try:
        return DataConfig(**sections["data"]), TrainConfig(**sections["train"])
    except (TypeError, ValueError) as exc:
        raise InputDataError(args.config, f"bad configuration: {exc}") from None


def check_resume(args, saved: dict, data_cfg: DataConfig, train_cfg: TrainConfig,
                 where: Path) -> None:
    """InputDataError when the flags or --config ask a resumed run to change what it cannot
    (see ``RESUMABLE``); ``where`` is the saved run_config.json."""
    from keras_seran.config import to_dict
    from keras_seran.errors import InputDataError

    changed = [f"--{k} {getattr(args, k)} (the run trains {saved.get(k)})"
               for k in NETWORK_DEFAULTS if getattr(args, k) is not None
               and getattr(args, k) != saved.get(k)]
    if args.init_from is not None:
        changed.append(f"--init-from {args.init_from} (a resumed run starts from its checkpoint)")
    # the JSON round trip run_config.json went through (tuples become lists)
    now = json.loads(json.dumps({"data": to_dict(data_cfg), "train": to_dict(train_cfg)}))
    for section in ("data", "train"):
        before = saved.get(section, {})
        for name, value in now[section].items():
            if name in before and before[name] != value and (section, name) not in RESUMABLE:
                changed.append(f"{section}.{name} {value!r} (the run has {before[name]!r})")
    if changed:
        raise InputDataError(where, "--resume continues the saved run, which cannot change: "
                                    + "; ".join(changed) + ". Only --epochs, --early-stop and "
                                    "--checkpoint-every may change; to change the rest start a "
                                    "new run with --init-from RUN/last.keras")


def run(args) -> int:
    from keras_seran.data.degrade import resolve_lr_mode
    from keras_seran.errors import InputDataError, UsageError
    from keras_seran.training import train
    from keras_seran.runs import RUN_CONFIG, describe_sources, load_run_config, read_state

    saved = load_run_config(args.out) if args.resume else None
    data_cfg, train_cfg = resolve_configs(args, saved)
    data = args.data
    if saved is not None:  # the run's own settings; a flag may extend it, not change it
        check_resume(args, saved, data_cfg, train_cfg, Path(args.out) / RUN_CONFIG)
        data = data or saved.get("sources")
        args.arch, args.preset, args.scale = saved["arch"], saved["preset"], saved["scale"]
        state = read_state(Path(args.out))
        done = int(state["epoch"]) if state else 0
        if done >= train_cfg.epochs:
            print(f"{args.out}: already trained for {done} epoch(s) (--epochs "
                  f"{train_cfg.epochs}); nothing to do. Pass a larger --epochs to train on.")
            return 0
    for key, default in NETWORK_DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, default)
    if not data:
        raise UsageError("no training data: pass --data FOLDER_OR_GLOB")
    try:   # the pipeline's own rule, checked before anything is written
        resolve_lr_mode("auto", data_cfg.degradation, data_cfg.contrast_augment)
    except ValueError as exc:
        raise InputDataError(args.config, f"--contrast-augment: {exc}") from None
    if saved is not None and args.data and describe_sources(args.data) != saved.get("sources"):
        print(f"resuming with --data {' '.join(map(str, args.data))} (the run was started on "
              f"{saved.get('sources')})")
    history = train(data, args.scale, args.out, arch=args.arch, preset=args.preset,
                    data=data_cfg, train_cfg=train_cfg, resume=args.resume,
                    tensorboard=not args.no_tensorboard, init_from=args.init_from,
                    verbose=2 if not sys.stdout.isatty() else "auto")
    logs = {k: v[-1] for k, v in history.history.items()} if history.history else {}
    print(f"done: {args.out} (last.keras, best.keras); final " +
          (", ".join(f"{k} {v:.4f}" for k, v in sorted(logs.items())) or "(no epoch run)"))
    return 0
