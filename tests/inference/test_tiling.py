"""Tiled inference: tiles cover the slice, blend weights, and agreement with whole-slice inference.

Measured agreement on the bundled real T1 slice (256x256, x2, mean |tiled - whole| / intensity
range; see keras_seran/inference/tiling.py):
    bicubic model (local):                 0 (exact)
    EDSR tiny (conv only), overlap 32:     ~1e-8;   overlap 16: ~2e-5
    SERAN tiny, attention at full strength (s = 1, random weights):
        tiles 128 / overlap 16: ~2e-3;  tiles 96: ~7e-3;  tiles 64: ~1.1e-2
    (SERA pools globally, so a tile sees other descriptors than the whole slice.)
    bundled x2 weights (small preset; learned residual scales ~0.9-1), 128x128 LR slice:
        tiles 96 / overlap 16: ~2e-4 (max ~4e-3); tiles 64: ~8e-4 (max ~2e-2)
"""

from __future__ import annotations

import numpy as np
import pytest

from keras_seran.inference import tiling
from keras_seran.inference.resolver import SuperResolver

from .conftest import mad_over_range


@pytest.mark.parametrize(
    "n, tile, overlap",
    [(256, 64, 16), (100, 64, 16), (65, 64, 8), (50, 64, 16), (257, 96, 32), (10, 3, 1)],
)
def test_tiles_cover(n, tile, overlap):
    starts = tiling.tile_starts(n, tile, overlap)
    t = min(tile, n)
    covered = np.zeros(n, bool)
    for a, b in zip(starts, starts[1:]):
        assert b - a <= t - overlap and b > a  # at least `overlap` shared
    for s in starts:
        assert 0 <= s and s + t <= n
        covered[s : s + t] = True
    assert covered.all()


def test_weights_partition_of_unity():
    """Regular stride: the ramps of two neighbours sum to 1; weights > 0 everywhere in the image."""
    h = w = 112  # starts 0, 48: stride 48 = 64 - 16 exactly
    tiles = tiling.make_tiles(h, w, 64, 16)
    norm = np.zeros((h * 2, w * 2))
    for t in tiles:
        norm[t.y0 * 2 : (t.y0 + t.h) * 2, t.x0 * 2 : (t.x0 + t.w) * 2] += tiling.tile_weights(
            t, h, w, 2, 16
        )
    np.testing.assert_allclose(norm, 1.0, atol=1e-12)
    tiles = tiling.make_tiles(100, 77, 40, 12)  # irregular last tiles: still covered
    norm = np.zeros((300, 231))
    for t in tiles:
        norm[t.y0 * 3 : (t.y0 + t.h) * 3, t.x0 * 3 : (t.x0 + t.w) * 3] += tiling.tile_weights(
            t, 100, 77, 3, 12
        )
    assert norm.min() > 0.1


def test_pointwise_network_tiles_exactly():
    """A network without spatial context (nearest upsampling) gives identical tiled results."""
    rng = np.random.default_rng(0)
    x = rng.random((3, 70, 53)).astype(np.float32)

    def nearest(b):
        return np.repeat(np.repeat(b, 3, axis=1), 3, axis=2)

    calls = []
    out = tiling.predict_tiled(x, nearest, 3, 32, 8, batch_size=5, on_tiles=calls.append)
    np.testing.assert_allclose(out, nearest(x), atol=1e-6)
    assert sum(calls) == 3 * len(tiling.make_tiles(70, 53, 32, 8))


def _real_slice(slab):
    return np.asarray(slab.dataobj, dtype=np.float32)[:, 8, :]  # 256x256 real axial T1


def test_local_model_tiled_equals_whole(bicubic_model, slab):
    r = SuperResolver(bicubic_model)
    sl = _real_slice(slab)
    whole = r.predict_slice(sl)
    for tile, overlap in [(64, 16), (100, 8)]:
        tiled = r.predict_slice(sl, tile_size=tile, overlap=overlap)
        assert tiled.shape == whole.shape == (512, 512)
        assert mad_over_range(tiled, whole, sl) < 1e-6
        assert np.abs(tiled - whole).max() / np.ptp(sl) < 1e-5


def test_conv_model_tiled_close_to_whole(slab):
    import keras

    from keras_seran.models import edsr

    keras.utils.set_random_seed(7)
    r = SuperResolver(edsr(2, "tiny"))
    sl = _real_slice(slab)
    whole = r.predict_slice(sl)
    tiled = r.predict_slice(sl, tile_size=128, overlap=32)
    assert mad_over_range(tiled, whole, sl) < tiling.CONV_TOLERANCE


