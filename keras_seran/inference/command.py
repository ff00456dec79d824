"""``keras-seran predict INPUT OUTPUT``: super-resolve one NIfTI file or a folder of them (or
one DICOM volume: a folder holding one series, or a multi-frame file; written as NIfTI).

    keras-seran predict t1_thick.nii.gz t1_sr.nii.gz --scale 2
    keras-seran predict scans/ scans_sr/ --model my_seran_x3.keras --tile-size 128
    keras-seran predict big.nii.gz out/ --max-memory 2000 --device cpu
    keras-seran predict t1_2mm.nii.gz t1_sr.nii.gz --degradation kspace --data-consistency
    keras-seran predict t1.nii.gz t1_sr.nii.gz --model bundle_x2 --runtime litert

A folder is searched recursively for *.nii / *.nii.gz; the results go to the output folder under
the same relative names. Outputs are written atomically, never over the input, and over an
existing file only with ``--overwrite``. Runs on any Keras backend (TensorFlow, JAX, PyTorch),
or, with ``--model BUNDLE_DIR`` (a folder written by ``keras-seran export``), in the runtime of
one of the bundle's artifacts (``--runtime litert|onnxruntime|tensorrt``, ``--precision``)
without importing Keras, TensorFlow or JAX (:mod:`keras_seran.runtime`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from keras_seran.config import (
    BUNDLED_DEGRADATIONS,
    DEFAULT_SCALE,
    InferenceConfig,
    add_config_arguments,
    config_from_args,
)
from keras_seran.errors import InputDataError, KerasSeranError, OutputPathError, UsageError

PROG = "keras-seran predict"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "input",
        help="a NIfTI file (.nii, .nii.gz), a folder of them, a folder "
        "holding one DICOM series or a multi-frame DICOM file",
    )
    parser.add_argument(
        "output",
        help="output NIfTI file, or folder (for a folder input, or a "
        "file input with an existing folder / a path ending in '/')",
    )
    parser.add_argument(
        "--model",
        default=None,
        help="bundled weights by name (x2, x3, x4, x2-kspace), a .keras file, or "
        "an export bundle folder (keras-seran export; runs without "
        "TensorFlow, see --runtime) (default: the bundled weights for "
        "--scale and --degradation)",
    )
    add_config_arguments(parser, InferenceConfig)
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def uses_bundle(args: argparse.Namespace) -> bool:
    """Whether ``--model`` names a folder: an export bundle, run in its own runtime."""
    return args.model is not None and Path(args.model).expanduser().is_dir()


def needs_keras(args: argparse.Namespace) -> bool:
    """The command line's start-up imports Keras unless ``--model`` is an export bundle."""
    return not uses_bundle(args)


def load_resolver(args: argparse.Namespace, cfg: InferenceConfig):
    """The SuperResolver of ``--model`` (a bundled name, a .keras file or an export bundle
    folder), or of the bundled weights for ``--scale`` and ``--degradation``; UsageError when
    ``--degradation`` contradicts ``--model`` or ``--runtime``/``--precision`` are given without
    a bundle, and InputDataError naming the file when the weights or the bundle's files are
    missing or damaged."""
    from keras_seran.inference.resolver import SuperResolver

    options = {
        "self_ensemble": cfg.self_ensemble,
        "percentiles": cfg.percentiles,
        "data_consistency": cfg.data_consistency,
    }
    if uses_bundle(args):
        if args.degradation is not None:
            raise UsageError(
                "--degradation picks one of the bundled models, and --model names "
                "an export bundle: drop --degradation"
            )
        return SuperResolver.from_bundle(
            args.model, cfg.runtime, cfg.precision, cfg.scale, **options
        )
    if cfg.runtime is not None or cfg.precision is not None:
        raise UsageError(
            "--runtime and --precision run an export bundle: give its folder as "
            "--model BUNDLE_DIR (keras-seran export writes one)"
        )
    from keras_seran.registry import parse

    if args.model is None:
        return SuperResolver.from_pretrained(
            cfg.scale or DEFAULT_SCALE, degradation=cfg.degradation, **options
        )
    if args.degradation is not None:
        named = None if Path(args.model).exists() else parse(args.model)
        if named is None:
            raise UsageError(
                "--degradation picks one of the bundled models, and --model names "
                "a model file: drop --degradation"
            )
        if named.degradation != args.degradation:
            raise UsageError(
                f"--model {args.model} is trained on {named.degradation}, not "
                f"--degradation {args.degradation}: drop one of them"
            )
    return SuperResolver.from_spec(args.model, cfg.scale, **options)


