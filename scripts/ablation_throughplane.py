"""Through-plane design choice, measured: restore a pre-interpolated reformat, or upsample one axis.

Two networks with SERAN's ``small`` trunk, both started from the bundled in-plane SERAN x2
trunk and trained the same number of steps on the same patches of the training split of
``train_pretrained.py``, with thick slices of exactly ``--ratio`` fine voxels (boxcar, block
centres, no gap, no noise), are compared on held-out axial slices made thick along their rows:

* ``restore``: the bundled design (:func:`keras_seran.models.throughplane.seran_through_plane`):
  the input is the cubic interpolation onto the fine rows, the trunk runs on the fine grid and
  adds detail; one network for any (non-integer) ratio.
* ``upsample``: the trunk runs on the thick grid (``ratio`` times fewer rows) and a sub-pixel
  convolution multiplies the rows only (conv to C * ratio channels, then channels to rows);
  integer ratios only, one network per ratio.

    python scripts/ablation_throughplane.py --ratio 4 --steps 300

Prints PSNR/SSIM on the held-out slices for cubic, zero-filled (sinc) interpolation and both
networks, with the seconds per training step.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from train_pretrained import split_volume  # noqa: E402


def row_shuffle_model(ratio: int):
    """SERAN small trunk on the thick grid, rows multiplied by ``ratio`` at the end."""
    import keras

    from keras_seran.config import preset_config
    from keras_seran.models.common import conv3x3, residual_in_residual, sera_block

    cfg = preset_config("small")
    c = cfg.channels
    inputs, _, x = residual_in_residual(cfg, attention=lambda g, y: sera_block(cfg, g)(y))
    x = conv3x3(c * ratio, "rows_conv")(x)

    def to_rows(t):
        b, h, w = keras.ops.shape(t)[0], keras.ops.shape(t)[1], keras.ops.shape(t)[2]
        t = keras.ops.reshape(t, (b, h, w, ratio, c))
        t = keras.ops.transpose(t, (0, 1, 3, 2, 4))
        return keras.ops.reshape(t, (b, h * ratio, w, c))

    x = keras.layers.Lambda(to_rows, name="rows_shuffle")(x)
    outputs = conv3x3(1, "reconstruction", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=f"seran_rows_x{ratio}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ratio", type=int, default=4)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--patch", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-4)
    args = p.parse_args()
    r = args.ratio

    import keras

    from keras_seran.config import DataConfig, TrainConfig
    from keras_seran.data.slice_profile import cubic_matrix
    from keras_seran.data.slices import load_slice_sets
    from keras_seran.data.throughplane import thicken
    from keras_seran.inference.throughplane import interpolate_axis
    from keras_seran.metrics import psnr, ssim
    from keras_seran.registry import THROUGH_PLANE, Bundled
    from keras_seran.training.optim import compile_model
    from keras_seran.training.trainer import transfer_weights

    parts, slab = split_volume()
    keep = DataConfig(val_fraction=0.0, percentiles=(0.0, 100.0), slice_axis=None)
    train = [s for s in load_slice_sets(parts, 2, keep)[0].slices if min(s.shape) >= args.patch]
    val = [np.ascontiguousarray(slab[:, i, :]) for i in range(0, slab.shape[1], 2)]
    up = cubic_matrix((np.arange(args.patch) + 0.5) / r - 0.5, args.patch // r)
    rng = np.random.default_rng(0)

    def batch():
        tgt = np.empty((16, args.patch, args.patch), np.float32)
        for j in range(16):
            s = train[int(rng.integers(len(train)))]
            y, x = (int(rng.integers(n - args.patch + 1)) for n in s.shape)
            tgt[j] = s[y : y + args.patch, x : x + args.patch][:: 1 - 2 * int(rng.integers(2))]
        thick = np.stack([thicken(t, r) for t in tgt])
        return thick[..., None], np.einsum("ij,bjk->bik", up, thick)[..., None], tgt[..., None]

    init = Bundled("seran", 2).load()
    nets = {"restore": THROUGH_PLANE.build(), "upsample": row_shuffle_model(r)}
    cfg = TrainConfig(
        epochs=1, steps_per_epoch=args.steps, learning_rate=args.lr, lr_decay_epochs=1
    )
    seconds = {}
    for name, net in nets.items():
        transfer_weights(net, init)
        if name == "restore":
            net.get_layer("reconstruction").set_weights(
                [0 * w for w in net.get_layer("reconstruction").get_weights()]
            )
        compile_model(net, cfg, 1)
        rng = np.random.default_rng(0)  # the same patches for both
        t0 = time.perf_counter()
        for _ in range(args.steps):
            thick, interp, tgt = batch()
            net.train_on_batch(interp if name == "restore" else thick, tgt)
        seconds[name] = (time.perf_counter() - t0) / args.steps

    rows = {k: ([], []) for k in ("cubic", "sinc", "restore", "upsample")}
    for img in val:
        tgt = img[: img.shape[0] - img.shape[0] % r]
        thick = thicken(tgt, r)
        ests = {
            "cubic": interpolate_axis(thick, 0, tgt.shape[0], "cubic"),
            "sinc": interpolate_axis(thick, 0, tgt.shape[0], "sinc"),
        }
        ests["restore"] = nets["restore"](ests["cubic"][None, ..., None])[0, ..., 0]
        ests["upsample"] = nets["upsample"](thick[None, ..., None])[0, ..., 0]
        for k, e in ests.items():
            e = np.clip(keras.ops.convert_to_numpy(e), 0, 1)
            rows[k][0].append(psnr(e, tgt, 1.0, border=r))
            rows[k][1].append(ssim(e, tgt, 1.0, border=r))
    print(
        f"\nheld-out axial slices of the training subject, {r}-voxel boxcar slices along the "
        f"rows, {args.steps} steps of 16 {args.patch}x{args.patch} patches each\n"
    )
    print("| method | PSNR (dB) | SSIM | s / training step |")
    print("|---|---|---|---|")
    for k, (ps, ss) in rows.items():
        step = f"{seconds[k]:.2f}" if k in seconds else ""
        print(f"| {k} | {np.mean(ps):.2f} | {np.mean(ss):.4f} | {step} |")


if __name__ == "__main__":
    main()
