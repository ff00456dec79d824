"""Typed configurations: the single source of truth for every default in the package.

Every component (model builder, data pipeline, trainer, inference, export, command line) reads its
defaults from these dataclasses; nothing else in the package hard-codes a size, a learning rate or
a patch size, and each rule on a value is checked here once. The command-line flags are derived
from the fields (:func:`add_config_arguments`): a field declared with :func:`setting` carries its
help text and argparse details, so a flag's default, choices and help have one source.
The values follow Zhang et al., CVPR 2021 (SERAN) where the paper fixes them; the places where the
paper's text is silent are *decisions* of ours, documented in ``docs/architecture.md``
("Faithfulness to the paper").
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import numbers
import re
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from keras_seran.contract import DEFAULT_PERCENTILES
from keras_seran.errors import UsageError

SUPPORTED_SCALES = (2, 3, 4)
DEFAULT_SCALE = 2
#: The network size every builder, the trainer and the bundled weights default to. "small", not
#: the paper's RCAN-sized trunk: it is the size of every bundled model (so ``seran()`` matches
#: ``seran_small_x2.weights.h5``), it trains on a CPU, and the paper's is one word away
#: (``preset="paper"``).
DEFAULT_PRESET = "small"
#: deterministic degradations: an HR image has one LR (evaluation, ``degrade``)
DEGRADATIONS = ("bicubic", "blur", "kspace")
#: what training may draw from: the deterministic ones, and "blind", a per-sample mix of them
TRAINING_DEGRADATIONS = (*DEGRADATIONS, "blind")
#: the kinds a "blind" sample is drawn from, in the order of ``AcquisitionConfig.blind_mix``
BLIND_KINDS = ("kspace", "bicubic", "blur")
#: degradations the bundled weights are trained on; the first has no suffix in names and files
BUNDLED_DEGRADATIONS = ("bicubic", "kspace")
#: networks ``keras-seran train`` can train (bicubic has no weights); rir = SERAN w/o SERA
TRAINABLE_ARCHS = ("seran", "edsr", "rcan", "rir", "srcnn")
MIXED_PRECISION_KINDS = ("float16", "bfloat16")  # compute types of mixed-precision training
#: how training spreads over devices (``TrainConfig.distribute``): one device; tf.distribute's
#: MirroredStrategy (one machine) or MultiWorkerMirroredStrategy (TF_CONFIG); JAX's
#: keras.distribution.DataParallel (all devices, all processes)
DISTRIBUTIONS = ("none", "mirrored", "multi-worker", "data-parallel")
#: contrasts ``DataConfig.contrast`` can select (any case): those IXI and BIDS file names carry
CONTRASTS = ("T1", "T2", "PD", "MRA", "DTI")
ReasoningKind = Literal["glore", "rs_gcn"]
REASONING_KINDS = ("glore", "rs_gcn")
SLICE_AXES = (0, 1, 2)
#: where inference runs: the CPU, the GPU, or whatever the Keras backend finds
DEVICES = ("auto", "cpu", "gpu")
#: runtimes that run an export bundle's artifacts (:mod:`keras_seran.runtime`), and the
#: precisions their artifacts come in (LiteRT and ONNX variants; fp16/int8 TensorRT engines)
RUNTIMES = ("litert", "onnxruntime", "tensorrt")
RUNTIME_PRECISIONS = ("float32", "float16", "dynamic_int8", "int8", "fp16")
#: numpy dtypes a NIfTI-1 file stores as real-valued voxels (what ``--output-dtype`` accepts,
#: besides "input": the input's own integer type)
NIFTI_DTYPES = (
    "uint8",
    "int8",
    "int16",
    "uint16",
    "int32",
    "uint32",
    "int64",
    "uint64",
    "float32",
    "float64",
)


def setting(default: Any, help: str, **cli: Any) -> Any:
    """A dataclass field that is also a command-line flag (see :func:`add_config_arguments`).

    ``help``: the flag's help text (its default is appended unless it is None/False, or
    ``default_text`` says how to show it; "" shows none). ``cli``: ``flag`` (default
    ``--field-name``) and any :meth:`argparse.ArgumentParser.add_argument` keyword (``choices``,
    ``metavar``, ``nargs``, ``const``, ``type``, ``action``); type and choices are otherwise taken
    from the field's annotation.
    """
    return field(default=default, metadata={"help": help, **cli})


def check_scale(scale: Any) -> int:
    """``scale`` if it is one of the integer SUPPORTED_SCALES (2.0 is not), else ValueError."""
    if not _is_int(scale) or scale not in SUPPORTED_SCALES:
        raise ValueError(f"scale must be an integer, one of {SUPPORTED_SCALES}; got {scale!r}")
    return scale


def check_factor(scale: Any) -> int:
    """``scale`` as an int if it is a whole number >= 1 (any factor: the degradations and the
    output geometry work for every one, not only the trained ``SUPPORTED_SCALES``), else
    ValueError."""
    if (
        isinstance(scale, bool)
        or not isinstance(scale, numbers.Real)
        or int(scale) != scale
        or int(scale) < 1
    ):
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    return int(scale)


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def check_int(name: str, value: Any, minimum: int, optional: bool = False) -> None:
    """ValueError unless ``value`` is an integer >= ``minimum`` (or None when ``optional``)."""
    if optional and value is None:
        return
    if not _is_int(value) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def check_bool(name: str, value: Any) -> None:
    """ValueError unless ``value`` is True or False (not 0/1, not a string)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")


def check_number(
    name: str,
    value: Any,
    low: float = -math.inf,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
    optional: bool = False,
) -> None:
    """ValueError unless ``value`` is a finite number (not a bool, not NaN or infinity: no setting
    of the package means anything there) in the interval low..high, open ends as asked."""
    if optional and value is None:
        return
    ok = (
        _is_number(value)
        and math.isfinite(value)
        and (value > low if low_open else value >= low)
        and (value < high if high_open else value <= high)
    )
    if not ok:
        if math.isfinite(low) and math.isfinite(high):
            where = f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        elif math.isfinite(low):
            where = f" {'>' if low_open else '>='} {low:g}"
        elif math.isfinite(high):
            where = f" {'<' if high_open else '<='} {high:g}"
        else:
            where = ""
        raise ValueError(f"{name} must be a finite number{where}, got {value!r}")


def check_choice(name: str, value: Any, allowed: Iterable[Any]) -> None:
    """ValueError unless ``value`` is one of ``allowed`` (exactly: 2.0 is not 2, "CPU" is not
    "cpu")."""
    allowed = tuple(allowed)
    if not any(value == a and type(value) is type(a) for a in allowed):
        raise ValueError(f"{name} must be one of {', '.join(map(str, allowed))}; got {value!r}")