# --------------------------------------------------------------------------------------------
# inputs and outputs


def plan_outputs(
    input_path: str | Path, output: str | Path, overwrite: bool = False
) -> list[tuple[Path, Path]]:
    """[(input file, output file)] for a file or a folder, every output checked before any work.

    Raises InputDataError for a missing input / a folder without NIfTI files, and OutputPathError
    for an output equal to an input, an existing output without ``overwrite``, or an unwritable
    output folder.
    """
    from keras_seran.data.io import find_volumes, is_series_folder
    from keras_seran.files import ensure_writable_dir, output_for_input, same_file

    src = Path(input_path).expanduser()
    if not src.exists():
        raise InputDataError(src, "no such file or folder; check the path")
    if src.is_dir() and not is_series_folder(src):  # a DICOM series folder is one volume
        files = find_volumes(src)
        out_dir = Path(output).expanduser()
        if out_dir.exists() and not out_dir.is_dir():
            raise OutputPathError(
                out_dir, "input is a folder, so the output must be a folder, not a file"
            )
        if out_dir.exists() and same_file(out_dir, src):
            raise OutputPathError(
                out_dir,
                "output folder is the input folder; the inputs would "
                "be overwritten; choose another output folder",
            )
        # an output folder inside the input folder: its files (earlier results) are not inputs
        out_res = out_dir.resolve()
        files = [f for f in files if out_res not in f.resolve().parents]
        if not files:
            raise InputDataError(src, "folder holds no NIfTI file outside the output folder")
        pairs = [(f, out_dir / f.relative_to(src)) for f in files]
    else:
        pairs = [(src, output_for_input(src, output))]
    for f, o in pairs:
        if same_file(f, o):
            raise OutputPathError(
                o,
                "output is the input file; refusing to overwrite the input, "
                "choose another output path",
            )
    existing = [o for _, o in pairs if o.exists()]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more output file(s))" if len(existing) > 1 else ""
        raise OutputPathError(existing[0], f"output exists{more}; pass --overwrite to replace")
    for d in sorted({o.parent for _, o in pairs}):
        ensure_writable_dir(d, create=False)  # made when the first file is written
    for _, o in pairs:
        if o.is_dir():
            raise OutputPathError(o, "is an existing folder, not a file")
    return pairs


def predict_paths(
    resolver: Any,
    input_path: str | Path,
    output: str | Path,
    overwrite: bool = False,
    progress: bool = False,
    stop_on_error: bool = True,
    errors: list | None = None,
    **kwargs: Any,
) -> list[dict]:
    """Super-resolve a file or every NIfTI file of a folder; returns one summary dict per output.

    ``kwargs`` go to :meth:`SuperResolver.predict_volume`. With ``stop_on_error=False`` a bad file
    is reported into ``errors`` (a list of KerasSeranError) and the others still run.
    """
    pairs = plan_outputs(input_path, output, overwrite)
    preloaded = kwargs.pop("preloaded", {})
    summaries = []
    files_bar = None
    if progress and len(pairs) > 1:
        from tqdm.auto import tqdm

        files_bar = tqdm(total=len(pairs), desc="files", unit="file", dynamic_ncols=True)
    try:
        for f, o in pairs:
            try:
                summaries.append(
                    resolver.predict_file(
                        f,
                        o,
                        overwrite=overwrite,
                        volume=preloaded.get(str(f)),
                        progress=progress,
                        **kwargs,
                    )
                )
            except KerasSeranError as e:
                if stop_on_error or errors is None:
                    raise
                errors.append(e)
            if files_bar is not None:
                files_bar.update(1)
    finally:
        if files_bar is not None:
            files_bar.close()
    return summaries


def _fmt_shape(shape) -> str:
    return "x".join(str(int(n)) for n in shape)


def _fmt_zooms(zooms) -> str:
    return "x".join(f"{float(z):g}" for z in zooms) + " mm"


def format_summary(s: dict) -> str:
    return (
        f"{s['input']} ({_fmt_shape(s['shape_in'])}, {_fmt_zooms(s['zooms_in'])}) -> "
        f"{s['output']} ({_fmt_shape(s['shape_out'])}, {_fmt_zooms(s['zooms_out'])}, "
        f"{s['dtype_out']}), slice axis {s['axis']}, {s['seconds']:.1f} s"
    )


