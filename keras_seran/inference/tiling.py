"""Tiled inference: cut LR slices into overlapping tiles, super-resolve, blend back (numpy only).

Tiles are square-ish windows of ``tile_size`` LR pixels that overlap their neighbours by
``overlap`` pixels; the last tile of a row/column is aligned with the image edge, so every tile
has the same size (one batch shape for the network) and no padding is needed. Each tile's output
is weighted by a separable window: on a side shared with a neighbour, the outer quarter of the
overlap is context only (weight 0: the network saw those pixels with too little surrounding) and
a cosine ramp crosses the middle half; sides on the image border keep weight 1. The weighted sum
is divided by the sum of the weights; with the regular stride the two ramps of an overlap are
complementary (they sum to exactly 1).

How close this is to whole-slice inference depends on the network:
    * convolution-only networks (EDSR, SRCNN, bicubic): only the receptive field matters; with a
      context margin (``overlap // 4``) wider than the receptive field the result is the same to
      float32 round-off (``CONV_TOLERANCE``);
    * SERAN: every SERA module pools *globally* (a softmax over all positions of the tile), so a
      tile sees slightly different descriptors than the whole slice and the results cannot be
      equal; they differ by up to the attention's share of the output. ``TILED_TOLERANCE`` is
      what the tests accept for the worst case (full-strength attention, tiles of 128;
      ``tests/inference/test_tiling.py``); keep tiles large (>= 96) for SERAN. Measurements:
      docs/design-notes.md (tiling).

The memory budget (:func:`tile_side_for_budget`) is an estimate of the network's activations,
calibrated with ``bench/bench_inference.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

#: Mean |tiled - whole| / intensity range accepted for SERAN (global attention; checked on real
#: MR by tests/inference/test_tiling.py); convolution-only networks meet CONV_TOLERANCE.
TILED_TOLERANCE = 1e-2
CONV_TOLERANCE = 1e-4


@dataclass(frozen=True)
class Tile:
    """One LR window: rows [y0, y0 + h), columns [x0, x0 + w)."""

    y0: int
    x0: int
    h: int
    w: int


def tile_starts(n: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of windows of length ``tile`` covering [0, n) with at least ``overlap`` overlap.

    The stride is ``tile - overlap``; the last window is aligned with the end (so it may overlap
    its neighbour by more). ``tile >= n`` gives one window [0, n).
    """
    if n < 1:
        raise ValueError(f"length must be positive, got {n}")
    if tile >= n:
        return [0]
    if tile < 1:
        raise ValueError(f"tile size must be positive, got {tile}")
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be in [0, tile size) = [0, {tile}), got {overlap}")
    stride = tile - overlap
    starts = list(range(0, n - tile, stride))
    starts.append(n - tile)
    return starts


def make_tiles(h: int, w: int, tile_size: int | tuple[int, int], overlap: int) -> list[Tile]:
    """The tiles of an (h, w) LR image, row-major."""
    th, tw = (tile_size, tile_size) if isinstance(tile_size, (int, np.integer)) else tile_size
    th, tw = min(int(th), h), min(int(tw), w)
    oy, ox = min(overlap, max(th - 1, 0)), min(overlap, max(tw - 1, 0))
    return [Tile(y, x, th, tw) for y in tile_starts(h, th, oy) for x in tile_starts(w, tw, ox)]


