"""Numba CPU kernels of the hash-grid encoding (same signatures as `hashgrid_ref.py`).

Imported on first use through the dispatch registry, never by `import neuralframe.render.nerf`.
The backward pass parallelises over levels: each level owns a disjoint slice of the table, so the
scatter-add of gradients needs neither atomics nor per-thread copies of the table.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit, prange

from neuralframe.render.nerf import hashgrid_ref as ref
from neuralframe.render.nerf.hashgrid import PRIMES

_P1 = np.int64(PRIMES[1])
_P2 = np.int64(PRIMES[2])
_U32 = np.int64(ref.U32)


@njit(inline="always", cache=True)
def _cell(x, scale):
    # fmaf(scale, x, 0.5): one rounding, as the float64 product and sum are exact
    pos = np.float32(np.float64(x) * np.float64(scale) + 0.5)
    g = np.floor(pos)
    return np.int64(g), np.float32(pos - g)


@njit(inline="always", cache=True)
def _index(gx, gy, gz, resolution, size, dense):
    if dense:
        index = (gx + gy * resolution + gz * resolution * resolution) & _U32
        if index >= size:  # only past the far faces: the 0.5 offset can reach resolution + 1
            index = index % size
        return index
    # a hashed level's size is exactly 2**log2_hashmap_size, so the modulo is a mask
    return (gx ^ (gy * _P1) ^ (gz * _P2)) & (size - 1)


@njit(inline="always", cache=True)
def _level(offsets, scales, resolutions, level):
    """A level's first table row, its number of rows, resolution, whether it is dense, and its scale."""
    start = offsets[level]
    size = offsets[level + 1] - start
    res = resolutions[level]
    return start, size, res, res * res * res <= size, scales[level]


@njit(inline="always", cache=True)
def _corner(corner, gx, gy, gz, fx, fy, fz):
    bx, by, bz = corner & 1, (corner >> 1) & 1, (corner >> 2) & 1
    one = np.float32(1.0)
    w = (fx if bx else one - fx) * (fy if by else one - fy) * (fz if bz else one - fz)
    return gx + bx, gy + by, gz + bz, w


# Level-major loops: a thread walks all points through one level's table slice, which then stays in
# cache (point-major order thrashes it at 2**19 entries per level). The common case of two features per
# level has its own kernels with scalar accumulators (faster than the generic ones; `neuralframe bench nerf`
# measures the encoding: benchmarks/nerf.json).


@njit(parallel=True, cache=True)
def _forward_f2(x, params, offsets, scales, resolutions, out):
    n = x.shape[0]
    for level in prange(scales.shape[0]):
        start, size, res, dense, scale = _level(offsets, scales, resolutions, level)
        for i in range(n):
            gx, fx = _cell(x[i, 0], scale)
            gy, fy = _cell(x[i, 1], scale)
            gz, fz = _cell(x[i, 2], scale)
            a0 = np.float32(0.0)
            a1 = np.float32(0.0)
            for corner in range(8):
                cx, cy, cz, w = _corner(corner, gx, gy, gz, fx, fy, fz)
                row = start + _index(cx, cy, cz, res, size, dense)
                a0 += w * params[row, 0]
                a1 += w * params[row, 1]
            out[i, 2 * level] = a0
            out[i, 2 * level + 1] = a1


@njit(parallel=True, cache=True)
def _forward_any(x, params, offsets, scales, resolutions, out):
    n = x.shape[0]
    n_feat = params.shape[1]
    for level in prange(scales.shape[0]):
        start, size, res, dense, scale = _level(offsets, scales, resolutions, level)
        col = level * n_feat
        for i in range(n):
            gx, fx = _cell(x[i, 0], scale)
            gy, fy = _cell(x[i, 1], scale)
            gz, fz = _cell(x[i, 2], scale)
            out[i, col : col + n_feat] = 0.0
            for corner in range(8):
                cx, cy, cz, w = _corner(corner, gx, gy, gz, fx, fy, fz)
                row = start + _index(cx, cy, cz, res, size, dense)
                for f in range(n_feat):
                    out[i, col + f] += w * params[row, f]


