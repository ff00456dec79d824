"""Train the bundled pretrained weights (maintainers' script; needs ../shared/data).

Data: the real T1 head volume ``t1_head_256iso.nii.gz`` (256^3, 1 mm). Held out: axial slices
96-127 along axis 1 (this contains the slab bundled as the package's sample, slices 104-119),
plus a gap of 8 slices on each side. Training: the two remaining sub-volumes (axis-1 slices
0-87 and 136-255), sliced along all three axes so the network sees axial, coronal and sagittal
anatomy. Validation each epoch: every other held-out axial slice (16 whole slices).

Degradation: bicubic (MATLAB imresize, the paper's BI). The recipe (our CPU budget; the paper's
1e-4 / 200-epoch halving is the package default), batch 16, flips and 90-degree rotations, Adam:

- x2 stage 1: from scratch, float32, 32x32 LR patches, lr 5e-4 halved every 5 epochs, 20 epochs
  of 100 steps (the first bundled weights);
- x2 stage 2: from stage 1, bfloat16 mixed precision, 48x48 LR patches (the paper's), lr 2e-4
  halved every 13 epochs, 65 epochs of 200 steps;
- x3 and x4: from the final x2 network (every layer but the upsampler, as EDSR does), bfloat16,
  48x48 LR patches, lr 2e-4 halved every 5 epochs, 20 epochs of 200 steps;
- stage 3 (every scale, after SERA gained ``attention_norm``): each scale continues its bundled
  weights, bfloat16, 48x48 LR patches, lr 1e-4 halved every 5 epochs, 10 epochs of 200 steps.
  The attention norm adds no weight, so the earlier weights load as they are. Stage 3 exports the
  final epoch (``--pick last``), not the best validation epoch: the validation slices overlap the
  bundled evaluation slab, so no choice is made on them.

SERAN and the matched EDSR go through the same recipe (``--arch edsr``).

    python scripts/train_pretrained.py --arch seran --scale 2 --stage 1 --out runs/pretrained
    python scripts/train_pretrained.py --arch seran --scale 2 --out runs/pretrained   # stage 2
    python scripts/train_pretrained.py --arch seran --scale 3 --out runs/pretrained
    python scripts/train_pretrained.py --arch seran --scale 2 --out runs/pretrained --export
    python scripts/train_pretrained.py --arch seran --scale 4 --stage 3 --out runs/pretrained
    python scripts/train_pretrained.py --arch seran --scale 4 --stage 3 --out runs/pretrained --export

Scanner-realistic weights (``--degradation kspace``, the default of ``keras-seran predict``):
one stage continuing the bundled bicubic weights of the same network and scale, LR made by
k-space truncation with a random k-space filter, partial Fourier and Rician noise
(``AcquisitionConfig``'s defaults); float32, x2 8 epochs of 150 steps, x3/x4 4; final epoch
exported (``RECIPES["kspace"]``, ``RECIPES["kspace_x3_x4"]``):

    python scripts/train_pretrained.py --arch seran --scale 2 --degradation kspace --out runs/pretrained
    python scripts/train_pretrained.py --arch seran --scale 2 --degradation kspace --out runs/pretrained --export
    python scripts/train_pretrained.py --arch edsr --scale 4 --degradation kspace --out runs/pretrained --resume

``--export`` copies a checkpoint's weights into ``keras_seran/weights/`` with a JSON card: the
best validation epoch at stages 1-2, the final epoch at stage 3 and for kspace (``--pick``
chooses).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("KERAS_SERAN_SHARED_DATA", REPO.parent / "shared" / "data"))
VOLUME = SHARED / "t1_head_256iso.nii.gz"
HELD_OUT = (96, 128)  # axis-1 slice range never used for training
GAP = 8
PRESET = "small"
# The training recipe of the bundled weights (see the module docstring); flags override it.
RECIPES = {
    "x2_stage1": dict(
        epochs=20, steps=100, patch=32, lr=5e-4, decay_epochs=5, mixed_precision=False
    ),
    "x2_stage2": dict(
        epochs=65, steps=200, patch=48, lr=2e-4, decay_epochs=13, mixed_precision=True
    ),
    "x3_x4": dict(epochs=20, steps=200, patch=48, lr=2e-4, decay_epochs=5, mixed_precision=True),
    "stage3": dict(epochs=10, steps=200, patch=48, lr=1e-4, decay_epochs=5, mixed_precision=True),
    # scanner-realistic weights: continue the bundled bicubic network of the same arch and scale
    "kspace": dict(epochs=8, steps=150, patch=48, lr=2e-4, decay_epochs=4, mixed_precision=False),
    # x3/x4: half the epochs (a CPU time budget), at the x2 recipe's first-half learning rate
    "kspace_x3_x4": dict(
        epochs=4, steps=150, patch=48, lr=2e-4, decay_epochs=4, mixed_precision=False
    ),
}


def split_volume():
    """(train_subvolumes, val_slab) of the normalised real T1 volume, see module docstring."""
    from keras_seran.data.io import load_volume
    from keras_seran.data.normalize import fit_normalization

    vol = load_volume(VOLUME).data
    stats = fit_normalization(vol)
    vol = stats.apply(vol)
    lo, hi = HELD_OUT
    return [vol[:, : lo - GAP, :], vol[:, hi + GAP :, :]], vol[:, lo:hi:2, :]


def datasets(scale: int, data_cfg):
    import dataclasses

    from keras_seran.data.pipeline import train_dataset, validation_dataset
    from keras_seran.data.slices import load_slice_sets

    train_parts, val_slab = split_volume()
    # The parts are already normalised to [0, 1]: percentiles (0, 100) keep them as they are.
    keep = dataclasses.replace(data_cfg, val_fraction=0.0, percentiles=(0.0, 100.0))
    train, _ = load_slice_sets(train_parts, scale, dataclasses.replace(keep, slice_axis=None))
    val, _ = load_slice_sets(
        [val_slab], scale, dataclasses.replace(keep, slice_axis=1, min_foreground=0.0)
    )
    return train_dataset(train, scale, data_cfg), validation_dataset(val, scale, data_cfg)


def run_card(run_dir: Path, arch: str, scale: int, parameters: int, pick: str = "best") -> dict:
    """The JSON card of a finished run, with the card of the run (or bundled weights) it
    continued under ``continued_from`` when it is an earlier stage of the same scale.

    ``pick`` says which checkpoint was exported: "best" (best validation PSNR) or "last" (the
    final epoch, whose validation PSNR is recorded as ``final_val_psnr``)."""
    import keras

    from keras_seran.config import preset_config, to_dict
    from keras_seran.runs import LOG, RUN_CONFIG, STATE_FILE

    state = json.loads((run_dir / STATE_FILE).read_text())
    run_cfg = json.loads((run_dir / RUN_CONFIG).read_text())
    log_lines = (run_dir / LOG).read_text().strip().splitlines()
    seconds_file = run_dir / "seconds.txt"
    card = {
        "arch": arch,
        "preset": PRESET,
        "scale": scale,
        "parameters": parameters,
        "data": f"{VOLUME.name} (real T1, 1 mm iso), axis-1 slices outside "
        f"{HELD_OUT[0] - GAP}-{HELD_OUT[1] + GAP - 1}, sliced along all three axes",
        "held_out": f"axis-1 slices {HELD_OUT[0]}-{HELD_OUT[1] - 1} (bundled sample: 104-119)",
        "model": to_dict(preset_config(PRESET, scale)),
        "degradation": run_cfg["data"]["degradation"],
        "init_from": run_cfg.get("init_from"),
        "train": run_cfg["train"],
        "data_config": run_cfg["data"],
        "epochs_completed": state["epoch"],
        "best_val_psnr_during_training": state["best"],
        "exported_checkpoint": pick,
        "final_val_psnr": float(log_lines[-1].split(",")[log_lines[0].split(",").index("val_psnr")])
        if len(log_lines) > 1
        else None,
        "training_seconds": float(seconds_file.read_text()) if seconds_file.exists() else None,
        "epochs_logged": len(log_lines) - 1,
        "hardware": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, CPU",
        "keras": keras.__version__,
        "trained": time.strftime("%Y-%m-%d"),
    }
    init_run = Path(card["init_from"]).parent if card["init_from"] else None
    if (run_dir / "init_card.json").exists():  # started from bundled weights (recorded then)
        card["continued_from"] = json.loads((run_dir / "init_card.json").read_text())
        card["init_from"] = (
            f"the bundled {arch} x{scale} weights before this stage (see continued_from)"
        )
    elif (
        init_run is not None
        and (init_run / RUN_CONFIG).exists()
        and json.loads((init_run / RUN_CONFIG).read_text())["scale"] == scale
    ):
        card["continued_from"] = run_card(init_run, arch, scale, parameters)  # earlier run
        card["init_from"] = (
            f"an earlier run of the same scale, {init_run} ({arch} x{scale}: see continued_from)"
        )
    return card


def export(
    run_dir: Path, arch: str, scale: int, pick: str = "best", degradation: str = "bicubic"
) -> Path:
    """Copy the run's ``pick`` ("best" or "last") weights into the package (float32 model)
    with their JSON card."""
    import keras

    from keras_seran.registry import Bundled
    from keras_seran.training.trainer import build_model

    trained = keras.saving.load_model(run_dir / f"{pick}.keras")
    model = build_model(arch, scale, PRESET)  # uncompiled: the file holds no optimizer state
    model.set_weights(trained.get_weights())
    bundled = Bundled(arch, scale, PRESET, degradation)
    dest = bundled.weights_path
    dest.parent.mkdir(parents=True, exist_ok=True)
    card = run_card(run_dir, arch, scale, model.count_params(), pick)
    model.save_weights(dest)
    bundled.card_path.write_text(json.dumps(card, indent=2) + "\n")
    return dest


def main(argv=None) -> int:
    from keras_seran.config import MIXED_PRECISION_KINDS, DataConfig, check_contrast_args

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=int, default=2)
    p.add_argument(
        "--arch",
        default="seran",
        choices=["seran", "edsr", "rir"],
        help="rir: SERAN without SERA (ablation runs; not bundled)",
    )
    p.add_argument("--out", default=str(REPO / "runs" / "pretrained"))
    p.add_argument(
        "--stage",
        type=int,
        default=2,
        choices=[1, 2, 3],
        help="x2: 1 = from scratch, 2 = continue stage 1; any scale: 3 = continue the "
        "bundled weights (see the recipe)",
    )
    p.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    p.add_argument("--steps", type=int, default=None, help="steps per epoch (recipe's default)")
    p.add_argument("--patch", type=int, default=None, help="LR patch side (recipe's default)")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--decay-epochs", type=int, default=None, help="halve the lr every N epochs")
    p.add_argument("--resume", action="store_true")
    p.add_argument(
        "--init-from",
        default="auto",
        help="'auto': the recipe's (x2 stage 2: the stage-1 run; x3/x4: the x2 run), "
        "a .keras file, a bundled name (seran-x2), or 'none'",
    )
    p.add_argument(
        "--degradation",
        choices=["bicubic", "kspace"],
        default="bicubic",
        help="kspace: the scanner-realistic weights (k-space truncation with random "
        "k-space filter, partial Fourier and Rician noise, AcquisitionConfig's "
        "defaults), continuing the bundled bicubic weights of the same scale",
    )
    p.add_argument("--export", action="store_true", help="only export the finished run's weights")
    p.add_argument(
        "--pick",
        choices=["best", "last"],
        default=None,
        help="checkpoint to export (default: 'last' at stage 3, else 'best'). The "
        "validation slices are every other held-out slice, so they overlap the "
        "bundled evaluation slab: 'last' involves no selection on them",
    )
    p.add_argument("--threads", type=int, default=0, help="TensorFlow intra-op threads (0: all)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="patch-stream seed (default: the scale at stage 1, 10 + scale after)",
    )
    p.add_argument(
        "--contrast-augment",
        type=float,
        default=DataConfig.contrast_augment,
        help="probability of a random HR intensity remapping (the bundled weights: %(default)s)",
    )
    p.add_argument(
        "--mixed-precision",
        nargs="?",
        const=True,
        default=None,
        choices=MIXED_PRECISION_KINDS,
        help="mixed precision (no value: bfloat16 on CPU, float16 on GPU); default: the recipe's",
    )
    args = p.parse_args(argv)
    try:
        check_contrast_args(args.contrast_augment, DataConfig.contrast_knots)
    except ValueError as exc:
        p.error(str(exc))
    if args.threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    kspace = args.degradation == "kspace"
    stage1 = args.scale == 2 and args.stage == 1 and not kspace
    stage3 = args.stage == 3 or kspace  # kspace: one stage, continuing bundled weights
    if kspace:
        recipe = RECIPES["kspace" if args.scale == 2 else "kspace_x3_x4"]
    else:
        recipe = RECIPES[
            "stage3"
            if stage3
            else "x2_stage1"
            if stage1
            else "x2_stage2"
            if args.scale == 2
            else "x3_x4"
        ]
    for name, value in recipe.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    suffix = "_kspace" if kspace else "_stage1" if stage1 else "_stage3" if stage3 else ""
    run_dir = Path(args.out) / f"{args.arch}_x{args.scale}{suffix}"
    if args.export:
        pick = args.pick or ("last" if stage3 else "best")
        if not (run_dir / f"{pick}.keras").exists():
            print(
                f"{run_dir / f'{pick}.keras'}: missing; train this stage first (see --help)",
                file=sys.stderr,
            )
            return 2
        print(export(run_dir, args.arch, args.scale, pick, args.degradation))
        return 0
    if not VOLUME.exists():
        print(f"{VOLUME}: missing; this script needs ../shared/data", file=sys.stderr)
        return 2
    from keras_seran.config import AcquisitionConfig, TrainConfig
    from keras_seran.registry import parse
    from keras_seran.training import train

    data_cfg = DataConfig(
        patch_size=args.patch,
        batch_size=args.batch,
        contrast_augment=args.contrast_augment,
        degradation=args.degradation,
        acquisition=AcquisitionConfig() if kspace else None,
        seed=args.seed
        if args.seed is not None
        else args.scale
        if stage1
        else (20 if kspace else 10) + args.scale,
    )
    train_cfg = TrainConfig(
        epochs=args.epochs,
        steps_per_epoch=args.steps,
        learning_rate=args.lr,
        lr_decay_epochs=args.decay_epochs,
        mixed_precision=args.mixed_precision,
    )
    init = None if args.init_from == "none" else args.init_from
    if init == "auto" and stage3 and not args.resume:
        init = f"{args.arch}-x{args.scale}"
    if init == "auto":
        if stage1 or args.resume:
            init = None
        else:
            source = Path(args.out) / f"{args.arch}_x2{'_stage1' if args.scale == 2 else ''}"
            init = str(source / "best.keras")
            if not Path(init).exists():
                print(f"{init}: missing; train that run first (see --help)", file=sys.stderr)
                return 2
    parsed = parse(init) if init else None
    if parsed is not None and not args.resume:  # record the bundled card before it is replaced
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "init_card.json").write_text(json.dumps(parsed.card(), indent=2))
    start = time.time()
    train(
        str(VOLUME),
        args.scale,
        run_dir,
        arch=args.arch,
        preset=PRESET,
        data=data_cfg,
        train_cfg=train_cfg,
        resume=args.resume,
        datasets=datasets(args.scale, data_cfg),
        verbose=2,
        tensorboard=False,
        init_from=None if args.resume else init,
    )
    elapsed = time.time() - start
    prev = run_dir / "seconds.txt"
    total = elapsed + (float(prev.read_text()) if args.resume and prev.exists() else 0.0)
    prev.write_text(f"{total:.0f}\n")
    print(f"trained {args.arch} x{args.scale} in {total / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
