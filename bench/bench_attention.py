"""Is the SERA attention used? Per module of the bundled SERAN weights (or given .keras files).

    python bench/bench_attention.py                       # bundled x2, x3, x4
    python bench/bench_attention.py --models runs/x/last.keras --scales 2

Prints, per SERA module: the residual scale s; how peaked the attention is on a held-out slice
(median effective support of the maps M as a fraction of the slice, 100 % = global average
pooling; mean largest excitation weight of D, 1/n = uniform); and the PSNR change (dB) on the
bundled benchmark sets when that module alone is switched off (negative: the module helps).
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scales", type=int, nargs="+", default=[2, 3, 4])
    p.add_argument(
        "--models",
        nargs="+",
        default=None,
        help=".keras files, one per --scales entry (default: the bundled weights)",
    )
    args = p.parse_args()
    if args.models and len(args.models) != len(args.scales):
        p.error("give one --models file per --scales entry")

    from keras_seran.errors import KerasSeranError
    from keras_seran.evaluation.protocol import benchmark_pairs, keras_predictor, score_pairs
    from keras_seran.models import attention_use, sera_ablation
    from keras_seran.registry import load_model

    try:  # load every model first: a bad path is a one-line error before any table row
        models = [
            load_model(args.models[i] if args.models else f"seran-x{scale}")
            for i, scale in enumerate(args.scales)
        ]
    except KerasSeranError as exc:
        p.error(str(exc))

    print(
        "| model | module | s | support of M | peak of D (1/n uniform) | "
        "dPSNR off: held-out T1 | dPSNR off: other sets (mean) |"
    )
    print("|---|---|---|---|---|---|---|")
    for i, scale in enumerate(args.scales):
        spec = args.models[i] if args.models else f"seran-x{scale}"
        model = models[i]
        pairs = benchmark_pairs(scale)

        def score(name):
            lr, hr = pairs[name]
            return lambda m: score_pairs(keras_predictor(m), lr, hr, scale).mean_psnr

        held = sera_ablation(model, score("t1-heldout"))
        others = [sera_ablation(model, score(n)) for n in pairs if n != "t1-heldout"]
        probe = pairs["t1-heldout"][0][len(pairs["t1-heldout"][0]) // 2]
        for use in attention_use(model, probe):
            other = sum(o[use.name] for o in others) / len(others)
            print(
                f"| {spec} (x{scale}) | {use.name} | {use.residual_scale:.3f} | "
                f"{100 * use.support:.1f} % | {use.excitation_peak:.3f} | "
                f"{held[use.name]:+.3f} | {other:+.3f} |"
            )


if __name__ == "__main__":
    main()
