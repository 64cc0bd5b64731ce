"""The serial sorting stages of the CPU splat rasterizer (`rasterize_cpu.py`), compiled with Numba:
a stable radix sort by depth and a counting sort of (tile, Gaussian) pairs by tile."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def radix_sort(keys, ids):  # pragma: no cover - compiled
    """Stable LSD radix sort of `ids` by uint32 `keys` (three 11-bit digits)."""
    n = keys.shape[0]
    k0, i0 = keys.copy(), ids.copy()
    k1, i1 = np.empty_like(keys), np.empty_like(ids)
    for shift in (0, 11, 22):
        counts = np.zeros(2049, np.int64)
        for j in range(n):
            counts[((k0[j] >> shift) & 2047) + 1] += 1
        for d in range(2048):
            counts[d + 1] += counts[d]
        for j in range(n):
            d = (k0[j] >> shift) & 2047
            p = counts[d]
            counts[d] = p + 1
            k1[p] = k0[j]
            i1[p] = i0[j]
        k0, k1 = k1, k0
        i0, i1 = i1, i0
    return i0


@njit(cache=True, nogil=True)
def bin_by_tile(rects, tiles_x, tiles_y):  # pragma: no cover - compiled
    """Counting sort of (tile, Gaussian) pairs by tile, keeping the depth order inside each tile."""
    n_tiles = tiles_x * tiles_y
    counts = np.zeros(n_tiles + 1, np.int64)
    m = rects.shape[0]
    for g in range(m):
        for ty in range(rects[g, 1], rects[g, 3]):
            for tx in range(rects[g, 0], rects[g, 2]):
                counts[ty * tiles_x + tx + 1] += 1
    for t in range(n_tiles):
        counts[t + 1] += counts[t]
    fill = counts[:-1].copy()
    pairs = np.empty(counts[n_tiles], np.int32)
    for g in range(m):
        for ty in range(rects[g, 1], rects[g, 3]):
            for tx in range(rects[g, 0], rects[g, 2]):
                t = ty * tiles_x + tx
                pairs[fill[t]] = g
                fill[t] += 1
    return pairs, counts
