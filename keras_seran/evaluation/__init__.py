"""Evaluation as the paper reports it: PSNR/SSIM tables of SERAN, baselines and bicubic.

Names load on first use, so importing the subpackage (as ``keras-seran evaluate --help`` does
for its command module) loads no Keras.
"""

from __future__ import annotations

import importlib

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


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)


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
