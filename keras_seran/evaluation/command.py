"""``keras-seran evaluate``: a table like the paper's (method x scale: PSNR / SSIM).

By default: the bundled benchmark sets (held-out real T1, BrainWeb T1/PD, another scanner's
T1), bundled SERAN and EDSR weights, and bicubic. With ``--data``: every slice of your volumes
(``--split val`` for the held-out validation split of the training pipeline instead).

    keras-seran evaluate --scales 2 3 4 --markdown results.md --csv results.csv
    keras-seran evaluate --data /data/IXI-T2 --scales 2 --models seran=runs/x2/best.keras
    keras-seran evaluate --degradation kspace --noise 0 0.01 0.02 --scales 2

With ``--degradation kspace`` the LR is what a scanner reconstructs from an s-times smaller
k-space matrix, and the table gets ``zero-filling`` (what the console shows) next to bicubic;
``--noise`` adds Rician noise to the LR (sigma as a fraction of the normalised range), one set
per level. Below the table, every model is compared slice by slice with the physical baseline
(zero-filling for kspace, else bicubic): mean PSNR difference and on how many slices it wins.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from keras_seran.config import DEGRADATIONS, SUPPORTED_SCALES, DataConfig, add_config_arguments


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        nargs="*",
        default=None,
        help="folders/globs/files of MR volumes or slices (default: bundled sets)",
    )
    p.add_argument(
        "--split",
        choices=["all", "val"],
        default="all",
        help="with --data: score every slice (all) or the held-out split (val)",
    )
    p.add_argument(
        "--run",
        type=Path,
        default=None,
        metavar="RUN_DIR",
        help="with --split val: rebuild the split of this training run (its "
        "run_config.json: seed, val_fraction, val_gap, contrast, percentiles, "
        "slice axis, degradation; they replace --axis and --degradation). "
        "Without it the split uses the default data settings, which is the "
        "run's split only if the run used them too",
    )
    p.add_argument(
        "--scales",
        type=int,
        nargs="+",
        default=list(SUPPORTED_SCALES),
        choices=SUPPORTED_SCALES,
        metavar="S",
        help="upscaling factors to score, from 2 3 4 (default: all three); every "
        "model must upscale by each (use {scale} in MODEL for one per scale)",
    )
    p.add_argument(
        "--models",
        nargs="*",
        default=None,
        metavar="NAME=MODEL",
        help="models to compare, e.g. seran=x2 or mine=run/best.keras; MODEL may "
        "contain {scale}. Default: the bundled seran and edsr weights trained "
        "on --degradation",
    )
    p.add_argument("--no-bicubic", action="store_true", help="leave bicubic out of the table")
    p.add_argument(
        "--self-ensemble",
        action="store_true",
        help="also score each model's x8 self-ensemble (rows NAME+)",
    )
    add_config_arguments(
        p,
        DataConfig,
        ["degradation", "slice_axis"],
        defaults=True,
        overrides={
            "degradation": {
                "choices": DEGRADATIONS,
                "help": "how LR slices are made from HR: bicubic (the paper's BI), blur "
                "(Gaussian blur then decimation, BD) or kspace (centre crop of "
                "the spectrum, as a lower-resolution acquisition); match the "
                "models' training",
            },
            "slice_axis": {"help": "slice axis for --data volumes"},
        },
    )
    p.add_argument(
        "--noise",
        type=float,
        nargs="+",
        default=[0.0],
        metavar="SIGMA",
        help="Rician noise on the LR, sigma as a fraction of the normalised intensity "
        "range (e.g. 0 0.01 0.02: one set per level; default 0)",
    )
    p.add_argument("--markdown", type=Path, help="also write the table as Markdown here")
    p.add_argument("--csv", type=Path, help="also write per-set results as CSV here")


def _default_models(degradation: str, scales: list[int]) -> list[str]:
    """The bundled SERAN and EDSR trained on ``degradation`` (bicubic ones for blur); for
    kspace, only when installed at every scale asked (else a note says which are missing)."""
    from keras_seran.registry import Bundled

    if degradation != "kspace":
        return ["seran=seran-x{scale}", "edsr=edsr-x{scale}"]
    out = []
    for arch in ("seran", "edsr"):
        missing = [s for s in scales if not Bundled(arch, s, degradation="kspace").exists()]
        if missing:
            print(
                f"note: no bundled kspace {arch} weights for x{', x'.join(map(str, missing))}: "
                f"{arch} left out (give --models to compare your own)"
            )
        else:
            out.append(f"{arch}={arch}-x{{scale}}-kspace")
    return out


def check_noise(levels: list[float]) -> list[float]:
    """The ``--noise`` levels (fractions of the normalised range), each in [0, 0.5), without
    repeats; UsageError otherwise."""
    from keras_seran.config import check_number
    from keras_seran.errors import UsageError

    for sigma in levels:
        try:
            check_number("--noise", sigma, 0.0, 0.5, high_open=True)
        except ValueError as exc:
            raise UsageError(f"{exc} (a fraction of the normalised range: 0.01 is 1 %)") from None
    return list(dict.fromkeys(levels))


def noisy_sets(pairs: dict, levels: list[float], seed: int = 0) -> dict:
    """``pairs`` ({set: (lr_list, hr_list)}) once per noise level: Rician noise of sigma on each
    LR slice (a fixed seed per set and slice, so every method sees the same noisy slices); the
    set names get `` s=1%`` for sigma 0.01 (none for 0)."""
    from keras_seran.data.degrade import add_rician_noise

    out = {}
    for sigma in levels:
        for k, (name, (lrs, hrs)) in enumerate(pairs.items()):
            if sigma == 0:
                out[name] = (lrs, hrs)
                continue
            noisy = [
                add_rician_noise(lr, sigma, np.random.default_rng((seed, k, i)))
                for i, lr in enumerate(lrs)
            ]
            out[f"{name} s={100 * sigma:g}%"] = (noisy, hrs)
    return out


def _parse_models(specs: list[str], scales: list[int], bicubic: bool) -> list[tuple[str, str]]:
    """[(name, model spec)] of ``--models``; UsageError for a malformed entry."""
    from keras_seran.errors import UsageError

    parsed: list[tuple[str, str]] = []
    for spec in specs:
        name, _, model_spec = spec.partition("=")
        if not name.strip() or not model_spec:
            raise UsageError(
                f"--models entry {spec!r} is not NAME=MODEL (both "
                "non-empty, e.g. mine=run/best.keras)"
            )
        for scale in scales:
            try:
                model_spec.format(scale=scale)
            except (ValueError, KeyError, IndexError, AttributeError) as e:
                raise UsageError(
                    f"--models entry {spec!r}: MODEL may hold {{scale}} "
                    f"and no other braces ({type(e).__name__}: {e})"
                ) from None
        taken = [n for n, _ in parsed] + (["bicubic"] if bicubic else [])
        if name in taken:
            raise UsageError(f"--models name {name!r} is used twice; give each model its own name")
        parsed.append((name, model_spec))
    return parsed


def _input_files(args, models: list[tuple[str, str]], scales: list[int]) -> list[tuple[Path, str]]:
    """(file, what it is) of everything evaluate reads: data files, model files, bundled weights."""
    from keras_seran import samples
    from keras_seran.data.slices import source_files
    from keras_seran.registry import parse

    if args.data:
        out = [(f, "--data input") for f in source_files(args.data)]
    else:
        out = [
            (f, "bundled benchmark data")
            for f in (
                samples.T1_AXIAL_SLAB,
                samples.T1_LOWRES,
                samples.BRAINWEB_T1,
                samples.BRAINWEB_PD,
            )
        ]
    for name, model_spec in models:
        for scale in scales:
            spec = model_spec.format(scale=scale)
            out.append((Path(spec).expanduser(), f"model {name}"))
            bundled = parse(spec)
            if bundled is not None:
                out += [
                    (bundled.weights_path, f"weights of {name}"),
                    (bundled.card_path, f"weights card of {name}"),
                ]
    return out


def _load_models(models: list[tuple[str, str]], scales: list[int]) -> dict:
    """{(name, scale): Keras model}, every model loaded and its scale checked before scoring."""
    from keras_seran.errors import InputDataError
    from keras_seran.inference.resolver import SuperResolver
    from keras_seran.registry import load_model

    loaded: dict[str, tuple] = {}
    out = {}
    for scale in scales:
        for name, model_spec in models:
            spec = model_spec.format(scale=scale)
            if spec not in loaded:
                model = load_model(spec)
                try:
                    got = SuperResolver(model).scale
                except Exception as e:  # a non-SR model fails its probe in many ways
                    raise InputDataError(
                        spec,
                        f"model {name!r} is not a grayscale super-resolution "
                        f"network ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''})",
                    ) from None
                loaded[spec] = (model, got)
            model, got = loaded[spec]
            if got != scale:
                raise InputDataError(
                    spec,
                    f"model {name!r} upscales by x{got}, but --scales asks "
                    f"for x{scale}; put {{scale}} in its path (one model "
                    f"per scale) or use --scales {got}",
                )
            out[(name, scale)] = model
    return out


def _data_config(args):
    """The DataConfig that slices and splits ``--data`` (None without it): the run's with
    ``--run``, else ``--axis`` / ``--degradation`` and the default split for ``--split val``."""
    from keras_seran.errors import InputDataError

    if args.run is not None:
        if args.split != "val" or not args.data:
            raise InputDataError(
                args.run,
                "--run rebuilds a run's validation split: it needs "
                "--data (the run's data) and --split val",
            )
        return run_data_config(args.run)
    if not args.data:
        return None
    return DataConfig(
        slice_axis=args.axis,
        degradation=args.degradation,
        val_fraction=DataConfig.val_fraction if args.split == "val" else 0.0,
    )


def _pairs(args, scale: int, cfg) -> dict:
    """The (LR, HR) sets scored at ``scale``: the bundled benchmark, or ``--data`` sliced and
    split by ``cfg`` (:func:`_data_config`)."""
    from keras_seran.data.degrade import lr_hr_pairs
    from keras_seran.evaluation.protocol import benchmark_pairs, min_scored_size

    if cfg is None:
        return benchmark_pairs(scale, args.degradation)
    from keras_seran.data.slices import load_scored_slices, validation_pairs_from

    scored = load_scored_slices(args.data, scale, min_scored_size(scale), cfg)
    if args.split == "val":
        return {"val": validation_pairs_from(scored, scale, cfg)}
    return {"data": lr_hr_pairs(scored.slices, scale, cfg.degradation)}


def run_data_config(run_dir: Path):
    """The DataConfig a training run was made with (its run_config.json), for its split;
    InputDataError when the run held nothing out or the file is not a run's."""
    from keras_seran.errors import InputDataError
    from keras_seran.runs import RUN_CONFIG, load_data_config

    cfg = load_data_config(run_dir)
    if not cfg.val_fraction > 0:
        raise InputDataError(
            Path(run_dir) / RUN_CONFIG,
            "that run held nothing out (val_fraction 0): there is no validation split to score",
        )
    return cfg


