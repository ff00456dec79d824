"""Typed configurations: the single source of truth for every default in the package.

Every component (model builder, data pipeline, trainer, command line) reads its defaults from
these dataclasses; nothing else in the package hard-codes a size, a learning rate or a patch size.
The values follow Zhang et al., CVPR 2021 (SERAN) where the paper fixes them; the places where the
paper's text is silent are *decisions* of ours, documented in ``README.md`` ("Faithfulness").
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from keras_seran.contract import DEFAULT_PERCENTILES

SUPPORTED_SCALES = (2, 3, 4)
#: deterministic degradations: an HR image has one LR (evaluation, ``degrade``)
DEGRADATIONS = ("bicubic", "blur", "kspace")
#: what training may draw from: the deterministic ones, and "blind", a per-sample mix of them
TRAINING_DEGRADATIONS = (*DEGRADATIONS, "blind")
#: the kinds a "blind" sample is drawn from, in the order of ``AcquisitionConfig.blind_mix``
BLIND_KINDS = ("kspace", "bicubic", "blur")
#: networks ``keras-seran train`` can train (bicubic has no weights); rir = SERAN w/o SERA
TRAINABLE_ARCHS = ("seran", "edsr", "rcan", "rir", "srcnn")
MIXED_PRECISION_KINDS = ("float16", "bfloat16")   # compute types of mixed-precision training
#: contrasts ``DataConfig.contrast`` can select (any case): those IXI and BIDS file names carry
CONTRASTS = ("T1", "T2", "PD", "MRA", "DTI")
ReasoningKind = Literal["glore", "rs_gcn"]
REASONING_KINDS = ("glore", "rs_gcn")


def check_scale(scale: Any) -> int:
    """``scale`` if it is one of the integer SUPPORTED_SCALES (2.0 is not), else ValueError."""
    if not _is_int(scale) or scale not in SUPPORTED_SCALES:
        raise ValueError(f"scale must be an integer, one of {SUPPORTED_SCALES}; got {scale!r}")
    return scale


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


def check_number(name: str, value: Any, low: float = -math.inf, high: float = math.inf,
                 low_open: bool = False, high_open: bool = False, optional: bool = False) -> None:
    """ValueError unless ``value`` is a finite number (not a bool, not NaN or infinity: no setting
    of the package means anything there) in the interval low..high, open ends as asked."""
    if optional and value is None:
        return
    ok = _is_number(value) and math.isfinite(value) and (
        value > low if low_open else value >= low) and (value < high if high_open else value <= high)
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
        if self.reasoning not in REASONING_KINDS:
            raise ValueError(f"reasoning must be one of {REASONING_KINDS}, got {self.reasoning!r}")
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

    scale: int = 2
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
            raise ValueError(f"sera must be a SERAConfig (or, in preset_config / seran(), a dict "
                             f"of its fields), got {type(self.sera).__name__} {self.sera!r}")
        check_number("res_scale", self.res_scale, 0.0, low_open=True)

    def replace(self, **changes: Any) -> "SERANConfig":
        return dataclasses.replace(self, **changes)


# Paper: RCAN-sized trunk (C=64, G=10, B=20), one SERA per group, m=64, n=32.
# Small: trains on a CPU in minutes to hours; the size of the bundled pretrained weights.
PRESETS: dict[str, SERANConfig] = {
    "paper": SERANConfig(channels=64, num_groups=10, blocks_per_group=20,
                         sera=SERAConfig(feature_dim=64, num_descriptors=32)),
    "small": SERANConfig(channels=32, num_groups=3, blocks_per_group=4,
                         sera=SERAConfig(feature_dim=32, num_descriptors=16)),
    "tiny": SERANConfig(channels=16, num_groups=1, blocks_per_group=2,
                        sera=SERAConfig(feature_dim=16, num_descriptors=8)),
}


def preset_config(preset: str = "paper", scale: int = 2, **overrides: Any) -> SERANConfig:
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
        if len(noise) != 2 or not all(map(_is_number, noise)) or \
                not 0.0 <= noise[0] <= noise[1] <= 1.0:
            raise ValueError(f"noise must be two numbers 0 <= low <= high <= 1, got {self.noise!r}")
        mix = tuple(self.blind_mix) if isinstance(self.blind_mix, (list, tuple)) else ()
        if len(mix) != len(BLIND_KINDS) or not all(_is_number(m) and m >= 0 for m in mix) \
                or not sum(mix) > 0:
            raise ValueError(f"blind_mix must be {len(BLIND_KINDS)} weights >= 0 (of "
                             f"{BLIND_KINDS}) with a positive sum, got {self.blind_mix!r}")
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

    patch_size: int = 48
    batch_size: int = 16
    degradation: Literal["bicubic", "blur", "kspace", "blind"] = "bicubic"
    noise_sigma: float = 0.0
    acquisition: AcquisitionConfig | None = None
    slice_axis: int | None = 2
    min_foreground: float = 0.1
    foreground_threshold: float = 0.05
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES
    val_fraction: float = 0.1
    val_gap: int = 8
    augment: bool = True
    contrast_augment: float = 0.0
    contrast_knots: int = 6
    contrast: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("patch_size", self.patch_size, 4)
        check_int("batch_size", self.batch_size, 1)
        if self.degradation not in TRAINING_DEGRADATIONS:
            raise ValueError(f"degradation must be one of {TRAINING_DEGRADATIONS}, got "
                             f"{self.degradation!r}")
        check_number("noise_sigma", self.noise_sigma, 0.0, 1.0)
        if isinstance(self.acquisition, dict):      # read back from JSON
            object.__setattr__(self, "acquisition", AcquisitionConfig(**self.acquisition))
        if self.acquisition is not None:
            if not isinstance(self.acquisition, AcquisitionConfig):
                raise ValueError(f"acquisition must be an AcquisitionConfig or null, got "
                                 f"{self.acquisition!r}")
            if self.degradation not in ("kspace", "blind"):
                raise ValueError("acquisition effects (k-space filter, partial Fourier) need the "
                                 f"'kspace' or 'blind' degradation, not {self.degradation!r}")
            if self.noise_sigma:
                raise ValueError("with acquisition effects the noise is drawn per sample from "
                                 "acquisition.noise; leave noise_sigma at 0")
        if self.slice_axis is not None and not (_is_int(self.slice_axis)
                                                and self.slice_axis in (0, 1, 2)):
            raise ValueError(f"slice_axis must be the integer 0, 1 or 2, or null (all three), "
                             f"got {self.slice_axis!r}")
        check_number("min_foreground", self.min_foreground, 0.0, 1.0)
        check_number("foreground_threshold", self.foreground_threshold, 0.0, 1.0)
        lo_hi = tuple(self.percentiles) if isinstance(self.percentiles, (list, tuple)) else ()
        if len(lo_hi) != 2 or not all(map(_is_number, lo_hi)) or not 0 <= lo_hi[0] < lo_hi[1] <= 100:
            raise ValueError(f"percentiles must be two numbers 0 <= low < high <= 100, got "
                             f"{self.percentiles!r}")
        # a tuple, as declared: a config read back from JSON (a list) equals the original
        object.__setattr__(self, "percentiles", lo_hi)
        check_number("val_fraction", self.val_fraction, 0.0, 1.0, high_open=True)
        check_int("val_gap", self.val_gap, 0)
        check_bool("augment", self.augment)
        check_contrast_args(self.contrast_augment, self.contrast_knots)
        if self.contrast is not None and not (isinstance(self.contrast, str)
                                              and self.contrast.upper() in CONTRASTS):
            raise ValueError(f"contrast must be one of {CONTRASTS} (any case) or null, got "
                             f"{self.contrast!r}")
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
        raise ValueError(f"{name} must be two numbers {low:g} <= low <= high <= {high:g}, got "
                         f"{value!r}")
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
            raise ValueError(f"profiles must be a non-empty selection of {SLICE_PROFILES}, got "
                             f"{self.profiles!r}")
        object.__setattr__(self, "profiles", profiles)
        check_number("gap_prob", self.gap_prob, 0.0, 1.0)
        check_number("noise_prob", self.noise_prob, 0.0, 1.0)
        if self.slice_axis is not None and not (_is_int(self.slice_axis)
                                                and self.slice_axis in (0, 1, 2)):
            raise ValueError(f"slice_axis must be 0, 1, 2 or null, got {self.slice_axis!r}")
        check_int("seed", self.seed, 0)
        if 2 * self.ratio[1] * (1 + self.gap[1]) > self.patch_size:
            raise ValueError(f"a patch of {self.patch_size} rows holds fewer than two slices of "
                             f"thickness {self.ratio[1]:g} (+ gap); use a larger patch_size")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (paper: L1, Adam(0.9, 0.999, 1e-8), lr 1e-4 halved every 200 epochs).

    ``mixed_precision``: False (float32), "float16", "bfloat16", or True for the device's fast
    kind (float16 on a GPU, bfloat16 on a CPU, where oneDNN runs bfloat16 convolutions on AMX /
    AVX512-BF16 units). Variables stay float32 and the reconstruction conv computes in float32.
    """

    epochs: int = 1000
    steps_per_epoch: int = 1000
    learning_rate: float = 1e-4
    lr_decay_epochs: int = 200
    lr_decay_factor: float = 0.5
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-8
    clipnorm: float | None = None
    mixed_precision: bool | Literal["float16", "bfloat16"] = False
    distribute: bool = False
    early_stop_patience: int | None = None
    checkpoint_every_epochs: int = 1

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
        check_bool("distribute", self.distribute)
        check_int("early_stop_patience", self.early_stop_patience, 0, optional=True)
        check_int("checkpoint_every_epochs", self.checkpoint_every_epochs, 1)
        mixed = self.mixed_precision   # True / False, or a kind: not 1, 0.0 or "yes"
        if not (isinstance(mixed, bool) or (isinstance(mixed, str) and mixed in MIXED_PRECISION_KINDS)):
            raise ValueError("mixed_precision must be true, false, 'float16' or 'bfloat16', "
                             f"got {self.mixed_precision!r}")


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a (nested) config dataclass."""
    return dataclasses.asdict(cfg)


def seran_config_from_dict(d: dict[str, Any]) -> SERANConfig:
    d = dict(d)
    sera = d.pop("sera", {}) or {}
    return SERANConfig(sera=SERAConfig(**sera), **d)


def save_json(cfg: Any, path: str | Path) -> None:
    Path(path).write_text(json.dumps(to_dict(cfg), indent=2) + "\n")
