"""The evaluation protocol of the MR SR literature, and the benchmark sets bundled with us.

Protocol: images normalised to [0, 1] per volume (robust percentiles), LR made by the stated
degradation of the HR slice (cropped to a multiple of the scale), PSNR and SSIM on the grey
image with data range 1 and a border of ``scale`` pixels cropped. Scores are reported per slice
and averaged ("slice mean"), and over every pixel of a volume at once ("volume PSNR").

Benchmark sets (all real or simulated MR, none used to train the bundled weights):
- ``t1-heldout``: the bundled real T1 slab (16 axial slices, held out of training);
- ``brainweb-t1`` / ``brainweb-pd``: BrainWeb simulated T1 and proton-density slices (another
  "scanner" and, for PD, another contrast);
- ``itk-t1``: in-plane slices of a real T1 from another scanner (2x2 mm in-plane, treated as HR).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from keras_seran.metrics import min_lr_side, psnr, ssim

Predictor = Callable[[np.ndarray], np.ndarray]  # (h, w) LR in [0,1] -> (h*s, w*s)


def min_scored_size(scale: int) -> int:
    """Smallest HR slice side that can be scored at ``scale``: ``scale`` times the smallest LR
    side (:func:`keras_seran.metrics.min_lr_side`; HR is cropped to a multiple of the scale,
    x2: 16)."""
    return int(scale) * min_lr_side(scale)


@dataclass
class Scores:
    """Per-slice PSNR/SSIM of one method on one set, with their means and the volume PSNR."""

    psnr: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)
    squared_error: float = 0.0
    pixels: int = 0

    @property
    def mean_psnr(self) -> float:
        return float(np.mean(self.psnr))

    @property
    def mean_ssim(self) -> float:
        return float(np.mean(self.ssim))

    @property
    def volume_psnr(self) -> float:
        return float(10 * np.log10(1.0 / (self.squared_error / self.pixels)))


def score_pairs(predict: Predictor, lr_list, hr_list, scale: int) -> Scores:
    """Run ``predict`` on every LR slice and score against HR (border = scale, range 1)."""
    out = Scores()
    for lr, hr in zip(lr_list, hr_list):
        sr = np.asarray(predict(lr), dtype=np.float64).reshape(hr.shape)
        sr = np.clip(sr, 0.0, 1.0)
        out.psnr.append(psnr(sr, hr, 1.0, border=scale))
        out.ssim.append(ssim(sr, hr, 1.0, border=scale))
        diff = (sr - hr)[scale:-scale, scale:-scale]
        out.squared_error += float(np.sum(diff**2))
        out.pixels += diff.size
    return out


def keras_predictor(model, self_ensemble: bool = False) -> Predictor:
    """Slice predictor for a Keras SR model taking (1, h, w, 1); optionally its x8
    self-ensemble (:mod:`keras_seran.inference.ensemble`)."""
    from keras_seran.inference.ensemble import ensembled
    from keras_seran.inference.runner import batch_runner

    run = ensembled(batch_runner(model), self_ensemble)
    return lambda lr: run(np.asarray(lr, np.float32)[None])[0]


#: Method name of zero-filling interpolation, what an MR console shows for a smaller k-space matrix.
ZERO_FILLING = "zero-filling"


def zero_filling_predictor(scale: int) -> Predictor:
    """Zero-filling (:func:`~keras_seran.data.degrade.kspace_upscale`): the physical baseline of
    k-space-truncated LR."""
    from keras_seran.data.degrade import kspace_upscale

    return lambda lr: kspace_upscale(lr, scale)


def bicubic_predictor(scale: int) -> Predictor:
    from keras_seran.data.degrade import bicubic_upscale

    return lambda lr: bicubic_upscale(lr, scale)


def benchmark_slices() -> dict[str, list[np.ndarray]]:
    """The bundled benchmark sets as lists of normalised 2D HR slices in [0, 1]."""
    from keras_seran import samples
    from keras_seran.data.io import load_slice, load_volume
    from keras_seran.data.normalize import normalize
    from keras_seran.data.slices import extract_slices

    slab, _ = normalize(load_volume(samples.T1_AXIAL_SLAB).data)
    itk, _ = normalize(load_volume(samples.T1_LOWRES).data)
    itk_slices, _ = extract_slices(itk, axis=2, min_foreground=0.3)
    sets = {
        "t1-heldout": list(np.moveaxis(slab, 1, 0)),
        "brainweb-t1": [normalize(load_slice(samples.BRAINWEB_T1))[0]],
        "brainweb-pd": [normalize(load_slice(samples.BRAINWEB_PD))[0]],
        "itk-t1": list(itk_slices[:: max(1, len(itk_slices) // 8)]),
    }
    return sets


def benchmark_pairs(scale: int, degradation: str = "bicubic") -> dict[str, tuple[list, list]]:
    """(lr_list, hr_list) per bundled benchmark set at ``scale``."""
    from keras_seran.data.degrade import lr_hr_pairs

    return {name: lr_hr_pairs(sl, scale, degradation) for name, sl in benchmark_slices().items()}
