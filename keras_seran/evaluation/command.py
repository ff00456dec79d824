"""``keras-seran evaluate``: a table like the paper's (method x scale: PSNR / SSIM).

By default: the bundled benchmark sets (held-out real T1, BrainWeb T1/PD, another scanner's
T1), bundled SERAN and EDSR weights, and bicubic. With ``--data``: every slice of your volumes
(``--split val`` for the held-out validation split of the training pipeline instead).

    keras-seran evaluate --scales 2 3 4 --markdown results.md --csv results.csv
    keras-seran evaluate --data /data/IXI-T2 --scales 2 --models seran=runs/x2/best.keras
"""

from __future__ import annotations

import argparse
from pathlib import Path

from keras_seran.config import DEGRADATIONS, SUPPORTED_SCALES


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", nargs="*", default=None,
                   help="folders/globs/files of MR volumes or slices (default: bundled sets)")
    p.add_argument("--split", choices=["all", "val"], default="all",
                   help="with --data: score every slice (all) or the held-out split (val)")
    p.add_argument("--scales", type=int, nargs="+", default=list(SUPPORTED_SCALES),
                   choices=SUPPORTED_SCALES)
    p.add_argument("--models", nargs="*", default=None, metavar="NAME=MODEL",
                   help="models to compare, e.g. seran=x2 or mine=run/best.keras; MODEL may "
                        "contain {scale}. Default: bundled seran and edsr weights")
    p.add_argument("--no-bicubic", action="store_true", help="leave bicubic out of the table")
    p.add_argument("--self-ensemble", action="store_true",
                   help="also score each model's x8 self-ensemble (rows NAME+)")
    p.add_argument("--degradation", choices=DEGRADATIONS, default="bicubic")
    p.add_argument("--axis", type=int, default=2, choices=[0, 1, 2],
                   help="slice axis for --data volumes (default 2)")
    p.add_argument("--markdown", type=Path, help="also write the table as Markdown here")
    p.add_argument("--csv", type=Path, help="also write per-set results as CSV here")


def _default_models() -> list[str]:
    return ["seran=seran-x{scale}", "edsr=edsr-x{scale}"]


def _pairs(args, scale: int) -> dict:
    from keras_seran.config import DataConfig
    from keras_seran.data.degrade import lr_hr_pairs
    from keras_seran.evaluation.protocol import benchmark_pairs

    if not args.data:
        return benchmark_pairs(scale, args.degradation)
    from keras_seran.data.slices import load_slice_sets, validation_pairs_from

    cfg = DataConfig(slice_axis=args.axis, degradation=args.degradation,
                     val_fraction=0.1 if args.split == "val" else 0.0)
    train, val = load_slice_sets(args.data, scale, cfg, min_size=2 * scale)
    if args.split == "val":
        return {"val": validation_pairs_from(val, scale, cfg)}
    return {"data": lr_hr_pairs(train.slices, scale, args.degradation)}


def run(args) -> int:
    from keras_seran.errors import InputDataError, OutputPathError
    from keras_seran.evaluation.protocol import bicubic_predictor, keras_predictor, score_pairs
    from keras_seran.evaluation.table import Row, to_csv, to_markdown
    from keras_seran.inference.writer import atomic_path, check_output_path, same_file
    from keras_seran.pretrained import load_model

    rows: list[Row] = []
    specs = args.models if args.models is not None else _default_models()
    # everything that can be checked is checked before the (slow) scoring
    for spec in specs:
        if not spec.partition("=")[2]:
            raise InputDataError(None, f"--models entry {spec!r} is not NAME=MODEL")
    if args.no_bicubic and not specs:
        raise InputDataError(None, "nothing to evaluate: --no-bicubic and no --models")
    outputs = [path for path in (args.markdown, args.csv) if path is not None]
    if len(outputs) == 2 and same_file(*outputs):
        raise OutputPathError(outputs[0], "--markdown and --csv name the same file")
    for path in outputs:
        check_output_path(path, suffixes=None, overwrite=True)
    for scale in args.scales:
        pairs = _pairs(args, scale)
        methods = [] if args.no_bicubic else [("bicubic", bicubic_predictor(scale))]
        for spec in specs:
            name, _, model_spec = spec.partition("=")
            model = load_model(model_spec.format(scale=scale))
            methods.append((name, keras_predictor(model)))
            if args.self_ensemble:
                methods.append((f"{name}+", keras_predictor(model, self_ensemble=True)))
        for name, predict in methods:
            for set_name, (lr, hr) in pairs.items():
                rows.append(Row(name, set_name, scale, score_pairs(predict, lr, hr, scale)))
                print(f"x{scale} {set_name:12s} {name:10s} PSNR {rows[-1].scores.mean_psnr:6.2f}"
                      f"  SSIM {rows[-1].scores.mean_ssim:.4f}", flush=True)
    table = to_markdown(rows)
    print("\n" + table)
    for path, text in ((args.markdown, table), (args.csv, to_csv(rows))):
        if path is not None:
            with atomic_path(path) as tmp:
                tmp.write_text(text)
            print(f"wrote {path}")
    return 0
