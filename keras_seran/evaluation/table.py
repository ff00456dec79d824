"""Comparison tables in the paper's layout: one row per method, PSNR/SSIM per (set, scale)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from keras_seran.evaluation.protocol import Scores


@dataclass(frozen=True)
class Row:
    method: str
    dataset: str
    scale: int
    scores: Scores


def to_markdown(rows: list[Row]) -> str:
    """Methods down, ``set xS`` across, cells ``PSNR / SSIM`` (slice means)."""
    cols = sorted({(r.dataset, r.scale) for r in rows}, key=lambda c: (c[1], c[0]))
    methods = list(dict.fromkeys(r.method for r in rows))
    cell = {(r.method, r.dataset, r.scale): r.scores for r in rows}
    head = "| method | " + " | ".join(f"{d} x{s}" for d, s in cols) + " |"
    lines = [head, "|" + "---|" * (len(cols) + 1)]
    for m in methods:
        vals = []
        for d, s in cols:
            sc = cell.get((m, d, s))
            vals.append("-" if sc is None else f"{sc.mean_psnr:.2f} / {sc.mean_ssim:.4f}")
        lines.append(f"| {m} | " + " | ".join(vals) + " |")
    return "\n".join(lines) + "\n"


def to_comparison(rows: list[Row], baseline: str) -> str:
    """Each method against ``baseline`` on the same slices, per (set, scale): mean PSNR
    difference in dB and the slices where the method is better, ``+1.25 dB (16/16)``. Empty
    when ``baseline`` is not among the rows."""
    cols = sorted({(r.dataset, r.scale) for r in rows}, key=lambda c: (c[1], c[0]))
    cell = {(r.method, r.dataset, r.scale): r.scores for r in rows}
    methods = [m for m in dict.fromkeys(r.method for r in rows) if m != baseline]
    if not methods or not any(r.method == baseline for r in rows):
        return ""
    lines = [
        f"PSNR vs {baseline}, slice by slice (mean difference, slices better / all):",
        "",
        "| method | " + " | ".join(f"{d} x{s}" for d, s in cols) + " |",
        "|" + "---|" * (len(cols) + 1),
    ]
    for m in methods:
        vals = []
        for d, s in cols:
            sc, base = cell.get((m, d, s)), cell.get((baseline, d, s))
            if sc is None or base is None:
                vals.append("-")
                continue
            diff = [a - b for a, b in zip(sc.psnr, base.psnr)]
            better = sum(x > 0 for x in diff)
            vals.append(f"{sum(diff) / len(diff):+.2f} dB ({better}/{len(diff)})")
        lines.append(f"| {m} | " + " | ".join(vals) + " |")
    return "\n".join(lines) + "\n"


def to_csv(rows: list[Row]) -> str:
    """One line per (method, set, scale): means, volume PSNR and every slice's PSNR (for paired
    comparisons between methods on the same slices)."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(
        [
            "method",
            "dataset",
            "scale",
            "slices",
            "psnr_mean",
            "ssim_mean",
            "volume_psnr",
            "psnr_per_slice",
        ]
    )
    for r in rows:
        w.writerow(
            [
                r.method,
                r.dataset,
                r.scale,
                len(r.scores.psnr),
                f"{r.scores.mean_psnr:.4f}",
                f"{r.scores.mean_ssim:.5f}",
                f"{r.scores.volume_psnr:.4f}",
                " ".join(f"{p:.4f}" for p in r.scores.psnr),
            ]
        )
    return buf.getvalue()