@njit(parallel=True, cache=True)
def _backward_params_f2(x, offsets, scales, resolutions, v_out, v_params):
    n = x.shape[0]
    for level in prange(scales.shape[0]):  # levels own disjoint table slices: no races
        start, size, res, dense, scale = _level(offsets, scales, resolutions, level)
        v_params[start : start + size, :] = 0.0
        for i in range(n):
            gx, fx = _cell(x[i, 0], scale)
            gy, fy = _cell(x[i, 1], scale)
            gz, fz = _cell(x[i, 2], scale)
            g0 = v_out[i, 2 * level]
            g1 = v_out[i, 2 * level + 1]
            for corner in range(8):
                cx, cy, cz, w = _corner(corner, gx, gy, gz, fx, fy, fz)
                row = start + _index(cx, cy, cz, res, size, dense)
                v_params[row, 0] += w * g0
                v_params[row, 1] += w * g1


@njit(parallel=True, cache=True)
def _backward_params_any(x, offsets, scales, resolutions, v_out, v_params):
    n = x.shape[0]
    n_feat = v_params.shape[1]
    for level in prange(scales.shape[0]):  # levels own disjoint table slices: no races
        start, size, res, dense, scale = _level(offsets, scales, resolutions, level)
        col = level * n_feat
        v_params[start : start + size, :] = 0.0
        for i in range(n):
            gx, fx = _cell(x[i, 0], scale)
            gy, fy = _cell(x[i, 1], scale)
            gz, fz = _cell(x[i, 2], scale)
            for corner in range(8):
                cx, cy, cz, w = _corner(corner, gx, gy, gz, fx, fy, fz)
                row = start + _index(cx, cy, cz, res, size, dense)
                for f in range(n_feat):
                    v_params[row, f] += w * v_out[i, col + f]


@njit(parallel=True, cache=True)
def _backward_x(x, params, offsets, scales, resolutions, v_out, v_x):
    n = x.shape[0]
    n_levels = scales.shape[0]
    n_feat = params.shape[1]
    for i in prange(n):
        v_x[i, 0] = 0.0
        v_x[i, 1] = 0.0
        v_x[i, 2] = 0.0
        for level in range(n_levels):
            start, size, res, dense, scale = _level(offsets, scales, resolutions, level)
            gx, fx = _cell(x[i, 0], scale)
            gy, fy = _cell(x[i, 1], scale)
            gz, fz = _cell(x[i, 2], scale)
            for corner in range(8):
                bx, by, bz = corner & 1, (corner >> 1) & 1, (corner >> 2) & 1
                wx = fx if bx else np.float32(1.0) - fx
                wy = fy if by else np.float32(1.0) - fy
                wz = fz if bz else np.float32(1.0) - fz
                row = start + _index(gx + bx, gy + by, gz + bz, res, size, dense)
                dot = np.float32(0.0)
                for f in range(n_feat):
                    dot += v_out[i, level * n_feat + f] * params[row, f]
                # d(weight)/d(frac) is +-1 per dimension, and d(frac)/dx is the level's scale
                v_x[i, 0] += dot * scale * (wy * wz if bx else -wy * wz)
                v_x[i, 1] += dot * scale * (wx * wz if by else -wx * wz)
                v_x[i, 2] += dot * scale * (wx * wy if bz else -wx * wy)


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


def hashgrid_forward(
    x: torch.Tensor,  # [N, 3]
    params: torch.Tensor,  # [T, F]
    offsets: torch.Tensor,  # [L + 1] int64
    scales: torch.Tensor,  # [L] float32
    resolutions: torch.Tensor,  # [L] int64
) -> torch.Tensor:  # [N, L * F]
    n_levels, n_feat = scales.numel(), params.shape[1]
    out = torch.empty(x.shape[0], n_levels * n_feat, dtype=torch.float32)
    if x.shape[0]:
        kernel = _forward_f2 if n_feat == 2 else _forward_any
        kernel(_numpy(x), _numpy(params), _numpy(offsets), _numpy(scales), _numpy(resolutions), out.numpy())
    return out