def check_choices(
    name: str, values: Any, allowed: Iterable[str], aliases: dict[str, str] | None = None
) -> tuple[str, ...]:
    """A selection from ``allowed``: ``values`` as a comma-separated string or an iterable of names
    (any case, ``aliases`` mapped), returned in the order of ``allowed`` without repeats;
    ValueError naming the unknown ones, or for an empty selection."""
    allowed, aliases = tuple(allowed), aliases or {}
    try:
        items = values.split(",") if isinstance(values, str) else list(values)
    except TypeError:
        items = None
    if items is None or not all(isinstance(v, str) for v in items):
        raise ValueError(f"{name} must be names from {', '.join(allowed)}; got {values!r}")
    names = [aliases.get(v.strip().lower(), v.strip().lower()) for v in items if v.strip()]
    bad = [v for v in names if v not in allowed]
    if bad:
        raise ValueError(
            f"{name}: unknown {', '.join(map(repr, bad))}; choose from {', '.join(allowed)}"
        )
    if not names:
        raise ValueError(f"{name}: none given; choose from {', '.join(allowed)}")
    return tuple(a for a in allowed if a in names)


def check_reasoning(reasoning: Any) -> str:
    """``reasoning`` if it is one of :data:`REASONING_KINDS`, else ValueError."""
    if reasoning not in REASONING_KINDS:
        raise ValueError(f"reasoning must be one of {REASONING_KINDS}, got {reasoning!r}")
    return reasoning


def check_percentiles(percentiles: Any) -> tuple[float, float]:
    """``(low, high)`` as floats if two numbers with ``0 <= low < high <= 100``, else ValueError
    (the robust normalisation range of training, inference and the export manifest)."""
    try:
        lo_hi = () if isinstance(percentiles, (str, bytes)) else tuple(percentiles)
    except TypeError:
        lo_hi = ()
    if len(lo_hi) != 2 or not all(map(_is_number, lo_hi)) or not 0 <= lo_hi[0] < lo_hi[1] <= 100:
        raise ValueError(
            f"percentiles must be two numbers 0 <= low < high <= 100, got {percentiles!r}"
        )
    return float(lo_hi[0]), float(lo_hi[1])


@dataclass(frozen=True)
class SERAConfig:
    """Sizes of one squeeze-and-excitation reasoning attention (SERA) module.

    Attributes:
        feature_dim: m, the dimension of each global descriptor (channels of A = conv1x1(E)).
        num_descriptors: n, the number of global descriptors ("primitives").
        reasoning: "glore" (GloRe graph conv, default) or "rs_gcn" (VSRN/PRRGAN affinity GCN).
        residual_scale: None -> a learnable scalar s starting at ``residual_scale_init``;
            a float -> that fixed constant s in ``out = E + s * Z``. Either way the excitation's
            output conv starts at zero, so the module starts as the identity.
        residual_scale_init: starting value of the learnable s.
        attention_norm: compute the logits of both softmaxes (M over positions, D over
            descriptors) on E divided by its root-mean-square over the map, a per-sample scalar:
            still a linear map of E, but with a softmax temperature that does not depend on the
            intensity scale of the input. *Decision* of ours (the paper's networks see [0, 255]
            images): on [0, 1] MR without it the features' std is about 0.04, the logits stay
            near zero and both softmaxes stay uniform through training (measured).
    """

    feature_dim: int = 64
    num_descriptors: int = 32
    reasoning: ReasoningKind = "glore"
    residual_scale: float | None = None
    residual_scale_init: float = 1.0
    attention_norm: bool = True

    def __post_init__(self) -> None:
        check_int("feature_dim", self.feature_dim, 1)
        check_int("num_descriptors", self.num_descriptors, 1)
        check_reasoning(self.reasoning)
        check_number("residual_scale", self.residual_scale, optional=True)
        check_number("residual_scale_init", self.residual_scale_init)
        check_bool("attention_norm", self.attention_norm)


@dataclass(frozen=True)
class SERANConfig:
    """Network sizes. ``preset`` names are resolved through :data:`PRESETS`.

    Attributes:
        scale: upscaling factor, one of 2, 3, 4 (x4 is two x2 pixel-shuffle steps).
        channels: C, feature channels throughout the trunk.
        num_groups: G, residual groups (each ends with one SERA module and a conv3x3).
        blocks_per_group: B, residual blocks (conv3x3-ReLU-conv3x3 + skip) per group.
        sera: sizes of the attention module.
        input_channels: 1 for MR magnitude images.
        res_scale: scaling of each residual block's branch (1.0 as in RCAN/EDSR-baseline).
    """

    scale: int = DEFAULT_SCALE
    channels: int = 64
    num_groups: int = 10
    blocks_per_group: int = 20
    sera: SERAConfig = field(default_factory=SERAConfig)
    input_channels: int = 1
    res_scale: float = 1.0

    def __post_init__(self) -> None:
        check_scale(self.scale)
        for name in ("channels", "num_groups", "blocks_per_group", "input_channels"):
            check_int(name, getattr(self, name), 1)
        if not isinstance(self.sera, SERAConfig):
            raise ValueError(
                f"sera must be a SERAConfig (or, in preset_config / seran(), a dict "
                f"of its fields), got {type(self.sera).__name__} {self.sera!r}"
            )
        check_number("res_scale", self.res_scale, 0.0, low_open=True)

    def replace(self, **changes: Any) -> SERANConfig:
        return dataclasses.replace(self, **changes)


# Paper: RCAN-sized trunk (C=64, G=10, B=20), one SERA per group, m=64, n=32; residual blocks
# scaled by 0.1 (EDSR's choice for its large model): at 1.0 the 200 unnormalised blocks grow the
# activations at initialisation to ~1e16 on a real MR patch (0.1: output std ~3), and the first
# steps diverge. Small: trains on a CPU in minutes to hours; the bundled weights' size.
PRESETS: dict[str, SERANConfig] = {
    "paper": SERANConfig(
        channels=64,
        num_groups=10,
        blocks_per_group=20,
        res_scale=0.1,
        sera=SERAConfig(feature_dim=64, num_descriptors=32),
    ),
    "small": SERANConfig(
        channels=32,
        num_groups=3,
        blocks_per_group=4,
        sera=SERAConfig(feature_dim=32, num_descriptors=16),
    ),
    "tiny": SERANConfig(
        channels=16,
        num_groups=1,
        blocks_per_group=2,
        sera=SERAConfig(feature_dim=16, num_descriptors=8),
    ),
}


