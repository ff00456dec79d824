"""Evaluation as the paper reports it: PSNR/SSIM tables of SERAN, baselines and bicubic.

Names load on first use, so importing the subpackage (as ``keras-seran evaluate --help`` does
for its command module) loads no Keras.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "Scores": "keras_seran.evaluation.protocol",
    "benchmark_pairs": "keras_seran.evaluation.protocol",
    "benchmark_slices": "keras_seran.evaluation.protocol",
    "bicubic_predictor": "keras_seran.evaluation.protocol",
    "keras_predictor": "keras_seran.evaluation.protocol",
    "score_pairs": "keras_seran.evaluation.protocol",
    "Row": "keras_seran.evaluation.table",
    "to_csv": "keras_seran.evaluation.table",
    "to_markdown": "keras_seran.evaluation.table",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'keras_seran.evaluation' has no attribute {name!r}")


__all__ = ["Scores", "Row", "score_pairs", "keras_predictor", "bicubic_predictor",
           "benchmark_pairs", "benchmark_slices", "to_markdown", "to_csv"]
