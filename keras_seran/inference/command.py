"""``keras-seran predict INPUT OUTPUT``: super-resolve one NIfTI file or a folder of them (or
one DICOM volume: a folder holding one series, or a multi-frame file; written as NIfTI).

    keras-seran predict t1_thick.nii.gz t1_sr.nii.gz --scale 2
    keras-seran predict scans/ scans_sr/ --model my_seran_x3.keras --tile-size 128
    keras-seran predict big.nii.gz out/ --max-memory 2000 --device cpu

A folder is searched recursively for *.nii / *.nii.gz; the results go to the output folder under
the same relative names. Outputs are written atomically, never over the input, and over an
existing file only with ``--overwrite``. Runs on any Keras backend (TensorFlow, JAX, PyTorch).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

from keras_seran.devices import select_device
from keras_seran.errors import (
    InputDataError,
    KerasSeranError,
    OutputPathError,
    UsageError,
)

PROG = "keras-seran predict"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="a NIfTI file (.nii, .nii.gz), a folder of them, a folder "
                                      "holding one DICOM series or a multi-frame DICOM file")
    parser.add_argument("output", help="output NIfTI file, or folder (for a folder input, or a "
                                       "file input with an existing folder / a path ending in '/')")
    parser.add_argument("--scale", type=int, choices=(2, 3, 4), default=None,
                        help="upscaling factor (default: the model's; 2 with the bundled weights)")
    parser.add_argument("--model", default=None,
                        help="bundled weights by name (x2, x3, x4) or a .keras file "
                             "(default: bundled weights for --scale)")
    parser.add_argument("--axis", type=int, choices=(0, 1, 2), default=None,
                        help="slice axis; the other two are upscaled (default: the thick-slice "
                             "axis, i.e. the one of distinct voxel size; the last if isotropic)")
    parser.add_argument("--tile-size", type=int, default=None, metavar="PX",
                        help="cut slices into overlapping tiles of PX x PX LR pixels")
    parser.add_argument("--overlap", type=int, default=16, metavar="PX",
                        help="overlap of neighbouring tiles in LR pixels (default 16)")
    parser.add_argument("--max-memory", type=float, default=None, metavar="MB",
                        help="memory budget in MB for the network and the tile blending (not the "
                             "volume itself): picks the batch, or the smallest tile giving the "
                             "fewest tiles (at least 64 px)")
    parser.add_argument("--batch-size", type=int, default=8, help="slices per batch (default 8)")
    parser.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto",
                        help="run on the CPU, the GPU, or whatever the Keras backend finds "
                             "(default; KERAS_BACKEND picks tensorflow, jax or torch)")
    parser.add_argument("--output-dtype", default="float32",
                        help="float32 (default), 'input' (the input's integer type, rounded and "
                             "clipped; float32 if the file stores scaled integers) or one of "
                             "uint8, int8, int16, uint16, int32, uint32, int64, uint64, float64 "
                             "(an integer type too small for the input's range, or too coarse "
                             "for a non-integer input, is refused)")
    parser.add_argument("--self-ensemble", action="store_true",
                        help="average the network over the 8 flips/rotations of each slice "
                             "(8x slower, slightly better; 'SERAN+')")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


# --------------------------------------------------------------------------------------------
# inputs and outputs


def plan_outputs(input_path: str | Path, output: str | Path, overwrite: bool = False
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
    if src.is_dir() and not is_series_folder(src):      # a DICOM series folder is one volume
        files = find_volumes(src)
        out_dir = Path(output).expanduser()
        if out_dir.exists() and not out_dir.is_dir():
            raise OutputPathError(out_dir, "input is a folder, so the output must be a folder, "
                                           "not a file")
        if out_dir.exists() and same_file(out_dir, src):
            raise OutputPathError(out_dir, "output folder is the input folder; the inputs would "
                                           "be overwritten; choose another output folder")
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
            raise OutputPathError(o, "output is the input file; refusing to overwrite the input, "
                                     "choose another output path")
    existing = [o for _, o in pairs if o.exists()]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more output file(s))" if len(existing) > 1 else ""
        raise OutputPathError(existing[0], f"output exists{more}; pass --overwrite to replace")
    for d in sorted({o.parent for _, o in pairs}):
        ensure_writable_dir(d, create=False)     # made when the first file is written
    for _, o in pairs:
        if o.is_dir():
            raise OutputPathError(o, "is an existing folder, not a file")
    return pairs


def predict_paths(resolver: Any, input_path: str | Path, output: str | Path,
                  overwrite: bool = False, progress: bool = False, stop_on_error: bool = True,
                  errors: list | None = None, **kwargs: Any) -> list[dict]:
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
                summaries.append(resolver.predict_file(f, o, overwrite=overwrite,
                                                       volume=preloaded.get(str(f)),
                                                       progress=progress, **kwargs))
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
    return (f"{s['input']} ({_fmt_shape(s['shape_in'])}, {_fmt_zooms(s['zooms_in'])}) -> "
            f"{s['output']} ({_fmt_shape(s['shape_out'])}, {_fmt_zooms(s['zooms_out'])}, "
            f"{s['dtype_out']}), slice axis {s['axis']}, {s['seconds']:.1f} s")


# --------------------------------------------------------------------------------------------
# command


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.overlap < 0:
        raise UsageError(f"--overlap must be 0 or more, got {args.overlap}")
    if args.tile_size is not None and args.tile_size <= args.overlap:
        raise UsageError(f"--tile-size {args.tile_size} must be larger than --overlap "
                         f"{args.overlap}")
    if args.max_memory is not None and not (math.isfinite(args.max_memory)
                                            and args.max_memory > 0):
        raise UsageError(f"--max-memory must be a finite positive number of MB, got "
                         f"{args.max_memory}")
    from keras_seran.inference.output_dtype import check_output_dtype

    check_output_dtype(args.output_dtype, what="--output-dtype")
    # Check the input and every output path before the (slow) model load; a single input file
    # is read here (once), so a bad one fails before anything is built or created.
    src = Path(args.input).expanduser()
    preloaded = {}
    from keras_seran.data.io import is_series_folder

    if not src.is_dir() or is_series_folder(src):
        from keras_seran.inference.volume import as_volume

        preloaded[str(src)] = as_volume(src)
    pairs = plan_outputs(args.input, args.output, args.overwrite)
    preloaded = {str(f): preloaded[str(src)] for f, _ in pairs if str(src) in preloaded}

    device = select_device(args.device)
    from keras_seran.inference.resolver import SuperResolver

    resolver = SuperResolver.from_spec(args.model, args.scale, self_ensemble=args.self_ensemble)
    errors: list[KerasSeranError] = []
    summaries = predict_paths(
        resolver, args.input, args.output, overwrite=args.overwrite,
        progress=not args.no_progress, stop_on_error=False, errors=errors, axis=args.axis,
        batch_size=args.batch_size, tile_size=args.tile_size, overlap=args.overlap,
        output_dtype=args.output_dtype,
        max_memory_mb=args.max_memory, preloaded=preloaded)
    for e in errors:
        print(f"{PROG}: error: {e}", file=sys.stderr)
    model_name = args.model or f"bundled x{resolver.scale}"
    for s in summaries:
        print(format_summary(s))
    total = time.perf_counter() - t0
    print(f"super-resolved {len(summaries)} file(s) x{resolver.scale} with {model_name} on "
          f"{device} in {total:.1f} s" + (f"; {len(errors)} failed (see errors above)" if errors else ""))
    if len(summaries) == 1 and not errors:
        print(f"wrote {summaries[0]['output']}")
    return 2 if errors else 0
