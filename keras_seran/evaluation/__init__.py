"""Evaluation as the paper reports it: PSNR/SSIM tables of SERAN, baselines and bicubic.

Names load on first use, so importing the subpackage (as ``keras-seran evaluate --help`` does
for its command module) loads no Keras.
"""

from __future__ import annotations

from keras_seran._lazy import lazy_names

_PROTOCOL = (
    "Scores",
    "benchmark_pairs",
    "benchmark_slices",
    "bicubic_predictor",
    "keras_predictor",
    "score_pairs",
)
_LAZY = {
    **dict.fromkeys(_PROTOCOL, "keras_seran.evaluation.protocol"),
    **dict.fromkeys(("Row", "to_csv", "to_markdown"), "keras_seran.evaluation.table"),
}


__getattr__, __dir__ = lazy_names(__name__, _LAZY)


__all__ = [
    "Scores",
    "Row",
    "score_pairs",
    "keras_predictor",
    "bicubic_predictor",
    "benchmark_pairs",
    "benchmark_slices",
    "to_markdown",
    "to_csv",
]