def check_isotropic(vol: Any, cfg: InferenceConfig) -> None:
    """InputDataError naming the file, before any model is loaded, when ``--isotropic`` cannot
    work on ``vol``: no thick axis, or a thick/target ratio beyond the through-plane network's
    (:func:`~keras_seran.inference.throughplane.plan_isotropic`), after in-plane SR by
    ``cfg.scale`` if given."""
    import numpy as np

    from keras_seran.inference import geometry
    from keras_seran.inference.throughplane import plan_isotropic
    from keras_seran.inference.volume import slice_axis

    axis = cfg.slice_axis if cfg.slice_axis is not None else slice_axis(vol)
    zooms = np.array(geometry.voxel_sizes(vol.affine), dtype=float)
    shape = list(vol.data.shape)
    if cfg.scale:
        for k in range(3):
            if k != axis:
                zooms[k] /= cfg.scale
                shape[k] *= cfg.scale
    plan_isotropic(shape, zooms, axis, cfg.target_spacing, vol.path or None)


# --------------------------------------------------------------------------------------------
# command


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    cfg = config_from_args(InferenceConfig, args)  # every option checked before any work
    # Check the input and every output path before the (slow) model load; a single input file
    # is read here (once), so a bad one fails before anything is built or created.
    src = Path(args.input).expanduser()
    preloaded = {}
    from keras_seran.data.io import is_series_folder

    if not src.is_dir() or is_series_folder(src):
        from keras_seran.inference.volume import as_volume

        preloaded[str(src)] = as_volume(src)
        if cfg.isotropic and (cfg.scale is not None or args.model is None):
            check_isotropic(preloaded[str(src)], cfg)
    pairs = plan_outputs(args.input, args.output, args.overwrite)
    preloaded = {str(f): preloaded[str(src)] for f, _ in pairs if str(src) in preloaded}

    options = dict(axis=cfg.slice_axis, batch_size=cfg.batch_size, output_dtype=cfg.output_dtype)
    through_plane_only = cfg.isotropic and cfg.scale is None and args.model is None
    if uses_bundle(args):
        resolver = load_resolver(args, cfg)
        device = "gpu" if ": tensorrt " in resolver.network.name else "cpu"
        print(f"running {resolver.network.name}")
    else:
        from keras_seran.devices import select_device

        device = select_device(cfg.device)
        if through_plane_only:
            from keras_seran.inference.throughplane import ThroughPlaneResolver

            resolver = ThroughPlaneResolver.from_pretrained(percentiles=cfg.percentiles)
            options.update(target_spacing=cfg.target_spacing, adapt_steps=cfg.adapt_steps)
        else:
            resolver = load_resolver(args, cfg)
    if cfg.isotropic and not through_plane_only:
        resolver.through_plane()  # missing through-plane weights fail here, before any work
    if not through_plane_only:
        options.update(
            tile_size=cfg.tile_size, overlap=cfg.overlap, max_memory_mb=cfg.max_memory_mb
        )
        if cfg.isotropic:
            options.update(
                isotropic=True, target_spacing=cfg.target_spacing, adapt_steps=cfg.adapt_steps
            )
    errors: list[KerasSeranError] = []
    summaries = predict_paths(
        resolver,
        args.input,
        args.output,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        stop_on_error=False,
        errors=errors,
        preloaded=preloaded,
        **options,
    )
    for e in errors:
        print(f"{PROG}: error: {e}", file=sys.stderr)
    for s in summaries:
        print(format_summary(s))
    total = time.perf_counter() - t0
    failed = f"; {len(errors)} failed (see errors above)" if errors else ""
    if through_plane_only:
        print(
            f"made {len(summaries)} file(s) isotropic with the bundled through-plane network on "
            f"{device} in {total:.1f} s{failed}"
        )
    else:
        model_name = args.model or f"bundled x{resolver.scale}" + (
            "" if cfg.degradation == BUNDLED_DEGRADATIONS[0] else f" {cfg.degradation}"
        )
        then = ", then through-plane" if cfg.isotropic else ""
        print(
            f"super-resolved {len(summaries)} file(s) x{resolver.scale} with {model_name}"
            f"{then} on {device} in {total:.1f} s{failed}"
        )
    if len(summaries) == 1 and not errors:
        print(f"wrote {summaries[0]['output']}")
    return 2 if errors else 0