def hashgrid_backward(
    x: torch.Tensor,  # [N, 3]
    params: torch.Tensor,  # [T, F]
    offsets: torch.Tensor,
    scales: torch.Tensor,
    resolutions: torch.Tensor,
    v_features: torch.Tensor,  # [N, L * F]
    need_x: bool = False,
) -> tuple[torch.Tensor | None, torch.Tensor]:  # v_x [N, 3] or None, v_params [T, F]
    xs, vs = _numpy(x), _numpy(v_features.float())
    off, sc, res = _numpy(offsets), _numpy(scales), _numpy(resolutions)
    v_params = torch.empty(params.shape, dtype=torch.float32)
    kernel = _backward_params_f2 if params.shape[1] == 2 else _backward_params_any
    kernel(xs, off, sc, res, vs, v_params.numpy())
    v_x = None
    if need_x:
        v_x = torch.empty(x.shape, dtype=torch.float32)
        if x.shape[0]:
            _backward_x(xs, _numpy(params), off, sc, res, vs, v_x.numpy())
    return v_x, v_params


# ---- fused inference forward: normalise -> hash encoding -> density MLP, one pass per point ----

_BLOCK = 512  # points per work item of the fused kernel


@njit(parallel=True, cache=True, fastmath=True)
def _geometry_fused(x, lo, inv_extent, params, offsets, scales, resolutions, w1t, w2t, out):
    """out[i] = W2 relu(W1 enc(clamp((x[i] - lo) * inv_extent, 0, 1))) for blocks of points in
    parallel. Inside a block the encoding runs level by level (one level's table slice stays in cache
    while the block's points, consecutive samples along rays, walk it), then the two layers run point
    by point; features and activations stay in the work item's small buffers."""
    n = x.shape[0]
    n_levels = scales.shape[0]
    n_feat = params.shape[1]
    n_in = n_levels * n_feat
    hidden = w1t.shape[1]
    n_out = w2t.shape[1]
    n_blocks = (n + _BLOCK - 1) // _BLOCK
    for b in prange(n_blocks):
        i0 = b * _BLOCK
        m = min(n, i0 + _BLOCK) - i0
        p = np.empty((m, 3), np.float32)
        feats = np.zeros((m, n_in), np.float32)
        h = np.empty(hidden, np.float32)
        o = np.empty(n_out, np.float32)
        for i in range(m):
            for a in range(3):
                p[i, a] = min(max((x[i0 + i, a] - lo[a]) * inv_extent[a], np.float32(0.0)), np.float32(1.0))
        for level in range(n_levels):
            start, size, res, dense, scale = _level(offsets, scales, resolutions, level)
            for i in range(m):
                gx, fx = _cell(p[i, 0], scale)
                gy, fy = _cell(p[i, 1], scale)
                gz, fz = _cell(p[i, 2], scale)
                for corner in range(8):
                    cx, cy, cz, w = _corner(corner, gx, gy, gz, fx, fy, fz)
                    row = start + _index(cx, cy, cz, res, size, dense)
                    for f in range(n_feat):
                        feats[i, level * n_feat + f] += w * params[row, f]
        for i in range(m):
            for j in range(hidden):
                h[j] = 0.0
            for k in range(n_in):
                v = feats[i, k]
                for j in range(hidden):
                    h[j] += w1t[k, j] * v
            for j in range(n_out):
                o[j] = 0.0
            for k in range(hidden):
                v = max(h[k], np.float32(0.0))
                for j in range(n_out):
                    o[j] += w2t[k, j] * v
            for j in range(n_out):
                out[i0 + i, j] = o[j]


def geometry_forward(field, x: torch.Tensor) -> torch.Tensor:  # NerfField, [N, 3] world points -> [N, G]
    """`field.geometry(x)` (the density MLP's outputs) in one fused pass, for inference (no gradients).

    Measured by `neuralframe bench nerf` against the unfused path (this module's encoding kernel,
    then torch's matrix products): the unfused path is faster on CPUs, where torch's GEMM beats the
    fused kernel's per-point layers, so the renderer keeps it; this kernel is the comparison point.
    """
    enc = field.encoding
    w1, w2 = field.density_net[0].weight, field.density_net[2].weight
    box = field.aabb.float()
    out = torch.empty(x.shape[0], w2.shape[0], dtype=torch.float32)
    if x.shape[0]:
        _geometry_fused(_numpy(x.float()), _numpy(box[:3]), _numpy(1.0 / (box[3:] - box[:3])), _numpy(enc.params.float()),
                        _numpy(enc.level_offsets), _numpy(enc.level_scales), _numpy(enc.level_resolutions),
                        _numpy(w1.float().t()), _numpy(w2.float().t()), out.numpy())
    return out