def run(args) -> int:
    from keras_seran.errors import OutputPathError, UsageError
    from keras_seran.evaluation.protocol import (
        ZERO_FILLING,
        bicubic_predictor,
        keras_predictor,
        score_pairs,
        zero_filling_predictor,
    )
    from keras_seran.evaluation.table import Row, to_comparison, to_csv, to_markdown
    from keras_seran.files import atomic_path, check_output_path, same_file

    rows: list[Row] = []
    scales = list(dict.fromkeys(args.scales))
    data_cfg = _data_config(args)  # a bad run folder fails before any work
    degradation = data_cfg.degradation if data_cfg is not None else args.degradation
    noise = check_noise(args.noise)
    specs = args.models if args.models is not None else _default_models(args.degradation, scales)
    # everything that can be checked is checked before the (slow) scoring
    models = _parse_models(specs, scales, bicubic=not args.no_bicubic)
    if args.no_bicubic and not models:
        raise UsageError("nothing to evaluate: --no-bicubic and no --models")
    outputs = [path for path in (args.markdown, args.csv) if path is not None]
    if len(outputs) == 2 and same_file(*outputs):
        raise OutputPathError(outputs[0], "--markdown and --csv name the same file")
    inputs = _input_files(args, models, scales)
    for path in outputs:
        for f, what in inputs:
            if same_file(path, f):
                raise OutputPathError(
                    path,
                    f"output is an input ({what}); refusing to overwrite "
                    "it, choose another output path",
                )
        check_output_path(path, suffixes=None, overwrite=True)
    loaded = _load_models(models, scales)
    for scale in scales:
        pairs = noisy_sets(_pairs(args, scale, data_cfg), noise)
        methods = [] if args.no_bicubic else [("bicubic", bicubic_predictor(scale))]
        if degradation == "kspace":
            methods.append((ZERO_FILLING, zero_filling_predictor(scale)))
        for name, _ in models:
            methods.append((name, keras_predictor(loaded[(name, scale)])))
            if args.self_ensemble:
                methods.append(
                    (f"{name}+", keras_predictor(loaded[(name, scale)], self_ensemble=True))
                )
        for name, predict in methods:
            for set_name, (lr, hr) in pairs.items():
                rows.append(Row(name, set_name, scale, score_pairs(predict, lr, hr, scale)))
                print(
                    f"x{scale} {set_name:12s} {name:10s} PSNR {rows[-1].scores.mean_psnr:6.2f}"
                    f"  SSIM {rows[-1].scores.mean_ssim:.4f}",
                    flush=True,
                )
    baseline = ZERO_FILLING if degradation == "kspace" else "bicubic"
    table = to_markdown(rows) + "\n" + to_comparison(rows, baseline)
    print("\n" + table)
    for path, text in ((args.markdown, table), (args.csv, to_csv(rows))):
        if path is not None:
            with atomic_path(path) as tmp:
                tmp.write_text(text)
            print(f"wrote {path}")
    return 0