def ramp(
    length: int, ramp_in: int, ramp_out: int, margin_in: int = 0, margin_out: int = 0
) -> np.ndarray:
    """1D blending weights (float64 in [0, 1]) of a tile of ``length`` pixels.

    On a rising edge of ``ramp_in`` pixels the first ``margin_in`` get weight 0 (context only,
    the pixels a network sees with too little surrounding), then ``w = sin^2(pi/2 (u + 0.5) / r)``
    over the next ``r = ramp_in - 2 margin_in`` pixels, then 1; the falling edge mirrors it. Two
    tiles overlapping by exactly ``ramp_in`` (= the other's ``ramp_out``) pixels with equal margins
    have weights summing to exactly 1 there.
    """
    w = np.ones(length, dtype=np.float64)

    def edge(n: int, m: int) -> np.ndarray:
        m = max(0, min(m, (n - 1) // 2))
        r = n - 2 * m
        e = np.ones(n, dtype=np.float64)
        e[:m] = 0.0
        e[m : m + r] = np.sin(0.5 * np.pi * (np.arange(r) + 0.5) / r) ** 2
        return e

    if ramp_in > 0:
        k = min(ramp_in, length)
        w[:k] *= edge(ramp_in, margin_in)[:k]
    if ramp_out > 0:
        k = min(ramp_out, length)
        w[length - k :] *= edge(ramp_out, margin_out)[:k][::-1]
    return w


def tile_weights(tile: Tile, h: int, w: int, scale: int, overlap: int) -> np.ndarray:
    """(tile.h * s, tile.w * s) HR weights of a tile: ramps on the sides shared with a neighbour.

    Over an overlap of ``overlap`` LR pixels, the outer quarter (``overlap // 4``) next to the
    tile's edge is context only (weight 0) and a cosine ramp crosses the middle half.
    """
    s = int(scale)
    r = int(overlap) * s
    m = (int(overlap) // 4) * s
    top, bottom = tile.y0 > 0, tile.y0 + tile.h < h
    left, right = tile.x0 > 0, tile.x0 + tile.w < w
    wy = ramp(tile.h * s, r if top else 0, r if bottom else 0, m, m)
    wx = ramp(tile.w * s, r if left else 0, r if right else 0, m, m)
    return np.outer(wy, wx)


def iter_batches(items: list, batch_size: int) -> Iterator[list]:
    for i in range(0, len(items), batch_size):
        yield items[i : i + batch_size]


def predict_tiled(
    images: np.ndarray,
    predict: Callable[[np.ndarray], np.ndarray],
    scale: int,
    tile_size: int | tuple[int, int],
    overlap: int,
    batch_size: int = 8,
    on_tiles: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Super-resolve a batch of LR images (N, H, W) tile by tile; returns (N, H*s, W*s) float32.

    ``predict`` maps a (B, h, w) float32 batch of tiles to (B, h*s, w*s). Tiles of all N images
    share one shape and are batched together, ``batch_size`` at a time; ``on_tiles(k)`` is called
    after each batch with its number of tiles (for a progress bar).
    """
    x = np.asarray(images, dtype=np.float32)
    if x.ndim == 2:
        x = x[None]
    n, h, w = x.shape
    s = int(scale)
    tiles = make_tiles(h, w, tile_size, overlap)
    # float32 buffers, weights made per tile when used: the blend adds a few terms per pixel,
    # and keeping (N + 1) float64 HR slices plus every tile's weights cost more memory than the
    # tiles themselves save (the planner counts these buffers: hr_buffer_bytes)
    acc = np.zeros((n, h * s, w * s), dtype=np.float32)
    norm = np.zeros((h * s, w * s), dtype=np.float32)
    for t in tiles:
        norm[t.y0 * s : (t.y0 + t.h) * s, t.x0 * s : (t.x0 + t.w) * s] += tile_weights(
            t, h, w, s, overlap
        )
    jobs = [(i, k) for i in range(n) for k in range(len(tiles))]
    for batch in iter_batches(jobs, max(1, int(batch_size))):
        crops = np.stack(
            [
                x[i, tiles[k].y0 : tiles[k].y0 + tiles[k].h, tiles[k].x0 : tiles[k].x0 + tiles[k].w]
                for i, k in batch
            ]
        )
        out = np.asarray(predict(crops), dtype=np.float32)
        for (i, k), o in zip(batch, out):
            t = tiles[k]
            acc[i, t.y0 * s : (t.y0 + t.h) * s, t.x0 * s : (t.x0 + t.w) * s] += o * tile_weights(
                t, h, w, s, overlap
            )
        if on_tiles is not None:
            on_tiles(len(batch))
    acc /= norm
    return acc


def hr_buffer_bytes(shape2d: tuple[int, int], scale: int, n: int = 1) -> int:
    """Bytes :func:`predict_tiled` holds beside the network for ``n`` LR slices of ``shape2d``:
    the float32 accumulator (n HR slices), the weight sum and one tile's weights (< 1 HR slice)."""
    return 4 * (int(n) + 2) * int(shape2d[0]) * int(shape2d[1]) * int(scale) ** 2


def balanced_tile(shape2d: tuple[int, int], max_side: int, overlap: int) -> int:
    """The smallest square tile that covers ``shape2d`` with as few tiles as ``max_side`` allows.

    Tiles of ``max_side`` that barely miss the slice need 2 per axis, mostly overlapping (a
    256-px slice with 210-px tiles: 4 tiles, 2.7x the work); with k tiles per axis, a tile of
    ceil((n + (k - 1) * overlap) / k) covers the axis as well and is smaller (136 px here).
    """
    side = int(max_side)
    if side <= overlap:
        return side
    tile = 1
    for n in shape2d:
        k = max(1, -(-(int(n) - overlap) // (side - overlap)))
        tile = max(tile, -(-(int(n) + (k - 1) * overlap) // k))
    return min(side, tile)


# --------------------------------------------------------------------------------------------
# memory budget


#: Bytes per LR pixel assumed for a network whose layers cannot be inspected.
UNKNOWN_BYTES_PER_PIXEL = 4.0 * 64 * 8


def model_bytes_per_pixel(model) -> float:
    """Rough float32 bytes of activations per LR input pixel of one image for ``model``.

    Each layer output counts its channels times the square of the upscaling reached at that layer
    (layers are in topological order; a PixelShuffle / UpSampling2D multiplies it); the sum of the
    six largest is what an eager forward pass keeps alive at once (a layer's input and output, the
    skip connections, a SERA module's attention maps). ``UNKNOWN_BYTES_PER_PIXEL`` for a model
    without inspectable layers.
    """
    per_pixel = []
    area = 1.0
    for layer in getattr(model, "layers", []):
        factor = getattr(layer, "factor", None)
        size = getattr(layer, "size", None)
        if isinstance(factor, (int, np.integer)) and factor > 1:
            area *= float(factor) ** 2
        elif (
            isinstance(size, (tuple, list))
            and len(size) == 2
            and layer.__class__.__name__ == "UpSampling2D"
        ):
            area *= float(size[0]) * float(size[1])
        try:
            outs = layer.output if isinstance(layer.output, (list, tuple)) else [layer.output]
        except (AttributeError, ValueError):
            continue
        for o in outs:
            shape = getattr(o, "shape", None)
            if shape is None or len(shape) != 4 or shape[-1] is None:
                continue
            per_pixel.append(float(shape[-1]) * area)
    if not per_pixel:
        return UNKNOWN_BYTES_PER_PIXEL
    per_pixel.sort(reverse=True)
    return 4.0 * sum(per_pixel[:6])


def tile_side_for_budget(
    max_memory_mb: float,
    bytes_per_pixel: float,
    weights_bytes: float = 0.0,
    batch_size: int = 1,
    safety: float = 1.5,
    minimum: int = 32,
) -> int:
    """Largest LR tile side whose estimated activation memory fits ``max_memory_mb``.

    Estimate: ``bytes_per_pixel`` per LR pixel of one image, times ``safety`` (the framework's
    allocator and temporaries), times ``batch_size``; twice ``weights_bytes`` is subtracted from
    the budget first. Returns at least ``minimum``. This is an estimate of the network's working
    memory, not of the whole process (the volume itself and the runtime come on top).
    ValueError for a budget that is not a positive number.
    """
    if not max_memory_mb or max_memory_mb <= 0:
        raise ValueError(f"max memory must be a positive number of MB, got {max_memory_mb!r}")
    budget = float(max_memory_mb) * 2**20 - 2.0 * float(weights_bytes)
    bpp = float(bytes_per_pixel) * safety * max(1, int(batch_size))
    side = int(math.sqrt(budget / bpp)) if budget > 0 else 0
    return max(int(minimum), side)


def tile_size_for_memory(
    max_memory_mb: float,
    model,
    batch_size: int = 1,
    weights_bytes: float | None = None,
    safety: float = 1.5,
    minimum: int = 32,
) -> int:
    """:func:`tile_side_for_budget` for a Keras ``model``: :func:`model_bytes_per_pixel` per
    LR pixel, and (unless ``weights_bytes`` is given) 4 bytes per parameter."""
    if weights_bytes is None:
        weights_bytes = 4.0 * float(getattr(model, "count_params", lambda: 0)())
    return tile_side_for_budget(
        max_memory_mb, model_bytes_per_pixel(model), weights_bytes, batch_size, safety, minimum
    )
