"""``keras-seran train``: train on MR volumes through ``model.fit``, resumable.

    keras-seran train --data /data/IXI-T1 --scale 2 --epochs 300 --out runs/x2 --preset small
    keras-seran train --config run.json --out runs/x2
    keras-seran train --resume --out runs/x2 --epochs 600

Settings come from the typed configs (``RunConfig``, ``DataConfig``, ``TrainConfig``), whose
fields also make the flags: defaults, then (with ``--resume``) the run's saved settings, then a
JSON file (``--config``, with "sources", "data" and "train" entries), then the flags. A resumed
run continues exactly what was saved: only the number of epochs, the early-stop patience, the
checkpoint interval and the device placement may change (``RESUMABLE``); any other setting
that differs from ``run_config.json`` is an error (start a new run with ``--init-from
RUN/last.keras`` to change it). ``--data`` may point elsewhere on resume (a data folder that moved); the new sources are
recorded in ``run_config.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from keras_seran.config import (
    DataConfig,
    RunConfig,
    TrainConfig,
    add_config_arguments,
    flag_values,
    with_flag_names,
)

#: (section, field) a resumed run may change: they do not alter the model, the optimizer state
#: or the patch stream it continues (the global batch stream is the same on any number of
#: devices, so a run may resume on another machine or cluster size).
RESUMABLE = {
    ("train", "epochs"),
    ("train", "early_stop_patience"),
    ("train", "checkpoint_every_epochs"),
    ("train", "distribute"),
}
#: entries of a --config file: the data sources and the two config sections
CONFIG_KEYS = ("sources", "data", "train")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        nargs="+",
        help="folder(s), glob(s) or files of MR volumes/slices; required, unless "
        '--resume (the run\'s own data) or a --config file with "sources" '
        "gives them",
    )
    p.add_argument("--out", type=Path, required=True, help="run directory (checkpoints, logs)")
    add_config_arguments(p, RunConfig)
    p.add_argument(
        "--config",
        type=Path,
        help='JSON file {"sources": [...], "data": {...}, "train": {...}} (each '
        "optional; relative sources are relative to the file)",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument(
        "--init-from",
        metavar="MODEL",
        help="start from the matching layers of a .keras file or bundled name (x2): "
        "fine-tuning, or x3/x4 from a trained x2 network",
    )
    p.add_argument(
        "--no-tensorboard",
        action="store_true",
        help="write no TensorBoard logs (log.csv has the metrics; default: write them "
        "under OUT/tensorboard)",
    )
    training = p.add_argument_group("training (TrainConfig)")
    add_config_arguments(training, TrainConfig)
    training.add_argument(
        "--multi-gpu",
        dest="distribute",
        action="store_const",
        const="mirrored",
        help="the same as --distribute mirrored",
    )
    add_config_arguments(p.add_argument_group("data (DataConfig)"), DataConfig)


def read_config_file(path: Path | None) -> dict:
    """The --config file as {"sources": [...] (absolute), "data": {...}, "train": {...}}
    (missing entries left out); InputDataError naming the file when it is not one."""
    from keras_seran.errors import InputDataError

    if path is None:
        return {}
    try:
        loaded = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InputDataError(path, f"cannot read the config file ({exc})") from None
    if not isinstance(loaded, dict):
        raise InputDataError(
            path, 'must hold a JSON object {"sources": [...], "data": {...}, "train": {...}}'
        )
    for key, value in loaded.items():
        if key not in CONFIG_KEYS:
            raise InputDataError(
                path, f"unknown section {key!r}; use {', '.join(map(repr, CONFIG_KEYS))}"
            )
        if key != "sources" and not isinstance(value, dict):
            raise InputDataError(
                path,
                f"section {key!r} must be a JSON object of settings, not {type(value).__name__}",
            )
    if "sources" in loaded:
        sources = loaded["sources"]
        sources = [sources] if isinstance(sources, str) else sources
        if not (isinstance(sources, list) and sources and all(isinstance(x, str) for x in sources)):
            raise InputDataError(path, '"sources" must be a path or glob, or a list of them')
        base = Path(path).resolve().parent
        loaded["sources"] = [
            x if Path(x).expanduser().is_absolute() else str(base / x) for x in sources
        ]
    return loaded


def resolve_configs(args, saved: dict | None = None) -> tuple[DataConfig, TrainConfig]:
    """Defaults <- the resumed run's saved configs <- JSON file <- flags, into the typed configs
    (unknown keys are an error naming the file, or the flag)."""
    from keras_seran.errors import InputDataError

    loaded = read_config_file(args.config)
    flags = {"data": flag_values(DataConfig, args), "train": flag_values(TrainConfig, args)}
    sections = {
        name: {**(saved or {}).get(name, {}), **loaded.get(name, {}), **flags[name]}
        for name in ("data", "train")
    }
    try:
        return DataConfig(**sections["data"]), TrainConfig(**sections["train"])
    except (TypeError, ValueError) as exc:
        message = with_flag_names(
            with_flag_names(str(exc), DataConfig, flags["data"]), TrainConfig, flags["train"]
        )
        raise InputDataError(args.config, f"bad configuration: {message}") from None


def check_resume(
    args, saved: dict, data_cfg: DataConfig, train_cfg: TrainConfig, where: Path
) -> None:
    """InputDataError when the flags or --config ask a resumed run to change what it cannot
    (see ``RESUMABLE``); ``where`` is the saved run_config.json."""
    from keras_seran.config import to_dict
    from keras_seran.errors import InputDataError

    changed = [
        f"--{k} {v} (the run trains {saved.get(k)})"
        for k, v in flag_values(RunConfig, args).items()
        if v != saved.get(k)
    ]
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
        raise InputDataError(
            where,
            "--resume continues the saved run, which cannot change: "
            + "; ".join(changed)
            + ". Only --epochs, --early-stop, "
            "--checkpoint-every and --distribute may change; to change "
            "the rest start a new run with --init-from RUN/last.keras",
        )


def run(args) -> int:
    from keras_seran.data.degrade import resolve_lr_mode
    from keras_seran.errors import InputDataError, UsageError
    from keras_seran.runs import RUN_CONFIG, describe_sources, load_run_config, read_state
    from keras_seran.training import train

    saved = load_run_config(args.out) if args.resume else None
    data_cfg, train_cfg = resolve_configs(args, saved)
    data = args.data or read_config_file(args.config).get("sources")
    network = flag_values(RunConfig, args)
    if saved is not None:  # the run's own settings; a flag may extend it, not change it
        check_resume(args, saved, data_cfg, train_cfg, Path(args.out) / RUN_CONFIG)
        data = data or saved.get("sources")
        network = {k: saved[k] for k in ("arch", "preset", "scale")}
        state = read_state(Path(args.out))
        done = int(state["epoch"]) if state else 0
        if done >= train_cfg.epochs:
            print(
                f"{args.out}: already trained for {done} epoch(s) (--epochs "
                f"{train_cfg.epochs}); nothing to do. Pass a larger --epochs to train on."
            )
            return 0
    run_cfg = RunConfig(**network)
    if not data:
        raise UsageError(
            "no training data: pass --data FOLDER_OR_GLOB (or --resume a run, or "
            'a --config file with "sources")'
        )
    try:  # the pipeline's own rule, checked before anything is written
        resolve_lr_mode("auto", data_cfg.degradation, data_cfg.contrast_augment)
    except ValueError as exc:
        raise InputDataError(args.config, f"--contrast-augment: {exc}") from None
    if saved is not None and args.data and describe_sources(args.data) != saved.get("sources"):
        print(
            f"resuming with --data {' '.join(map(str, args.data))} (the run was started on "
            f"{saved.get('sources')})"
        )
    history = train(
        data,
        run_cfg.scale,
        args.out,
        arch=run_cfg.arch,
        preset=run_cfg.preset,
        data=data_cfg,
        train_cfg=train_cfg,
        resume=args.resume,
        tensorboard=not args.no_tensorboard,
        init_from=args.init_from,
        verbose=2 if not sys.stdout.isatty() else "auto",
    )
    logs = {k: v[-1] for k, v in history.history.items()} if history.history else {}
    print(
        f"done: {args.out} (last.keras, best.keras); final "
        + (", ".join(f"{k} {v:.4f}" for k, v in sorted(logs.items())) or "(no epoch run)")
    )
    return 0