@dataclass(frozen=True)
class RunConfig:
    """The network a training run trains (``run_config.json``'s "arch", "preset" and "scale")."""

    scale: int = setting(DEFAULT_SCALE, "upscaling factor", choices=SUPPORTED_SCALES)
    arch: str = setting(
        "seran",
        "network to train; rir: SERAN without its SERA modules (the 'w/o SERA' ablation)",
        choices=TRAINABLE_ARCHS,
    )
    preset: str = setting(
        DEFAULT_PRESET,
        "network size: paper (the paper's RCAN-sized trunk), "
        "small (CPU-trainable, the bundled weights' size), tiny",
        choices=tuple(PRESETS),
    )

    def __post_init__(self) -> None:
        check_scale(self.scale)
        check_choice("arch", self.arch, TRAINABLE_ARCHS)
        check_choice("preset", self.preset, tuple(PRESETS))


def preset_config(
    preset: str = DEFAULT_PRESET, scale: int = DEFAULT_SCALE, **overrides: Any
) -> SERANConfig:
    """Return the named preset at ``scale`` with any field overridden (:func:`with_overrides`)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    return with_overrides(PRESETS[preset], scale=scale, **overrides)


def with_overrides(cfg: SERANConfig, **overrides: Any) -> SERANConfig:
    """``cfg`` with fields replaced; ``sera`` may be a :class:`SERAConfig` or a dict of the
    fields to change. Unknown fields are a ValueError naming them."""
    known = {f.name for f in dataclasses.fields(SERANConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown SERANConfig field(s) {unknown}; choose from {sorted(known)}")
    sera = overrides.pop("sera", None)
    if isinstance(sera, dict):
        sera_known = {f.name for f in dataclasses.fields(SERAConfig)}
        bad = sorted(set(sera) - sera_known)
        if bad:
            raise ValueError(f"unknown SERAConfig field(s) {bad}; choose from {sorted(sera_known)}")
        sera = dataclasses.replace(cfg.sera, **sera)
    if sera is not None:
        overrides["sera"] = sera
    return dataclasses.replace(cfg, **overrides)


@dataclass(frozen=True)
class AcquisitionConfig:
    """Scanner effects drawn per training sample for the "kspace" and "blind" degradations
    (:mod:`keras_seran.data.acquisition`): what a console does to a smaller k-space matrix.

    Attributes:
        apodization: largest strength of the k-space filter (0 none, 1 Hann, 0.92 Hamming);
            a filtered sample's strength is uniform in [0, apodization].
        apodization_prob: probability that a sample is filtered.
        partial_fourier: smallest fraction of the phase-encoding lines acquired (in (0.5, 1]);
            a partial-Fourier sample keeps a fraction uniform in [partial_fourier, 1].
        partial_fourier_prob: probability of partial Fourier (zero-filled, magnitude shown).
        noise: (low, high) Rician noise sigma relative to the [0, 1] range: a noisy sample's
            sigma is uniform in it. (0, 0.03) covers clinical SNR of normalised brain MR
            (white matter at about 0.8: SNR from infinity down to about 25).
        noise_prob: probability that a sample gets noise at all.
        blind_mix: relative weights of "kspace", "bicubic", "blur" for the "blind" degradation.
    """

    apodization: float = 1.0
    apodization_prob: float = 0.5
    partial_fourier: float = 0.625
    partial_fourier_prob: float = 0.25
    noise: tuple[float, float] = (0.0, 0.03)
    noise_prob: float = 0.8
    blind_mix: tuple[float, float, float] = (0.5, 0.25, 0.25)

    def __post_init__(self) -> None:
        check_number("apodization", self.apodization, 0.0, 1.0)
        check_number("partial_fourier", self.partial_fourier, 0.5, 1.0, low_open=True)
        for name in ("apodization_prob", "partial_fourier_prob", "noise_prob"):
            check_number(name, getattr(self, name), 0.0, 1.0)
        noise = tuple(self.noise) if isinstance(self.noise, (list, tuple)) else ()
        if (
            len(noise) != 2
            or not all(map(_is_number, noise))
            or not 0.0 <= noise[0] <= noise[1] <= 1.0
        ):
            raise ValueError(f"noise must be two numbers 0 <= low <= high <= 1, got {self.noise!r}")
        mix = tuple(self.blind_mix) if isinstance(self.blind_mix, (list, tuple)) else ()
        if (
            len(mix) != len(BLIND_KINDS)
            or not all(_is_number(m) and m >= 0 for m in mix)
            or not sum(mix) > 0
        ):
            raise ValueError(
                f"blind_mix must be {len(BLIND_KINDS)} weights >= 0 (of "
                f"{BLIND_KINDS}) with a positive sum, got {self.blind_mix!r}"
            )
        object.__setattr__(self, "noise", tuple(float(v) for v in noise))
        object.__setattr__(self, "blind_mix", tuple(float(v) for v in mix))


#: A contrast table needs the fixed 0 knot and at least two free ones to reorder two tissues.
MIN_CONTRAST_KNOTS = 3


def check_contrast_args(prob: float, knots: int) -> None:
    """ValueError unless ``prob`` is a number in [0, 1] and ``knots`` an integer >=
    MIN_CONTRAST_KNOTS (the bounds of ``DataConfig.contrast_augment`` / ``contrast_knots``)."""
    if not (_is_number(prob) and 0.0 <= prob <= 1.0):
        raise ValueError(f"contrast_augment must be a probability in [0, 1], got {prob!r}")
    check_int("contrast_knots", knots, MIN_CONTRAST_KNOTS)


@dataclass(frozen=True)
class DataConfig:
    """How training pairs are made from MR volumes.

    Attributes:
        patch_size: LR patch side (paper: 48); the HR patch is ``patch_size * scale``.
        batch_size: patches per batch (paper: 16).
        degradation: "bicubic" (paper's BI), "blur" (BD: RDN/SRMD Gaussian blur, then
            block-centre decimation), "kspace" (centre crop of the 2D spectrum, magnitude: what
            a lower-resolution acquisition does) or "blind" (each sample one of them, drawn by
            ``acquisition.blind_mix``; validated on "kspace").
        noise_sigma: Rician noise level relative to the [0, 1] range (0 disables it); with
            ``acquisition`` the noise is drawn per sample from its range instead (keep 0 here).
        acquisition: scanner effects drawn per sample (k-space filter, partial Fourier, noise
            level) for "kspace" and "blind"; None: the plain degradation.
        slice_axis: axis of the volume along which 2D slices are cut (None: all three axes).
        min_foreground: a slice is kept when at least this fraction of its pixels is above
            ``foreground_threshold`` (skips near-empty background slices).
        foreground_threshold: intensity (in normalised [0, 1] units) counted as foreground.
        percentiles: robust normalisation range per volume, mapped to [0, 1].
        val_fraction: fraction of the subjects held out for validation (IXI/BIDS ids; at least
            one; other files count as one subject each); one subject: a slab at the end of
            each volume; 2D slice files of one subject: a fraction of the files.
        val_gap: slices skipped between train and validation slabs of a single volume.
        augment: random flips and 90-degree rotations.
        contrast_augment: probability that an HR patch gets a random intensity lookup table
            (piecewise linear, 0 kept at 0) before its LR is made, so one training contrast
            teaches others (:mod:`keras_seran.data.intensity`); 0 disables it.
        contrast_knots: knots of that table on [0, 1] (more: wilder remappings).
        contrast: contrast to select by IXI/BIDS file name (one of :data:`CONTRASTS`, any case,
            e.g. "T1", "T2", "PD") or None for every file.
        seed: seed for shuffling, patch positions and augmentation.
    """

    patch_size: int = setting(48, "LR patch side, the paper's", metavar="PX")
    batch_size: int = setting(16, "patches per batch, the paper's", metavar="N")
    degradation: Literal["bicubic", "blur", "kspace", "blind"] = setting(
        "bicubic",
        "how LR patches are made from HR: bicubic (the paper's BI), blur (Gaussian "
        "blur then decimation, BD), kspace (centre crop of the spectrum, as a lower-resolution "
        "acquisition) or blind (a per-sample mix of them, with scanner effects)",
    )
    noise_sigma: float = setting(
        0.0, "Rician noise sigma, [0, 1] units", flag="--noise", metavar="SIGMA"
    )
    acquisition: AcquisitionConfig | None = None
    slice_axis: int | None = setting(
        2, "slice axis of the volumes", flag="--axis", choices=SLICE_AXES
    )
    min_foreground: float = 0.1
    foreground_threshold: float = 0.05
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES
    val_fraction: float = setting(
        0.1,
        "fraction of the subjects held out for validation (at least one; one subject: a "
        "slab at the end of each volume; 2D slice files of one subject: of the files)",
        metavar="FRACTION",
    )
    val_gap: int = 8
    augment: bool = True
    contrast_augment: float = setting(
        0.0,
        "probability of a random intensity remapping per HR patch, so a network trained "
        "on one contrast generalises to others",
        metavar="PROB",
    )
    contrast_knots: int = 6
    contrast: str | None = setting(
        None, f"IXI/BIDS contrast to select by file name: {', '.join(CONTRASTS)} (any case)"
    )
    seed: int = setting(0, "seed of the split, patch positions and augmentation", metavar="N")

    def __post_init__(self) -> None:
        check_int("patch_size", self.patch_size, 4)
        check_int("batch_size", self.batch_size, 1)
        if self.degradation not in TRAINING_DEGRADATIONS:
            raise ValueError(
                f"degradation must be one of {TRAINING_DEGRADATIONS}, got {self.degradation!r}"
            )
        check_number("noise_sigma", self.noise_sigma, 0.0, 1.0)
        if isinstance(self.acquisition, dict):  # read back from JSON
            object.__setattr__(self, "acquisition", AcquisitionConfig(**self.acquisition))
        if self.acquisition is not None:
            if not isinstance(self.acquisition, AcquisitionConfig):
                raise ValueError(
                    f"acquisition must be an AcquisitionConfig or null, got {self.acquisition!r}"
                )
            if self.degradation not in ("kspace", "blind"):
                raise ValueError(
                    "acquisition effects (k-space filter, partial Fourier) need the "
                    f"'kspace' or 'blind' degradation, not {self.degradation!r}"
                )
            if self.noise_sigma:
                raise ValueError(
                    "with acquisition effects the noise is drawn per sample from "
                    "acquisition.noise; leave noise_sigma at 0"
                )
        if self.slice_axis is not None and not (
            _is_int(self.slice_axis) and self.slice_axis in (0, 1, 2)
        ):
            raise ValueError(
                f"slice_axis must be the integer 0, 1 or 2, or null (all three), "
                f"got {self.slice_axis!r}"
            )
        check_number("min_foreground", self.min_foreground, 0.0, 1.0)
        check_number("foreground_threshold", self.foreground_threshold, 0.0, 1.0)
        # a tuple, as declared: a config read back from JSON (a list) equals the original
        object.__setattr__(self, "percentiles", check_percentiles(self.percentiles))
        check_number("val_fraction", self.val_fraction, 0.0, 1.0, high_open=True)
        check_int("val_gap", self.val_gap, 0)
        check_bool("augment", self.augment)
        check_contrast_args(self.contrast_augment, self.contrast_knots)
        if self.contrast is not None and not (
            isinstance(self.contrast, str) and self.contrast.upper() in CONTRASTS
        ):
            raise ValueError(
                f"contrast must be one of {CONTRASTS} (any case) or null, got {self.contrast!r}"
            )
        check_int("seed", self.seed, 0)

    @property
    def eval_degradation(self) -> str:
        """The deterministic degradation validation pairs are made with ("blind": "kspace")."""
        return "kspace" if self.degradation == "blind" else self.degradation


#: slice profiles of thick-slice acquisitions (:mod:`keras_seran.data.slice_profile`)
SLICE_PROFILES = ("boxcar", "gaussian")


def _check_range(name: str, value: Any, low: float, high: float) -> tuple[float, float]:
    pair = tuple(value) if isinstance(value, (list, tuple)) else ()
    if len(pair) != 2 or not all(map(_is_number, pair)) or not low <= pair[0] <= pair[1] <= high:
        raise ValueError(
            f"{name} must be two numbers {low:g} <= low <= high <= {high:g}, got {value!r}"
        )
    return float(pair[0]), float(pair[1])


@dataclass(frozen=True)
class ThickSliceConfig:
    """How through-plane training pairs are made: fine 2D patches acquired as thick slices along
    their rows, then interpolated back (cubic) onto the fine rows; the network restores them.

    Attributes:
        patch_size: side of the fine patch (input and target).
        batch_size: patches per batch.
        ratio: (low, high) slice thickness in fine voxels, drawn uniformly per patch.
        profiles: slice profiles drawn from ("boxcar", "gaussian"; FWHM = thickness).
        gap_prob: probability of a gap between slices.
        gap: (low, high) gap as a fraction of the thickness, when there is one.
        noise: (low, high) Rician noise sigma of the thick slices ([0, 1] units).
        noise_prob: probability that a patch gets noise.
        slice_axis: axis of the fine volumes the 2D patches are cut along (None: all three).
        seed: seed of the patch stream.
    """

    patch_size: int = 64
    batch_size: int = 16
    ratio: tuple[float, float] = (2.0, 6.0)
    profiles: tuple[str, ...] = SLICE_PROFILES
    gap_prob: float = 0.2
    gap: tuple[float, float] = (0.0, 0.5)
    noise: tuple[float, float] = (0.0, 0.02)
    noise_prob: float = 0.5
    slice_axis: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("patch_size", self.patch_size, 16)
        check_int("batch_size", self.batch_size, 1)
        object.__setattr__(self, "ratio", _check_range("ratio", self.ratio, 1.0, 8.0))
        object.__setattr__(self, "gap", _check_range("gap", self.gap, 0.0, 1.0))
        object.__setattr__(self, "noise", _check_range("noise", self.noise, 0.0, 1.0))
        profiles = tuple(self.profiles) if isinstance(self.profiles, (list, tuple)) else ()
        if not profiles or any(p not in SLICE_PROFILES for p in profiles):
            raise ValueError(
                f"profiles must be a non-empty selection of {SLICE_PROFILES}, got {self.profiles!r}"
            )
        object.__setattr__(self, "profiles", profiles)
        check_number("gap_prob", self.gap_prob, 0.0, 1.0)
        check_number("noise_prob", self.noise_prob, 0.0, 1.0)
        if self.slice_axis is not None and not (
            _is_int(self.slice_axis) and self.slice_axis in (0, 1, 2)
        ):
            raise ValueError(f"slice_axis must be 0, 1, 2 or null, got {self.slice_axis!r}")
        check_int("seed", self.seed, 0)
        if 2 * self.ratio[1] * (1 + self.gap[1]) > self.patch_size:
            raise ValueError(
                f"a patch of {self.patch_size} rows holds fewer than two slices of "
                f"thickness {self.ratio[1]:g} (+ gap); use a larger patch_size"
            )


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (paper: L1, Adam(0.9, 0.999, 1e-8), lr 1e-4 halved every 200 epochs).

    ``mixed_precision``: False (float32), "float16", "bfloat16", or True for the device's fast
    kind (float16 on a GPU, bfloat16 on a CPU, where oneDNN runs bfloat16 convolutions on AMX /
    AVX512-BF16 units). Variables stay float32 and the reconstruction conv computes in float32.
    """

    epochs: int = setting(1000, "epochs to train in all", metavar="N")
    steps_per_epoch: int = setting(1000, "batches per epoch", metavar="N")
    learning_rate: float = setting(1e-4, "initial learning rate, the paper's", flag="--lr")
    lr_decay_epochs: int = setting(200, "halve the lr every N epochs, the paper's", metavar="N")
    lr_decay_factor: float = 0.5
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-8
    clipnorm: float | None = setting(None, "clip gradients to this global norm", metavar="NORM")
    mixed_precision: bool | Literal["float16", "bfloat16"] = setting(
        False,
        "mixed-precision training (no value: float16 on a GPU, bfloat16 on a CPU)",
        nargs="?",
        const=True,
        choices=MIXED_PRECISION_KINDS,
    )
    distribute: Literal["none", "mirrored", "multi-worker", "data-parallel"] = setting(
        "none",
        "train on several devices (docs/distributed.md): mirrored = "
        "tf.distribute.MirroredStrategy over this machine's GPUs (or logical CPUs); "
        "multi-worker = MultiWorkerMirroredStrategy over the TF_CONFIG cluster; "
        "data-parallel = keras.distribution.DataParallel (jax backend). The batch size "
        "stays the global batch",
        choices=DISTRIBUTIONS,
    )
    early_stop_patience: int | None = setting(
        None,
        "stop after PATIENCE epochs without a better val_psnr (psnr without validation data)",
        flag="--early-stop",
        metavar="PATIENCE",
        default_text="no early stop",
    )
    checkpoint_every_epochs: int = setting(
        1,
        "write last.keras every EPOCHS epochs, and at the end of training",
        flag="--checkpoint-every",
        metavar="EPOCHS",
    )

    def __post_init__(self) -> None:
        check_int("epochs", self.epochs, 1)
        check_int("steps_per_epoch", self.steps_per_epoch, 1)
        check_number("learning_rate", self.learning_rate, 0.0, low_open=True)
        check_int("lr_decay_epochs", self.lr_decay_epochs, 1)
        check_number("lr_decay_factor", self.lr_decay_factor, 0.0, 1.0, low_open=True)
        check_number("beta_1", self.beta_1, 0.0, 1.0, high_open=True)
        check_number("beta_2", self.beta_2, 0.0, 1.0, high_open=True)
        check_number("epsilon", self.epsilon, 0.0, low_open=True)
        check_number("clipnorm", self.clipnorm, 0.0, low_open=True, optional=True)
        if isinstance(self.distribute, bool):  # run_config.json of runs before --distribute
            object.__setattr__(self, "distribute", "mirrored" if self.distribute else "none")
        check_choice("distribute", self.distribute, DISTRIBUTIONS)
        check_int("early_stop_patience", self.early_stop_patience, 0, optional=True)
        check_int("checkpoint_every_epochs", self.checkpoint_every_epochs, 1)
        mixed = self.mixed_precision  # True / False, or a kind: not 1, 0.0 or "yes"
        if not (
            isinstance(mixed, bool) or (isinstance(mixed, str) and mixed in MIXED_PRECISION_KINDS)
        ):
            raise ValueError(
                "mixed_precision must be true, false, 'float16' or 'bfloat16', "
                f"got {self.mixed_precision!r}"
            )