def test_seran_tiled_close_to_whole(tiny_seran, slab):
    """Global attention: not exact; within TILED_TOLERANCE of the range on real MR (see module doc)."""
    r = SuperResolver(tiny_seran)
    sl = _real_slice(slab)
    whole = r.predict_slice(sl)
    tiled = r.predict_slice(sl, tile_size=128, overlap=16)
    err = mad_over_range(tiled, whole, sl)
    assert 0 < err < tiling.TILED_TOLERANCE, err


@pytest.mark.parametrize("degradation, tolerance", [("bicubic", 1e-3), ("kspace", 2e-3)])
def test_pretrained_tiled_close_to_whole(slab, degradation, tolerance):
    """64 px tiles of a 128 px slice, 16 px overlap: within ``tolerance`` of the range of the
    whole-slice result (measured: bicubic weights 0.9e-3, k-space weights 1.2e-3)."""
    r = SuperResolver.from_pretrained(2, degradation=degradation)
    sl = _real_slice(slab)[::2, ::2]  # a 128x128 LR slice of real T1
    whole = r.predict_slice(sl)
    tiled = r.predict_slice(sl, tile_size=64, overlap=16)
    assert mad_over_range(tiled, whole, sl) < tolerance


def test_volume_tiled_vs_whole(tiny_seran, slab):
    """predict_volume with tiles agrees with whole slices on the real slab (4 slices)."""
    img = slab.slicer[:, 6:10, :]
    r = SuperResolver(tiny_seran)
    whole = np.asarray(r.predict_volume(img, axis=1).dataobj)
    tiled_img = r.predict_volume(img, axis=1, tile_size=128, overlap=16, batch_size=4)
    tiled = np.asarray(tiled_img.dataobj)
    assert tiled.shape == whole.shape == (512, 4, 512)
    assert mad_over_range(tiled, whole, np.asarray(img.dataobj)) < tiling.TILED_TOLERANCE


def test_memory_budget_picks_tiles(tiny_seran):
    small = tiling.tile_size_for_memory(20, tiny_seran, minimum=1)
    big = tiling.tile_size_for_memory(2000, tiny_seran, minimum=1)
    assert 1 <= small < big
    r = SuperResolver(tiny_seran)
    tile, bs = r.plan((256, 256), batch_size=8, max_memory_mb=20)
    assert tile is not None and tile < 256 and bs == 1
    tile, bs = r.plan((256, 256), batch_size=8, max_memory_mb=100000)
    assert tile is None and bs == 8
    tile, bs = r.plan((256, 256), batch_size=8, tile_size=96)
    assert (tile, bs) == (96, 8)
    with pytest.raises(ValueError):
        tiling.tile_size_for_memory(0, tiny_seran)


def test_balanced_tile_covers_with_the_fewest_smallest_tiles():
    # 256 px with tiles of at most 210 and overlap 16: 2 tiles per axis either way, but 136-px
    # tiles do it with 2.7x less work than 210-px ones
    assert tiling.balanced_tile((256, 256), 210, 16) == 136
    assert len(tiling.make_tiles(256, 256, 136, 16)) == len(tiling.make_tiles(256, 256, 210, 16))
    assert tiling.balanced_tile((256, 256), 300, 16) == 256  # one tile: the slice
    assert tiling.balanced_tile((256, 120), 100, 16) == 96  # 3 x 2 tiles of 96
    for shape, side in (((256, 256), 97), ((130, 77), 50), ((64, 300), 64)):
        tile = tiling.balanced_tile(shape, side, 16)
        assert tile <= side
        assert len(tiling.make_tiles(*shape, tile, 16)) == len(tiling.make_tiles(*shape, side, 16))


def test_plan_counts_the_blend_buffers_and_warns_below_the_minimum_tile(tiny_seran):
    r = SuperResolver(tiny_seran)
    whole = tiling.tile_size_for_memory(20, tiny_seran, minimum=1)
    tile, _ = r.plan((512, 512), max_memory_mb=20)
    buffers = tiling.hr_buffer_bytes((512, 512), 2) / 2**20  # 12 MB of the 20
    assert tile < whole
    assert tile <= max(tiling.tile_size_for_memory(20 - buffers, tiny_seran, minimum=1), 64)
    with pytest.warns(UserWarning, match="may exceed the budget"):
        assert r.plan((512, 512), max_memory_mb=13)[0] == 64


def test_progress_counts_whole_slices_when_tiling():
    from keras_seran.inference.resolver import whole_slices

    seen = []
    step = whole_slices(seen.append)
    for _ in range(20):
        for _ in range(7):  # a slice of 7 tiles reports 7 fractions
            step(1 / 7)
    assert sum(seen) == 20 and all(isinstance(k, int) and k >= 1 for k in seen)
