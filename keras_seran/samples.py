"""Paths of the small real MR images bundled with the package (see ``sample/ATTRIBUTION.md``)."""

from __future__ import annotations

from pathlib import Path

SAMPLE_DIR = Path(__file__).resolve().parent / "sample"

T1_AXIAL_SLAB = SAMPLE_DIR / "t1_head_axial_slab.nii.gz"  # 256x16x256 uint8, 1 mm, real T1
T1_LOWRES = SAMPLE_DIR / "t1_lowres_2x2x3mm.nii.gz"  # 128x128x62 int16, 2x2x3 mm, real T1
BRAINWEB_T1 = SAMPLE_DIR / "brainweb_t1_slice.png"  # 181x217, simulated T1
BRAINWEB_PD = SAMPLE_DIR / "brainweb_pd_slice.png"  # 181x217, simulated PD


def sample_path(name: str) -> Path:
    """Path of a bundled sample file by file name; raises FileNotFoundError listing what exists."""
    p = SAMPLE_DIR / name
    if not p.exists():
        have = sorted(x.name for x in SAMPLE_DIR.iterdir() if x.name != "ATTRIBUTION.md")
        raise FileNotFoundError(f"{p}: no such bundled sample; available: {have}")
    return p