def check_data_consistency(weight: Any, name: str = "data_consistency") -> float:
    """``weight`` as a float if it is a number in [0, 1] (1: the measured k-space centre replaces
    the network's; below 1: a blend), else ValueError."""
    check_number(name, weight, 0.0, 1.0)
    return float(weight)


@dataclass(frozen=True)
class InferenceConfig:
    """How a volume is super-resolved (``keras-seran predict``, ``SuperResolver``).

    Attributes:
        scale: upscaling factor; None: the model's (the bundled weights: ``DEFAULT_SCALE``).
        degradation: what the bundled weights to use were trained on: "bicubic" (the paper's
            BI) or "kspace" (k-space truncation: a scanner's lower-resolution acquisition).
        slice_axis: axis the volume is cut along (the other two are upscaled); None: the
            thick-slice axis.
        tile_size: LR tile side for slices too large for memory (None: whole slices).
        overlap: LR pixels shared by neighbouring tiles.
        batch_size: slices (or tiles) per network call.
        max_memory_mb: memory budget (MB) that picks batch and tile size (None: no budget).
        percentiles: robust intensity range of each volume mapped to [0, 1] (as in training).
        self_ensemble: average over the 8 flips/rotations of each slice ("SERAN+").
        data_consistency: None (off) or the weight in [0, 1] of k-space data consistency
            (:mod:`keras_seran.inference.consistency`), applied per slice to the normalised
            network output.
        output_dtype: "float32", "input" or one of :data:`NIFTI_DTYPES`.
        device: "auto", "cpu" or "gpu".
        isotropic: also resample the thick axis with the through-plane network
            (:class:`~keras_seran.inference.throughplane.ThroughPlaneResolver`).
        target_spacing: the thick axis's new voxel size in mm (None: the finest in-plane one).
        adapt_steps: steps of self-supervised adaptation to the scan before (0: none).
        runtime: the runtime an export bundle's artifact runs in (:data:`RUNTIMES`); None:
            the first installed that the bundle holds (:mod:`keras_seran.runtime.bundle`).
        precision: the bundle artifact's precision (:data:`RUNTIME_PRECISIONS`); None: float32.
    """

    scale: int | None = setting(
        None,
        "upscaling factor",
        choices=SUPPORTED_SCALES,
        default_text=f"the model's; {DEFAULT_SCALE} with the bundled weights",
    )
    degradation: Literal["bicubic", "kspace"] = setting(
        "kspace",
        "which bundled weights to use: those trained on k-space truncation with noise "
        "(a scanner's lower-resolution acquisition: the default, since only they beat "
        "the console's zero-filling on acquired data, docs/acquisitions.md) or on "
        "bicubic downscaling (the paper's BI protocol); not with --model, which names "
        "its weights",
    )
    slice_axis: int | None = setting(
        None,
        "slice axis; the other two are upscaled",
        flag="--axis",
        choices=SLICE_AXES,
        default_text="the thick-slice axis, i.e. the one of distinct voxel size; the last if "
        "isotropic",
    )
    tile_size: int | None = setting(
        None,
        "cut slices into overlapping tiles of PX x PX LR pixels",
        metavar="PX",
        default_text="whole slices",
    )
    overlap: int = setting(16, "overlap of neighbouring tiles in LR pixels", metavar="PX")
    batch_size: int = setting(8, "slices (or tiles) per batch", metavar="N")
    max_memory_mb: float | None = setting(
        None,
        "memory budget in MB for the network and the tile blending (not the volume "
        "itself): picks the batch, or the smallest tile giving the fewest tiles (at least "
        "64 px)",
        flag="--max-memory",
        metavar="MB",
    )
    percentiles: tuple[float, float] = setting(
        DEFAULT_PERCENTILES,
        "robust intensity range of each volume (percentiles) mapped to [0, 1], as in training",
        metavar=("LOW", "HIGH"),
    )
    self_ensemble: bool = setting(
        False,
        "average the network over the 8 flips/rotations of "
        "each slice (8x slower, slightly better; 'SERAN+')",
    )
    data_consistency: float | None = setting(
        None,
        "k-space data consistency, for k-space-truncated (lower-resolution) acquisitions: "
        "the measured centre of each slice's spectrum replaces the network's (WEIGHT 1, "
        "the value when none is given) or is blended in (0 < WEIGHT < 1, for noisy data)",
        nargs="?",
        const=1.0,
        metavar="WEIGHT",
        default_text="off",
    )
    output_dtype: str = setting(
        "float32",
        "output voxel type: float32, 'input' (the input's integer type, rounded and "
        "clipped; float32 if the file stores scaled integers) or one of "
        f"{', '.join(d for d in NIFTI_DTYPES if d != 'float32')} (an integer type "
        "too small for the input's range, or too coarse for a non-integer input, is "
        "refused)",
    )
    device: Literal["auto", "cpu", "gpu"] = setting(
        "auto",
        "run on the CPU, the GPU, or whatever the Keras backend finds (auto; "
        "KERAS_BACKEND picks tensorflow, jax or torch)",
    )
    isotropic: bool = setting(
        False,
        "make a thick-slice stack (near-)isotropic with the bundled through-plane network "
        "(after in-plane SR when --scale or --model is given; alone otherwise)",
    )
    target_spacing: float | None = setting(
        None,
        "with --isotropic: voxel size along the thick axis, in mm",
        metavar="MM",
        default_text="the finest in-plane voxel size",
    )
    adapt_steps: int = setting(
        0,
        "with --isotropic: first fine-tune the through-plane network on the scan's own "
        "in-plane slices for N steps (SMORE-style self-supervision; about 0.1-0.3 s a step)",
        metavar="N",
    )
    runtime: str | None = setting(
        None,
        "with --model BUNDLE_DIR (an export bundle): run its artifact in litert, "
        "onnxruntime or tensorrt, without TensorFlow or Keras",
        choices=RUNTIMES,
        default_text="the first installed of tensorrt (fp16 engine), litert, onnxruntime "
        "(float32) that the bundle holds, a file of any size before a fixed-size "
        "one",
    )
    precision: str | None = setting(
        None,
        "with --model BUNDLE_DIR: which of the bundle's precisions to run (LiteRT: "
        "float32, float16, dynamic_int8, int8; ONNX: float32, float16, int8; TensorRT "
        "engines: fp16, int8)",
        choices=RUNTIME_PRECISIONS,
        default_text="float32 (fp16 for TensorRT)",
    )

    def __post_init__(self) -> None:
        if self.scale is not None:
            check_scale(self.scale)
        check_bool("isotropic", self.isotropic)
        check_number("target_spacing", self.target_spacing, 0.0, low_open=True, optional=True)
        check_int("adapt_steps", self.adapt_steps, 0)
        if not self.isotropic and (self.target_spacing is not None or self.adapt_steps):
            raise ValueError("target_spacing and adapt_steps go with isotropic (--isotropic)")
        check_choice("degradation", self.degradation, BUNDLED_DEGRADATIONS)
        if self.slice_axis is not None:
            check_choice("slice_axis", self.slice_axis, SLICE_AXES)
        check_int("tile_size", self.tile_size, 1, optional=True)
        check_int("overlap", self.overlap, 0)
        check_int("batch_size", self.batch_size, 1)
        if self.tile_size is not None and self.tile_size <= self.overlap:
            raise ValueError(
                f"tile_size {self.tile_size} must be larger than overlap {self.overlap}"
            )
        check_number("max_memory_mb", self.max_memory_mb, 0.0, low_open=True, optional=True)
        object.__setattr__(self, "percentiles", check_percentiles(self.percentiles))
        check_bool("self_ensemble", self.self_ensemble)
        if self.data_consistency is not None:
            check_data_consistency(self.data_consistency)
        check_choice("output_dtype", self.output_dtype, ("input", *NIFTI_DTYPES))
        check_choice("device", self.device, DEVICES)
        if self.runtime is not None:
            check_choice("runtime", self.runtime, RUNTIMES)
        if self.precision is not None:
            check_choice("precision", self.precision, RUNTIME_PRECISIONS)


