"""The sorting stages of the CPU splat rasterizer (`rasterize_cpu.py`, stages 2 and 3), compiled with Numba:
a stable radix sort of the visible Gaussians by depth, then (tile, Gaussian) pairs grouped by tile and the
records packed in the order the blending reads them.

The sorts are serial (and so is packing below `PARALLEL_PACK` Gaussians): each parallel region costs a wake-up
of the other threads, which on a loaded machine can take a scheduler time slice (several milliseconds) and
would outweigh what a second core saves on them."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

_BITS = 11
_DIGITS = 1 << _BITS
_MASK = np.uint64(_DIGITS - 1)
_LOW = np.uint64(0xFFFFFFFF)


@njit(cache=True, nogil=True)
def sort_visible(valid, keys, rect, tiles_x, tiles_y, rect_d):  # pragma: no cover - compiled
    """Indices of the `valid` entries stably sorted by their uint32 `keys`, their rectangles `rect` in that
    order (the first rows of `rect_d`), and per tile the number of Gaussians whose rectangle covers it and
    whose home it is (its first tile), both shifted by one (for `_bin`'s prefix sums).

    An LSD radix sort of key << 32 | index (one 8-byte move per element and pass) by three 11-bit digits,
    counted in one pass that also gathers the valid entries (and counts the tiles, reading the rectangles in
    memory order); a pass whose digit is the same for all is left out."""
    n = valid.shape[0]
    m = 0
    for i in range(n):
        m += valid[i]
    a, b = np.empty(m, np.uint64), np.empty(m, np.uint64)
    counts = np.zeros((3, _DIGITS), np.int64)
    tiles = np.zeros(tiles_x * tiles_y + 1, np.int64)
    home = np.zeros(tiles_x * tiles_y + 1, np.int64)
    j = 0
    for i in range(n):
        if valid[i]:
            key = np.uint64(keys[i])
            a[j] = (key << np.uint64(32)) | np.uint64(i)
            j += 1
            counts[0, key & _MASK] += 1
            counts[1, (key >> np.uint64(_BITS)) & _MASK] += 1
            counts[2, key >> np.uint64(2 * _BITS)] += 1
            x0, y0, x1, y1 = rect[i, 0], rect[i, 1], rect[i, 2], rect[i, 3]
            home[y0 * tiles_x + x0 + 1] += 1
            for ty in range(y0, y1):
                for tx in range(x0, x1):
                    tiles[ty * tiles_x + tx + 1] += 1
    for d in range(3):
        place = counts[d]
        total = 0
        same = False
        for v in range(_DIGITS):
            here = place[v]
            same |= here == m
            place[v] = total
            total += here
        if same:  # one digit value for all: this pass would not move anything
            continue
        shift = np.uint64(32 + _BITS * d)
        for q in range(m):
            e = a[q]
            v = (e >> shift) & _MASK
            p = place[v]
            place[v] = p + 1
            b[p] = e
        a, b = b, a
    order = np.empty(m, np.int32)
    for q in range(m):
        i = a[q] & _LOW
        order[q] = i
        for c in range(4):
            rect_d[q, c] = rect[i, c]
    return order, tiles, home


@njit(cache=True, nogil=True)
def _bin(rect_d, tiles_x, counts, home):  # pragma: no cover - compiled
    """Counting sorts of the depth-ordered Gaussians (rectangles `rect_d`; `counts`, `home`: per tile, shifted
    by one, the Gaussians covering it and those whose home it is): by tile for the pairs, and by home tile
    for the record order, both stable."""
    m = rect_d.shape[0]
    n_tiles = counts.shape[0] - 1
    for t in range(n_tiles):
        counts[t + 1] += counts[t]
        home[t + 1] += home[t]
    fill = counts[:-1].copy()
    pos = np.empty(m, np.int32)
    pairs = np.empty(counts[n_tiles], np.int32)
    for g in range(m):
        x0, y0, x1, y1 = rect_d[g, 0], rect_d[g, 1], rect_d[g, 2], rect_d[g, 3]
        h = y0 * tiles_x + x0
        q = home[h]
        home[h] = q + 1
        pos[g] = q
        for ty in range(y0, y1):
            for tx in range(x0, x1):
                t = ty * tiles_x + tx
                pairs[fill[t]] = q
                fill[t] += 1
    return pairs, counts, pos


@njit(inline="always")
def _pack_one(order, pos, rec, rec_s, j):  # pragma: no cover - compiled
    i = order[j]
    p = pos[j]
    for q in range(rec.shape[1]):
        rec_s[p, q] = rec[i, q]


@njit(cache=True, nogil=True)
def _pack(order, pos, rec, rec_s):  # pragma: no cover - compiled
    for j in range(order.shape[0]):
        _pack_one(order, pos, rec, rec_s, j)


@njit(cache=True, nogil=True, parallel=True)
def _pack_parallel(order, pos, rec, rec_s):  # pragma: no cover - compiled
    for j in prange(order.shape[0]):
        _pack_one(order, pos, rec, rec_s, j)


# Gaussians from which packing runs in parallel: below, the gather takes a few milliseconds, about what a
# parallel region's wake-up can cost on a loaded machine.
PARALLEL_PACK = 1 << 19


def bin_and_pack(order, rect_d, counts, home, rec, tiles_x: int, rec_s):
    """Pairs grouped by tile, front to back inside each tile, and the records of the Gaussians `order` (front
    to back, rectangles `rect_d`, tile counts `counts` and `home` from `sort_visible`) packed into `rec_s` by
    home tile, front to back inside each: a tile's Gaussians lie close together in memory. Returns (pairs,
    offsets): tile t blends rec_s[pairs[offsets[t]:offsets[t + 1]]]."""
    pairs, offsets, pos = _bin(rect_d, tiles_x, counts, home)
    (_pack_parallel if len(order) >= PARALLEL_PACK else _pack)(order, pos, rec, rec_s)
    return pairs, offsets
