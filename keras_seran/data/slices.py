"""From MR files to normalised 2D HR slices, split into training and validation (numpy only).

The split never lets one subject feed both sides:
    * several subjects: whole subjects go to validation (:func:`split_volumes`; IXI/BIDS names
      group every contrast of one subject together);
    * one subject: the volume is cut along the slice axis into a training part and a contiguous
      validation slab at its end, ``val_gap`` slices apart (:func:`split_single_volume`), so no
      training slice (along any axis) sees a validation voxel or its immediate neighbourhood.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from keras_seran.config import DataConfig
from keras_seran.data.degrade import crop_to_multiple, degrade
from keras_seran.data.io.discovery import (
    SLICE_SUFFIXES,
    find_volumes,
    has_contrast,
    is_hidden,
    is_nifti,
    subject_of,
)
from keras_seran.data.io.readers import check_array, load_any
from keras_seran.data.normalize import NormStats, fit_normalization
from keras_seran.errors import InputDataError, UsageError

# --------------------------------------------------------------------------------------------
# building blocks


def extract_slices(
    vol_array: np.ndarray, axis: int = 2, min_foreground: float = 0.1, threshold: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """2D slices of a (normalised) volume along ``axis``, without near-empty background slices.

    A slice is kept when at least ``min_foreground`` of its pixels are > ``threshold`` (same units
    as the volume: [0, 1] after normalisation). (X, Y, Z) -> (slices (N, H, W) float32, indices (N,)
    along ``axis``, increasing). ``min_foreground = 0`` keeps every slice.
    """
    v = np.asarray(vol_array)
    if v.ndim != 3:
        raise ValueError(f"expected a 3D volume, got shape {v.shape}")
    if axis not in (0, 1, 2, -1, -2, -3):
        raise ValueError(f"axis must be 0, 1 or 2, got {axis!r}")
    v = np.moveaxis(v, axis, 0)
    frac = (v > threshold).reshape(v.shape[0], -1).mean(axis=1)
    idx = np.nonzero(frac >= min_foreground)[0]
    return np.ascontiguousarray(v[idx], dtype=np.float32), idx


def split_volumes(
    paths: Sequence[str | Path], val_fraction: float = 0.1, seed: int = 0, group: Any = None
) -> tuple[list, list]:
    """Split files into (train, val) by subject, never sharing one.

    Files are grouped by subject (``group``, default
    :func:`~keras_seran.data.io.discovery.subject_of`:
    IXI ``IXI002`` / BIDS ``sub-01``; other names are their own subject);
    ``round(val_fraction * n_subjects)`` subjects (at least 1, at most n - 1) drawn with ``seed``
    go to validation. Both lists keep the input order. ``val_fraction = 0`` -> (all, []).
    Raises InputDataError when a split is asked of fewer than two subjects.
    """
    group_of = group or subject_of
    items = list(paths)
    if val_fraction <= 0:
        return items, []
    if not val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    subjects = sorted({group_of(p) for p in items})
    if len(subjects) < 2:
        raise InputDataError(
            items[0] if items else None,
            f"cannot split {len(items)} file(s) of {len(subjects)} subject by "
            "volume; give at least two subjects, or use split_single_volume",
        )
    n_val = int(min(len(subjects) - 1, max(1, round(val_fraction * len(subjects)))))
    perm = np.random.default_rng(seed).permutation(len(subjects))
    val_subjects = {subjects[i] for i in perm[:n_val]}
    train = [p for p in items if group_of(p) not in val_subjects]
    val = [p for p in items if group_of(p) in val_subjects]
    return train, val


def _is_slice_file(name: str) -> bool:
    """Whether ``name`` is a 2D slice file: an image, a DICOM file, or a .npy holding 2D data
    (a .npy may hold a volume: it is read memory-mapped to tell)."""
    suffix = Path(name).suffix.lower()
    if is_nifti(name) or suffix not in SLICE_SUFFIXES:
        return False
    if suffix == ".npy":
        try:
            return np.squeeze(np.load(name, mmap_mode="r")).ndim == 2
        except (OSError, ValueError):
            return False  # unreadable: loading it later names the file and the problem
    return True


def split_single_volume(
    n_slices: int, val_fraction: float = 0.1, gap: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """Positions (train, val) of ``n_slices`` ordered slices: validation is the contiguous last
    ``max(1, round(val_fraction * n))`` slices, training is everything at least ``gap + 1``
    positions before it (``gap`` slices are dropped in between, so neighbouring, nearly identical
    slices never sit on both sides). When the volume is too thin for the gap, the gap shrinks with
    a warning; raises UsageError when not even one training slice is left.
    """
    n = int(n_slices)
    if val_fraction <= 0:
        return np.arange(n), np.arange(0)
    if not val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    n_val = max(1, int(round(val_fraction * n)))
    if n - n_val < 1:
        raise UsageError(
            f"only {n} usable slice(s): too few to hold out {n_val} for "
            "validation; use more data or val_fraction=0"
        )
    g = int(gap)
    if n - n_val - g < 1:
        g_new = n - n_val - 1
        warnings.warn(
            f"only {n} usable slices: validation gap reduced from {g} to {g_new}", stacklevel=2
        )
        g = g_new
    return np.arange(0, n - n_val - g), np.arange(n - n_val, n)


# --------------------------------------------------------------------------------------------
# slice sets


@dataclass
class SliceSet:
    """Normalised HR slices with where each came from.

    Attributes:
        slices: list of float32 (H, W) arrays in [0, 1] (sizes may differ between entries).
        sources: file path (or ``"<array i>"``) of each slice.
        indices: index of each slice along its axis in the source volume (0 for 2D sources).
        axes: volume axis each slice was cut along (-1 for 2D sources).
        stats: per source, the NormStats that map a slice back to the file's intensities.
    """

    slices: list[np.ndarray] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)
    axes: list[int] = field(default_factory=list)
    stats: dict[str, NormStats] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.slices)

    def add(
        self,
        slices: Iterable[np.ndarray],
        source: str,
        indices: Iterable[int],
        axis: int,
        stats: NormStats,
    ) -> None:
        for s, i in zip(slices, indices):
            self.slices.append(np.ascontiguousarray(s, dtype=np.float32))
            self.sources.append(source)
            self.indices.append(int(i))
            self.axes.append(int(axis))
        self.stats[source] = stats

    def filter_min_size(
        self, min_h: int, min_w: int | None = None, what: str = "patch"
    ) -> SliceSet:
        """A new SliceSet without slices smaller than (min_h, min_w); warns once per source skipped."""
        min_w = min_h if min_w is None else min_w
        out = SliceSet(stats=dict(self.stats))
        skipped: dict[str, list[tuple[int, int]]] = {}
        for s, src, i, a in zip(self.slices, self.sources, self.indices, self.axes):
            if s.shape[0] >= min_h and s.shape[1] >= min_w:
                out.slices.append(s)
                out.sources.append(src)
                out.indices.append(i)
                out.axes.append(a)
            else:
                skipped.setdefault(src, []).append(s.shape)
        for src, shapes in skipped.items():
            warnings.warn(
                f"{src}: skipped {len(shapes)} slice(s) of size {sorted(set(shapes))} "
                f"smaller than the {what} {min_h}x{min_w}",
                stacklevel=2,
            )
        return out

    @property
    def source_files(self) -> list[str]:
        return sorted(set(self.sources))


def _expand_sources(sources: Any, contrast: str | None) -> list[tuple[str, Any]]:
    """(name, path-or-array) items of every input; folders and globs expanded, sorted."""
    if isinstance(sources, np.ndarray):
        sources = [sources]
    elif isinstance(sources, (str, Path)):
        sources = [sources]
    items: list[tuple[str, Any]] = []
    n_arrays = skipped = 0
    for s in sources:
        if isinstance(s, np.ndarray):
            items.append((f"<array {n_arrays}>", s))
            n_arrays += 1
            continue
        p = Path(s).expanduser()
        if p.is_dir():
            try:
                found = find_volumes(p, contrast)
            except InputDataError as e:
                slice_files = sorted(
                    q
                    for q in p.iterdir()
                    if q.is_file() and not is_hidden(q, p) and q.suffix.lower() in SLICE_SUFFIXES
                )
                if contrast is not None or not slice_files:
                    raise e
                found = slice_files
        elif p.is_file():
            # a file named on its own (e.g. a shell-expanded glob) obeys ``contrast`` too
            found = [p] if contrast is None or has_contrast(p, contrast) else []
            skipped += not found
        else:
            found = find_volumes(str(s), contrast)
        items.extend((str(q), q) for q in found)
    if not items and skipped:
        raise UsageError(
            f"none of the {skipped} file(s) given has contrast "
            f"{contrast.upper()!r} in its IXI/BIDS name; use contrast=None "
            "(no --contrast) to take every file"
        )
    if not items:
        raise UsageError("no input given: pass a folder, glob, file or array")
    seen: dict[str, Any] = {}
    for name, obj in items:
        seen.setdefault(name, obj)
    return list(seen.items())


def source_files(sources: Any, contrast: str | None = None) -> list[Path]:
    """The files (or DICOM folders) :func:`load_slice_sets` would read from ``sources``
    (folders and globs expanded; arrays left out); InputDataError when one names nothing."""
    return [
        Path(obj)
        for _, obj in _expand_sources(sources, contrast)
        if not isinstance(obj, np.ndarray)
    ]


def _load_normalised(name: str, obj: Any, config: DataConfig) -> tuple[np.ndarray, NormStats]:
    if isinstance(obj, np.ndarray):
        a = np.asarray(obj, dtype=np.float32)
        if a.ndim == 3 and 1 in a.shape:
            a = np.squeeze(a)
        if a.ndim not in (2, 3):
            raise InputDataError(
                name, f"array of shape {obj.shape} is neither a 2D slice nor a 3D volume"
            )
        check_array(a, name, what="volume" if a.ndim == 3 else "slice")
    else:
        a = load_any(obj)
    stats = fit_normalization(a, config.percentiles, path=name)
    return stats.apply(a), stats


def _axes(config: DataConfig) -> list[int]:
    return [0, 1, 2] if config.slice_axis is None else [int(config.slice_axis)]


def _add_volume(
    out: SliceSet,
    vol: np.ndarray,
    name: str,
    axes: Iterable[int],
    config: DataConfig,
    stats: NormStats,
) -> None:
    for ax in axes:
        sl, idx = extract_slices(vol, ax, config.min_foreground, config.foreground_threshold)
        out.add(sl, name, idx, ax, stats)


def _add_2d(
    out: SliceSet, img: np.ndarray, name: str, config: DataConfig, stats: NormStats
) -> None:
    frac = float((img > config.foreground_threshold).mean())
    if frac >= config.min_foreground:
        out.add([img], name, [0], -1, stats)
    else:
        warnings.warn(
            f"{name}: slice skipped, only {frac:.1%} foreground (< min_foreground "
            f"{config.min_foreground:.1%})",
            stacklevel=4,
        )


def _any_at_least(sl: SliceSet, size: int) -> bool:
    return any(x.shape[0] >= size and x.shape[1] >= size for x in sl.slices)


def _split_slice_sets(sources: Any, config: DataConfig) -> tuple[SliceSet, SliceSet, str]:
    """Load, normalise, slice and split ``sources`` into (train, val, where): every slice with
    enough foreground, whatever its size; ``where`` names the input in error messages."""
    items = _expand_sources(sources, config.contrast)
    names = [n for n, _ in items]
    train, val = SliceSet(), SliceSet()
    axes = _axes(config)
    group = subject_of
    n_subjects = len({group(n) for n in names})
    if n_subjects < 2 and len(names) >= 2 and all(map(_is_slice_file, names)):
        # 2D slice files of one subject (sub-01_z050.png, ...): holding some files out is the
        # only validation there is, as when each file counted as its own subject
        group, n_subjects = str, len(names)
    if config.val_fraction > 0 and n_subjects >= 2:
        train_names, _ = split_volumes(names, config.val_fraction, config.seed, group=group)
        train_set = set(train_names)
        for name, obj in items:
            a, st = _load_normalised(name, obj, config)
            dest = train if name in train_set else val
            if a.ndim == 3:
                _add_volume(dest, a, name, axes, config, st)
            else:
                _add_2d(dest, a, name, config, st)
    else:
        for name, obj in items:
            a, st = _load_normalised(name, obj, config)
            if a.ndim == 2:
                _add_2d(train, a, name, config, st)
                continue
            if config.val_fraction <= 0:
                _add_volume(train, a, name, axes, config, st)
                continue
            # One subject: validation = a slab at the end of the split axis, training = the part
            # of the volume before it minus the gap (sliced along every requested axis).
            split_axis = axes[-1]
            _, kept = extract_slices(
                a, split_axis, config.min_foreground, config.foreground_threshold
            )
            if len(kept) == 0:
                warnings.warn(
                    f"{name}: no slice with enough foreground along axis {split_axis}", stacklevel=3
                )
                continue
            try:
                tr_pos, va_pos = split_single_volume(len(kept), config.val_fraction, config.val_gap)
            except InputDataError as e:
                raise InputDataError(name, e.problem) from None
            train_end = int(kept[tr_pos[-1]]) + 1
            val_idx = kept[va_pos]
            a_m = np.moveaxis(a, split_axis, 0)
            val.add(a_m[val_idx], name, val_idx, split_axis, st)
            sub = np.moveaxis(a_m[:train_end], 0, split_axis)
            _add_volume(train, sub, name, axes, config, st)
        if config.val_fraction > 0 and len(val) == 0:
            warnings.warn(
                "no validation slice could be held out (a single 2D image?); training "
                "without validation",
                stacklevel=3,
            )
    where = names[0] if len(names) == 1 else f"{names[0]} (and {len(names) - 1} more)"
    return train, val, where


def load_slice_sets(
    sources: Any, scale: int, config: DataConfig | None = None, min_size: int | None = None
) -> tuple[SliceSet, SliceSet]:
    """Load, normalise, slice and split ``sources`` into (train, val) :class:`SliceSet`s for
    training.

    ``sources``: a folder (IXI-style NIfTI files; or 2D PNG/NPY slices), a glob, a file, a 2D/3D
    numpy array, or a list of these. ``config.contrast`` selects an IXI contrast. Training slices
    smaller than ``min_size`` (default: the HR patch ``patch_size * scale``) are skipped with a
    warning; InputDataError when no training slice is left. Validation slices are kept whole
    (at least ``scale`` pixels each side). Slicing: ``config.slice_axis`` (None: all three axes).
    """
    config = config or DataConfig()
    s = int(scale)
    train, val, where = _split_slice_sets(sources, config)
    if min_size is None:
        min_size = config.patch_size * s
        why = f"patch_size {config.patch_size} x scale {s}"
        what, advice = f"HR patch ({why})", "lower patch_size"
    else:
        min_size = int(min_size)
        why, what = "the minimum slice size asked", "minimum slice size"
        advice = "use larger images"
    if not _any_at_least(train, min_size):
        raise InputDataError(
            where,
            f"no training slice left: {len(train)} slice(s) with enough "
            f"foreground, none at least {min_size}x{min_size} ({why}); "
            f"{advice}, choose another slice_axis, or lower "
            "min_foreground",
        )
    train = train.filter_min_size(min_size, what=what)
    val = val.filter_min_size(2 * s, what="validation minimum")
    return train, val


def load_scored_slices(
    sources: Any, scale: int, min_size: int, config: DataConfig | None = None
) -> SliceSet:
    """The slices an evaluation scores: the held-out validation slices of ``sources`` when
    ``config.val_fraction`` > 0 (the split :func:`load_slice_sets` makes), else every slice.

    ``min_size``: the smallest slice the caller can score (at least ``2 * scale`` is kept);
    smaller ones are skipped with a warning, and InputDataError, worded for scoring, comes when
    none is left.
    """
    config = config or DataConfig()
    s = int(scale)
    train, val, where = _split_slice_sets(sources, config)
    held_out = config.val_fraction > 0
    scored = val if held_out else train
    smallest = max(int(min_size), 2 * s)
    if not _any_at_least(scored, smallest):  # the error alone, no warning too
        kind = "held-out validation slice" if held_out else "slice"
        raise InputDataError(
            where,
            f"no {kind} left to score: {len(scored)} slice(s) with "
            f"enough foreground, none at least {min_size}x{min_size} "
            f"(the smallest slice PSNR/SSIM can score at x{s}); use "
            "larger images or another slice axis (--axis)",
        )
    return scored.filter_min_size(smallest, what=f"PSNR/SSIM minimum at x{s}")


def validation_pairs_from(
    val: SliceSet, scale: int, config: DataConfig | None = None
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(lr_list, hr_list) of whole validation slices: HR (h*s, w*s) cropped to a multiple of the
    scale, LR (h, w) = degrade(HR) with the config's degradation and (seeded) noise. float32 2D."""
    config = config or DataConfig()
    rng = np.random.default_rng([config.seed, 7919])
    lrs, hrs = [], []
    for sl in val.slices:
        hr = np.ascontiguousarray(crop_to_multiple(sl, scale), dtype=np.float32)
        lr = degrade(hr, scale, config.eval_degradation, config.noise_sigma, rng)
        lrs.append(lr)
        hrs.append(hr)
    return lrs, hrs


def validation_pairs(
    sources: Any, scale: int, config: DataConfig | None = None
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Held-out validation slices of ``sources`` as numpy lists (lr_list, hr_list) for evaluation.

    Same split as :func:`keras_seran.data.make_datasets` with the same config; ``sources`` may also
    be an already loaded validation :class:`SliceSet`.
    """
    config = config or DataConfig()
    if isinstance(sources, SliceSet):
        val = sources
    else:
        _, val = load_slice_sets(sources, scale, config)
    return validation_pairs_from(val, scale, config)


def representative_slices(
    sources: Any, n: int, scale: int, config: DataConfig | None = None
) -> list[np.ndarray]:
    """``n`` normalised LR slices (1, h, w, 1) float32, evenly spaced over the training slices,
    for int8 calibration of an exported model (``representative_dataset``); no noise."""
    config = config or DataConfig()
    train, _ = load_slice_sets(sources, scale, config, min_size=2 * scale)
    k = min(int(n), len(train))
    pick = np.unique(np.linspace(0, len(train) - 1, k).round().astype(int))
    out = []
    for i in pick:
        hr = crop_to_multiple(train.slices[i], scale)
        out.append(degrade(hr, scale, config.eval_degradation)[None, :, :, None])
    return out