#: export formats, in bundle order, and the other names they go by
EXPORT_FORMATS = ("savedmodel", "tflite", "onnx", "tensorrt")
EXPORT_FORMAT_ALIASES = {
    "litert": "tflite",
    "saved_model": "savedmodel",
    "tf_saved_model": "savedmodel",
    "trt": "tensorrt",
}
#: LiteRT precisions (:mod:`keras_seran.export.litert`) and ONNX ones (int8: QDQ)
LITERT_VARIANTS = ("float32", "float16", "dynamic_int8", "int8")
ONNX_VARIANTS = ("float32", "float16", "int8")
#: ONNX opsets: tf2onnx writes up to MAX_OPSET (``max(tf2onnx.constants.OPSET_TO_IR_VERSION)``;
#: a test keeps the two in step); the ONNX parser of TensorRT 8.x reads up to
#: TENSORRT8_MAX_OPSET (onnx-tensorrt's operator table: "TensorRT 8.6 supports operators up to
#: Opset 17"; JetPack 5 and 6.0 ship TensorRT 8.5 / 8.6).
MIN_OPSET, DEFAULT_OPSET, MAX_OPSET = 17, 17, 18
TENSORRT8_MAX_OPSET = 17
HW = tuple[int, int]
TrtProfile = tuple[HW, HW, HW]
#: Default TensorRT optimization profile, LR (H, W): min, opt, max (x2 of 256 x 256 slices is
#: opt). ``export/tensorrt_engine.py`` restates it (that module loads without the package); a
#: test keeps the two equal.
DEFAULT_TRT_PROFILES: tuple[TrtProfile, ...] = (((16, 16), (128, 128), (256, 256)),)


