"""Train the bundled through-plane SERAN (maintainers' script; needs ../shared/data).

Data: the real T1 head volume of ``train_pretrained.py`` with the same held-out slab (axis-1
slices 96-127 plus a gap of 8 on each side): fine 1 mm 2D slices of the two training
sub-volumes along all three axes. Pairs: :class:`keras_seran.data.throughplane.ThickSlicePatches`
with :class:`keras_seran.config.ThickSliceConfig`'s defaults: 64x64 fine patches, thick slices
of 2-6 fine voxels along the rows (boxcar or Gaussian profile, a gap now and then, random
offset), Rician noise on half the patches, cubic interpolation back onto the fine rows.
Validation each epoch: 8 held-out axial slices made 4 mm thick along their rows (boxcar).

The network (:func:`keras_seran.models.throughplane.seran_through_plane`, ``small``) starts from
the bundled in-plane SERAN x2 trunk (every layer but the upsampler; the reconstruction conv
starts at zero, so training starts from cubic interpolation). Recipe: float32, batch 16, L1,
Adam, lr 2e-4 halved every 3 epochs, 8 epochs of 150 steps (97 min on 2 CPU cores).

    python scripts/train_throughplane.py --out runs/pretrained
    python scripts/train_throughplane.py --out runs/pretrained --resume
    python scripts/train_throughplane.py --out runs/pretrained --export

``--export`` copies the final epoch's weights into ``keras_seran/weights/`` (the registry's
through-plane name) with a JSON card.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from train_pretrained import GAP, HELD_OUT, PRESET, VOLUME, split_volume  # noqa: E402

RECIPE = dict(epochs=8, steps=150, lr=2e-4, decay_epochs=3)
VAL_THICKNESS = 4
RUN_NAME = "seran_throughplane"


def datasets(cfg, steps: int, start_epoch: int):
    """(train, val) PyDatasets of the split in the module docstring."""
    import dataclasses

    from keras_seran.config import DataConfig
    from keras_seran.data.pydataset import SlicePairPyDataset
    from keras_seran.data.slices import load_slice_sets
    from keras_seran.data.throughplane import ThickSlicePatches, thick_slice_pair

    parts, val_slab = split_volume()
    keep = DataConfig(val_fraction=0.0, percentiles=(0.0, 100.0), slice_axis=None)
    train, _ = load_slice_sets(parts, 2, keep)
    val, _ = load_slice_sets(
        [val_slab[:, ::2, :]], 2, dataclasses.replace(keep, slice_axis=1, min_foreground=0.0)
    )
    pairs = [thick_slice_pair(s, VAL_THICKNESS) for s in val.slices]
    return (
        ThickSlicePatches(train, cfg, steps, start_epoch=start_epoch),
        SlicePairPyDataset([p[0] for p in pairs], [p[1] for p in pairs]),
    )


def export(run_dir: Path) -> Path:
    """The final epoch's weights into the package, with a JSON card."""
    import keras

    from keras_seran.config import preset_config, to_dict
    from keras_seran.registry import THROUGH_PLANE
    from keras_seran.runs import LAST, LOG, STATE_FILE

    trained = keras.saving.load_model(run_dir / LAST, compile=False)
    model = THROUGH_PLANE.build()
    model.set_weights(trained.get_weights())
    state = json.loads((run_dir / STATE_FILE).read_text())
    log = (run_dir / LOG).read_text().strip().splitlines()
    settings = json.loads((run_dir / "settings.json").read_text())
    card = {
        "arch": "seran_through_plane",
        "preset": PRESET,
        "parameters": model.count_params(),
        "data": f"{VOLUME.name} (real T1, 1 mm iso), axis-1 slices outside "
        f"{HELD_OUT[0] - GAP}-{HELD_OUT[1] + GAP - 1}, 2D slices along all three axes",
        "held_out": f"axis-1 slices {HELD_OUT[0]}-{HELD_OUT[1] - 1}",
        "model": to_dict(preset_config(PRESET)),
        "degradation": "thick slices along the rows",
        "thick_slices": settings["thick_slices"],
        "train": settings["train"],
        "init_from": settings["init_from"],
        "epochs_completed": state["epoch"],
        "final_val_psnr": float(log[-1].split(",")[log[0].split(",").index("val_psnr")]),
        "validation": f"{VAL_THICKNESS}-voxel boxcar slices of held-out axial slices",
        "training_seconds": settings.get("seconds"),
        "hardware": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, CPU",
        "keras": keras.__version__,
        "trained": time.strftime("%Y-%m-%d"),
    }
    THROUGH_PLANE.weights_path.parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(THROUGH_PLANE.weights_path)
    THROUGH_PLANE.card_path.write_text(json.dumps(card, indent=2) + "\n")
    return THROUGH_PLANE.weights_path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/pretrained")
    p.add_argument("--epochs", type=int, default=RECIPE["epochs"])
    p.add_argument("--steps", type=int, default=RECIPE["steps"])
    p.add_argument("--lr", type=float, default=RECIPE["lr"])
    p.add_argument("--decay-epochs", type=int, default=RECIPE["decay_epochs"])
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--export", action="store_true", help="only export the finished run")
    args = p.parse_args(argv)
    run_dir = Path(args.out) / RUN_NAME
    if args.export:
        print(export(run_dir))
        return 0
    if not VOLUME.exists():
        print(f"{VOLUME}: missing; this script needs ../shared/data", file=sys.stderr)
        return 2

    import keras

    from keras_seran.config import ThickSliceConfig, TrainConfig, to_dict
    from keras_seran.registry import THROUGH_PLANE, Bundled
    from keras_seran.runs import LAST, LOG, prepare_run_dir
    from keras_seran.training.callbacks import RunCheckpoint
    from keras_seran.training.optim import compile_model
    from keras_seran.training.trainer import transfer_weights

    state = prepare_run_dir(run_dir, args.resume)
    start_epoch = 0 if state is None else int(state["epoch"])
    cfg = ThickSliceConfig(seed=args.seed)
    train_cfg = TrainConfig(
        epochs=args.epochs,
        steps_per_epoch=args.steps,
        learning_rate=args.lr,
        lr_decay_epochs=args.decay_epochs,
    )
    train_ds, val_ds = datasets(cfg, args.steps, start_epoch)
    init = Bundled("seran", 2)
    if state is None:
        model = THROUGH_PLANE.build()
        copied = transfer_weights(model, init.load())
        model.get_layer("reconstruction").set_weights(
            [0 * w for w in model.get_layer("reconstruction").get_weights()]
        )
        print(f"initialised {len(copied)} layers from {init.name} (reconstruction reset to zero)")
        model = compile_model(model, train_cfg, 1)
        settings = {
            "thick_slices": to_dict(cfg),
            "train": to_dict(train_cfg),
            "init_from": f"bundled {init.name} (all but the upsampler)",
        }
        (run_dir / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    else:
        model = keras.saving.load_model(run_dir / LAST)
        settings = json.loads((run_dir / "settings.json").read_text())
    start = time.time()
    callbacks = [
        RunCheckpoint(run_dir, best=None if state is None else state.get("best")),
        keras.callbacks.CSVLogger(str(run_dir / LOG), append=state is not None),
    ]
    model.fit(
        train_ds,
        epochs=args.epochs,
        steps_per_epoch=args.steps,
        validation_data=val_ds,
        initial_epoch=start_epoch,
        callbacks=callbacks,
        verbose=2,
    )
    settings["seconds"] = settings.get("seconds", 0.0) + time.time() - start
    (run_dir / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    print(f"trained in {settings['seconds'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
