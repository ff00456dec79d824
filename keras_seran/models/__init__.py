"""Network builders: SERAN and the baselines it is compared with, plus model analysis helpers."""

from keras_seran.config import DEFAULT_PRESET, DEFAULT_SCALE
from keras_seran.models.analysis import (
    AttentionUse,
    attention_model,
    attention_use,
    count_flops,
    effective_support,
    sera_ablation,
)
from keras_seran.models.baselines import bicubic, edsr, matched_edsr_blocks, rcan, rir, srcnn
from keras_seran.models.seran import seran, seran_param_count

BUILDERS = {
    "seran": seran,
    "edsr": edsr,
    "rcan": rcan,
    "rir": rir,
    "srcnn": srcnn,
    "bicubic": bicubic,
}


def build(arch: str, scale: int = DEFAULT_SCALE, preset: str = DEFAULT_PRESET):
    """Build any network here by name ("seran", "edsr", "rcan", "rir", "srcnn", "bicubic")."""
    if arch not in BUILDERS:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {sorted(BUILDERS)}")
    if arch in ("srcnn", "bicubic"):
        return BUILDERS[arch](scale)
    return BUILDERS[arch](scale, preset)


__all__ = [
    "seran",
    "seran_param_count",
    "edsr",
    "rcan",
    "rir",
    "srcnn",
    "bicubic",
    "build",
    "matched_edsr_blocks",
    "count_flops",
    "attention_model",
    "attention_use",
    "effective_support",
    "sera_ablation",
    "AttentionUse",
    "BUILDERS",
]