def parse_formats(formats: str | Iterable[str]) -> tuple[str, ...]:
    """``"savedmodel,litert"`` or a list -> canonical format names in bundle order; UsageError
    naming an unknown format and the valid ones."""
    try:
        return check_choices("formats", formats, EXPORT_FORMATS, EXPORT_FORMAT_ALIASES)
    except ValueError as exc:
        raise UsageError(f"{exc} (litert = tflite)") from None


def check_opset(opset: Any) -> int:
    """``opset`` if tf2onnx can write it and TensorRT can read it, else ValueError."""
    if not _is_int(opset) or not MIN_OPSET <= opset <= MAX_OPSET:
        raise ValueError(
            f"opset must be between {MIN_OPSET} and {MAX_OPSET} (the newest tf2onnx "
            f"writes), got {opset}"
        )
    return int(opset)


def needs_calibration(
    formats: Iterable[str], tflite_variants: Iterable[str], onnx_variants: Iterable[str]
) -> bool:
    """Whether any requested model is full int8 (LiteRT int8, ONNX QDQ), i.e. needs calibration."""
    fmts = set(formats)
    return ("tflite" in fmts and "int8" in set(tflite_variants)) or (
        bool(fmts & {"onnx", "tensorrt"}) and "int8" in set(onnx_variants)
    )


