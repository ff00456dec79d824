"""Evaluation as the paper reports it: PSNR/SSIM tables of SERAN, baselines and bicubic."""

from keras_seran.evaluation.protocol import (Scores, benchmark_pairs, benchmark_slices,
                                             bicubic_predictor, keras_predictor, score_pairs)
from keras_seran.evaluation.table import Row, to_csv, to_markdown

__all__ = ["Scores", "Row", "score_pairs", "keras_predictor", "bicubic_predictor",
           "benchmark_pairs", "benchmark_slices", "to_markdown", "to_csv"]
