"""SERAN vs the matched EDSR vs SERAN without SERA (RIR), each trained from scratch the same way.

The bundled weights compare SERAN and EDSR after a long, staged recipe (x3/x4 start from x2).
This study asks the narrower question at one scale with several seeds: trained from scratch for
the same steps on the same patches, does SERAN beat the attention-free EDSR of matched size, and
how much of any lead comes from the SERA modules rather than from SERAN's residual-in-residual
frame (``--arch rir``: the same network with the modules left out)?

Every run: ``scripts/train_pretrained.py --arch A --scale S --init-from none`` on the training part
of the real T1 volume (needs ``../shared/data``), LR patches 32x32, batch 16, bfloat16, Adam lr
5e-4 halved every 8 epochs, 30 epochs of 100 steps, patch-stream seed per run (the same seed gives
every architecture the same patches). The final epoch is scored on the bundled benchmark sets
(none seen in training). Finished runs are reused, so the table can be printed again for free:

    python scripts/ablation_from_scratch.py --scale 4 --seeds 101 102 103 --out runs/scratch_x4

Runs are trained one after another (``--parallel N`` runs N at a time, one thread each); on our
2-core CPU each x4 run takes about 10 minutes alone.

``--steps N`` stretches the same 30-epoch schedule over N steps per epoch, to ask whether a lead
at 3,000 steps survives a longer run (use another ``--out``: finished runs of other steps per
epoch are refused, not reused)::

    python scripts/ablation_from_scratch.py --scale 4 --seeds 104 --archs seran edsr \
        --steps 800 --parallel 2 --out runs/scratch_long_x4
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ARCHS = ("seran", "edsr", "rir")
RECIPE = [
    "--init-from",
    "none",
    "--epochs",
    "30",
    "--patch",
    "32",
    "--lr",
    "5e-4",
    "--decay-epochs",
    "8",
    "--mixed-precision",
    "bfloat16",
]
EPOCHS = 30
STEPS_PER_EPOCH = 100


def run_dir(out: Path, seed: int, arch: str, scale: int) -> Path:
    return out / f"s{seed}" / f"{arch}_x{scale}"


def finished(d: Path, steps: int = STEPS_PER_EPOCH) -> bool:
    """Whether the run in ``d`` trained every epoch; a run of other steps per epoch is an error."""
    import json

    from keras_seran.runs import LAST, RUN_CONFIG, STATE_FILE

    state, config = d / STATE_FILE, d / RUN_CONFIG
    if config.exists():
        recorded = json.loads(config.read_text())["train"]["steps_per_epoch"]
        if recorded != steps:
            sys.exit(
                f"{d} was trained with {recorded} steps per epoch, not {steps}: "
                f"give --steps {recorded} or another --out"
            )
    return (
        (d / LAST).exists() and state.exists() and json.loads(state.read_text())["epoch"] >= EPOCHS
    )


def train_missing(
    out: Path, seeds, archs, scale: int, parallel: int, steps: int = STEPS_PER_EPOCH
) -> None:
    from keras_seran.runs import LAST

    todo = [(s, a) for s in seeds for a in archs if not finished(run_dir(out, s, a, scale), steps)]
    for i in range(0, len(todo), parallel):
        procs = []
        for seed, arch in todo[i : i + parallel]:
            d = run_dir(out, seed, arch, scale)
            resume = ["--resume"] if (d / LAST).exists() else []
            cmd = [
                sys.executable,
                str(REPO / "scripts" / "train_pretrained.py"),
                "--arch",
                arch,
                "--scale",
                str(scale),
                "--seed",
                str(seed),
                "--out",
                str(out / f"s{seed}"),
                *RECIPE,
                "--steps",
                str(steps),
                *resume,
                *(["--threads", "1"] if parallel > 1 else []),
            ]
            log = open(out / f"{arch}_s{seed}.log", "a")
            print(f"training {arch} x{scale} seed {seed} -> {d}", flush=True)
            procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT))
        for p in procs:
            if p.wait() != 0:
                sys.exit(f"a training run failed; see the logs in {out}")


def score(out: Path, seeds, archs, scale: int) -> dict[tuple[str, int], dict[str, float]]:
    """PSNR (slice mean) per (arch, seed) and benchmark set, final epoch."""
    from keras_seran.evaluation.protocol import benchmark_pairs, keras_predictor, score_pairs
    from keras_seran.registry import load_model
    from keras_seran.runs import LAST

    pairs = benchmark_pairs(scale)
    scores = {}
    for arch in archs:
        for seed in seeds:
            model = load_model(run_dir(out, seed, arch, scale) / LAST)
            predict = keras_predictor(model)
            scores[arch, seed] = {
                name: score_pairs(predict, lr, hr, scale).mean_psnr
                for name, (lr, hr) in pairs.items()
            }
    return scores


def table(scores, seeds, archs, scale: int) -> str:
    sets = list(next(iter(scores.values())))
    head = ["method", *sets, "mean of sets", "per seed (mean of sets)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    means = {}
    for arch in archs:
        per_seed = np.array([[scores[arch, s][k] for k in sets] for s in seeds])  # (seeds, sets)
        means[arch] = per_seed.mean(axis=1)
        cells = [
            f"{per_seed[:, j].mean():.2f} ± {per_seed[:, j].std(ddof=1):.2f}"
            if len(seeds) > 1
            else f"{per_seed[0, j]:.2f}"
            for j in range(len(sets))
        ]
        lines.append(
            f"| {arch} x{scale} | "
            + " | ".join(cells)
            + f" | {means[arch].mean():.2f} | "
            + " / ".join(f"{v:.2f}" for v in means[arch])
            + " |"
        )
    lines.append("")
    for a, b in (("seran", "edsr"), ("seran", "rir"), ("rir", "edsr")):
        if a in means and b in means:
            d = means[a] - means[b]
            lines.append(
                f"- {a} - {b}, same seed, mean of sets: "
                + " / ".join(f"{v:+.2f}" for v in d)
                + f" dB (mean {d.mean():+.2f}; {a} ahead in {int((d > 0).sum())} of {len(d)})"
            )
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=int, default=4, choices=[2, 3, 4])
    p.add_argument("--seeds", type=int, nargs="+", default=[101, 102, 103])
    p.add_argument("--archs", nargs="+", default=list(ARCHS), choices=ARCHS)
    p.add_argument("--out", type=Path, default=REPO / "runs" / "scratch_x4")
    p.add_argument("--parallel", type=int, default=1, help="runs at a time (one thread each)")
    p.add_argument(
        "--steps",
        type=int,
        default=STEPS_PER_EPOCH,
        help="steps per epoch: the study's 100; more stretches the same 30-epoch "
        "schedule over a longer run",
    )
    p.add_argument("--no-train", action="store_true", help="only score finished runs")
    args = p.parse_args(argv)
    if args.steps < 1:
        p.error("--steps must be >= 1")
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.no_train:
        train_missing(
            args.out, args.seeds, args.archs, args.scale, max(1, args.parallel), args.steps
        )
    missing = [
        str(run_dir(args.out, s, a, args.scale))
        for s in args.seeds
        for a in args.archs
        if not finished(run_dir(args.out, s, a, args.scale), args.steps)
    ]
    if missing:
        print("unfinished runs: " + ", ".join(missing), file=sys.stderr)
        return 2
    scores = score(args.out, args.seeds, args.archs, args.scale)
    print(table(scores, args.seeds, args.archs, args.scale))
    return 0


if __name__ == "__main__":
    sys.exit(main())