def _hw(name: str, value: Any) -> HW:
    pair = tuple(value) if isinstance(value, (list, tuple)) else ()
    if len(pair) != 2 or not all(_is_int(v) and v >= 1 for v in pair):
        raise ValueError(f"{name} must be two integers >= 1 (H, W), got {value!r}")
    return int(pair[0]), int(pair[1])


@dataclass(frozen=True)
class ExportConfig:
    """What ``keras-seran export`` writes (:func:`keras_seran.export.export_bundle`).

    Attributes:
        formats: of :data:`EXPORT_FORMATS` (a comma-separated string is accepted; aliases such
            as "litert" mapped), kept in bundle order.
        input_size: fixed (H, W) LR input of the LiteRT models (None: dynamic); also the
            default TensorRT profile.
        int8_io: full-int8 LiteRT model with int8 input/output (needs tflite and its int8).
        tflite_variants, onnx_variants: precisions, of :data:`LITERT_VARIANTS` /
            :data:`ONNX_VARIANTS`.
        opset: ONNX opset, MIN_OPSET..MAX_OPSET.
        trt_profiles: TensorRT optimization profiles ((min, opt, max) LR (H, W) each; checked by
            ``tensorrt_engine.check_profiles``); None: one of ``input_size``, else
            :data:`DEFAULT_TRT_PROFILES`.
        calibration: volume or slice whose slices calibrate the int8 models (None: the bundled
            real T1 slab); only when an int8 model is requested.
        calibration_axis: its slice axis.
        scale: the SR factor the model must have (None: any).
        threads: CPU threads of the parity runs.
        strict: fail when a format misses its parity tolerance.
    """

    formats: tuple[str, ...] = setting(
        EXPORT_FORMATS, f"comma-separated: {', '.join(EXPORT_FORMATS)} (litert = tflite)"
    )
    input_size: tuple[int, int] | None = setting(
        None,
        "fixed LR input size of the LiteRT models; also the default TensorRT profile "
        "(min = opt = max); the manifest's fixed_size lists the fixed-size files",
        metavar="HxW",
        type=str,
        default_text="dynamic H, W",
    )
    int8_io: bool = setting(
        False,
        "full-int8 LiteRT model with int8 input/output (default "
        "float32; the manifest gives the int8 scale and zero point)",
    )
    tflite_variants: tuple[str, ...] = setting(
        LITERT_VARIANTS,
        "comma-separated LiteRT precisions: float32; float16 (fp16 weights); "
        "dynamic_int8 (int8 weights, float activations); int8 (full integer, "
        "calibrated on real MR slices)",
    )
    onnx_variants: tuple[str, ...] = setting(
        ONNX_VARIANTS,
        "comma-separated ONNX precisions: float32; float16 (fp16 inside, float32 "
        "interface: what TensorRT 11 builds fp16 engines from); int8 (QDQ, "
        "calibrated)",
    )
    opset: int = setting(
        DEFAULT_OPSET,
        f"ONNX opset, {MIN_OPSET} to {MAX_OPSET} (TensorRT 8.x, "
        f"JetPack 5/6.0, reads up to {TENSORRT8_MAX_OPSET})",
        metavar="N",
    )
    trt_profiles: tuple[tuple[tuple[int, int], ...], ...] | None = setting(
        None,
        "TensorRT optimization profile of LR sizes, e.g. 64x64:128x128:256x256 (repeatable)",
        flag="--trt-profile",
        action="append",
        type=str,
        metavar="MIN:OPT:MAX",
        default_text="HxW:HxW:HxW of --input-size, else "
        + " ".join(":".join(f"{h}x{w}" for h, w in p) for p in DEFAULT_TRT_PROFILES),
    )
    calibration: str | Path | None = setting(
        None,
        "MR volume (.nii/.nii.gz, DICOM folder) or 2D slice (PNG, .npy) whose slices "
        "calibrate int8",
        type=Path,
        metavar="NIFTI",
        default_text="the bundled real T1 slab",
    )
    calibration_axis: int = setting(2, "slice axis of --calibration", metavar="AXIS")
    scale: int | None = setting(
        None, "expected SR factor: an error unless the model's (inferred from it)", metavar="S"
    )
    threads: int = setting(2, "CPU threads for the parity runs", metavar="N")
    strict: bool = setting(
        False, "fail (exit 1, no bundle) when a format misses its parity tolerance"
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "formats", parse_formats(self.formats))
        for name, allowed in (
            ("tflite_variants", LITERT_VARIANTS),
            ("onnx_variants", ONNX_VARIANTS),
        ):
            object.__setattr__(self, name, check_choices(name, getattr(self, name), allowed))
        check_opset(self.opset)
        if self.input_size is not None:
            object.__setattr__(self, "input_size", _hw("input_size", self.input_size))
        if self.trt_profiles is not None:
            profiles = self.trt_profiles if isinstance(self.trt_profiles, (list, tuple)) else ()
            if not profiles or not all(
                isinstance(p, (list, tuple)) and len(p) == 3 for p in profiles
            ):
                raise ValueError(
                    f"trt_profiles must be (min, opt, max) (H, W) sizes, got {self.trt_profiles!r}"
                )
            object.__setattr__(
                self,
                "trt_profiles",
                tuple(tuple(_hw("trt_profiles", hw) for hw in p) for p in profiles),
            )
        check_int("calibration_axis", self.calibration_axis, 0)
        check_int("scale", self.scale, 1, optional=True)
        check_int("threads", self.threads, 1)
        check_bool("int8_io", self.int8_io)
        check_bool("strict", self.strict)
        if self.int8_io and not ("tflite" in self.formats and "int8" in self.tflite_variants):
            raise ValueError(
                "int8_io applies to the full-int8 LiteRT model: it needs tflite in "
                "formats and int8 in tflite_variants"
            )
        if self.calibration is not None and not self.needs_calibration:
            raise ValueError(
                "calibration calibrates the int8 models and none is requested: add "
                "int8 to tflite_variants (with tflite) or onnx_variants (with onnx "
                "or tensorrt)"
            )

    @property
    def needs_calibration(self) -> bool:
        return needs_calibration(self.formats, self.tflite_variants, self.onnx_variants)


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a (nested) config dataclass."""
    return dataclasses.asdict(cfg)


def seran_config_from_dict(d: dict[str, Any]) -> SERANConfig:
    d = dict(d)
    sera = d.pop("sera", {}) or {}
    return SERANConfig(sera=SERAConfig(**sera), **d)


def save_json(cfg: Any, path: str | Path) -> None:
    Path(path).write_text(json.dumps(to_dict(cfg), indent=2) + "\n")


# --------------------------------------------------------------------------------------------
# command-line flags derived from the configs


def _flag(f: dataclasses.Field) -> str:
    return f.metadata.get("flag", "--" + f.name.replace("_", "-"))


def _dest(f: dataclasses.Field) -> str:
    return _flag(f).lstrip("-").replace("-", "_")


def _flagged(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if "help" in f.metadata]


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        sep = "," if all(isinstance(v, str) for v in value) else " "
        return sep.join(map(_show, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def _argparse_kwargs(hint: Any, spec: dict[str, Any]) -> dict[str, Any]:
    """argparse keywords for a field of type ``hint`` (``spec``, the field's own, win)."""
    kw = dict(spec)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = members[0] if len(members) == 1 else None
    if "choices" not in kw and typing.get_origin(hint) is Literal:
        kw["choices"] = typing.get_args(hint)
    if "type" in kw or kw.get("action") is not None:
        return kw
    if "choices" in kw:
        kw["type"] = type(kw["choices"][0])
    elif hint is bool:
        kw["action"] = "store_true"
    elif typing.get_origin(hint) is tuple:
        members = typing.get_args(hint)
        if members[-1] is Ellipsis:  # a selection: comma-separated
            kw["type"] = lambda text: tuple(v.strip() for v in text.split(","))
            kw.setdefault("metavar", "A,B,...")
        else:
            kw.setdefault("nargs", len(members))
            kw["type"] = members[0]
    elif hint in (int, float, str):
        kw["type"] = hint
    return kw


def add_config_arguments(
    parser: Any,
    cls: type,
    names: Iterable[str] | None = None,
    *,
    defaults: bool = False,
    overrides: dict[str, dict[str, Any]] | None = None,
) -> None:
    """Add a flag to ``parser`` (or an argument group) for each field of the config dataclass
    ``cls`` declared with :func:`setting` (or those in ``names``, in that order).

    The flag's type and choices follow the field's annotation (``int | None`` -> int, a
    ``Literal`` -> its values, ``bool`` -> a switch, ``tuple[float, float]`` -> two numbers,
    ``tuple[str, ...]`` -> a comma-separated list) unless the field's metadata says otherwise;
    its help is the field's with the field's default appended. The parsed default is None (a flag
    not given can be told apart from one given, e.g. for a resumed run), or with ``defaults`` the
    field's default. ``overrides``: per field, metadata that replaces the field's (e.g. another
    help text or fewer choices for one command).
    """
    fields = {f.name: f for f in _flagged(cls)}
    hints = typing.get_type_hints(cls)
    for name in fields if names is None else names:
        f = fields[name]
        spec = {**f.metadata, **(overrides or {}).get(name, {})}
        flag = spec.pop("flag", "--" + name.replace("_", "-"))
        text = spec.pop("help")
        shown = spec.pop(
            "default_text", None if f.default is None or f.default is False else _show(f.default)
        )
        if shown:
            text = f"{text} (default: {shown})"
        parser.add_argument(
            flag,
            default=f.default if defaults else None,
            help=text.replace("%", "%%"),
            **_argparse_kwargs(hints[name], spec),
        )


def flag_values(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """{field: value} of the flags of ``cls`` given on the command line (not None in ``args``)."""
    out = {}
    for f in _flagged(cls):
        value = getattr(args, _dest(f), None)
        if value is not None:
            out[f.name] = tuple(value) if isinstance(value, list) else value
    return out


def with_flag_names(message: str, cls: type, names: Iterable[str]) -> str:
    """``message`` with the given field names of ``cls`` written as their flags
    ("overlap must be ..." -> "--overlap must be ...")."""
    flags = {f.name: _flag(f) for f in _flagged(cls) if f.name in set(names)}
    if not flags:
        return message
    pattern = (
        r"(?<![-\w])(" + "|".join(map(re.escape, sorted(flags, key=len, reverse=True))) + r")\b"
    )
    return re.sub(pattern, lambda m: flags[m.group(1)], message)


def config_from_args(cls: type, args: argparse.Namespace, **values: Any) -> Any:
    """``cls`` from its defaults, then ``values`` (e.g. flags parsed by the command itself), then
    the flags given in ``args``; a bad value is a UsageError naming the flag."""
    given = flag_values(cls, args)
    given = {k: v for k, v in given.items() if k not in values}
    try:
        return cls(**{**values, **given})
    except (TypeError, ValueError) as exc:
        raise UsageError(with_flag_names(str(exc), cls, [*given, *values])) from None
