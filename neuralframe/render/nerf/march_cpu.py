"""Numba CPU kernels of ray marching and volume rendering (same signatures as `march_ref.py`).

Marching skips a whole empty occupancy cell at once: from a sample in an empty cell it jumps to the
last step before the cell's exit (one step early, so rounding can never skip an occupied sample), and
every candidate is still tested with the reference's float32 arithmetic, so both emit the same samples.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numba import njit, prange

from neuralframe.backend.memo import LastResult


COARSE = 8  # cells per side of a block of the coarse grid used to skip large empty regions
COARSER = 32  # cells per side of a block of the coarser grid (rays that miss the object cross it in a few jumps)


@njit(inline="always", cache=True)
def _march_ray(r, o, d, t_min, t_max, occ, coarse, coarser, lo, inv, step, u, k_start, max_samples, out_t, base):
    """March one ray; writes t values at out_t[base:] when base >= 0. Returns (count, done, k_end)."""
    grid = occ.shape[0]
    cell_size = np.float32(1.0) / inv[0], np.float32(1.0) / inv[1], np.float32(1.0) / inv[2]
    k = k_start
    n = 0
    while True:
        t = t_min + (np.float32(k) + u) * step
        if not t < t_max:
            return n, True, -1
        px = o[r, 0] + t * d[r, 0]
        py = o[r, 1] + t * d[r, 1]
        pz = o[r, 2] + t * d[r, 2]
        cx = int(math.floor((px - lo[0]) * inv[0]))
        cy = int(math.floor((py - lo[1]) * inv[1]))
        cz = int(math.floor((pz - lo[2]) * inv[2]))
        if cx < 0 or cy < 0 or cz < 0 or cx >= grid or cy >= grid or cz >= grid:
            k += 1
            continue
        if occ[cx, cy, cz]:
            if base >= 0:
                out_t[base + n] = t
            n += 1
            k += 1
            if n == max_samples:
                return n, False, k
            continue
        # empty cell: distance to the exit of the cell, or of the largest empty block around it
        width = 1
        c = (cx, cy, cz)
        if not coarser[cx // COARSER, cy // COARSER, cz // COARSER]:
            width = COARSER
            c = (cx // COARSER * COARSER, cy // COARSER * COARSER, cz // COARSER * COARSER)
        elif not coarse[cx // COARSE, cy // COARSE, cz // COARSE]:
            width = COARSE
            c = (cx // COARSE * COARSE, cy // COARSE * COARSE, cz // COARSE * COARSE)
        t_exit = np.inf
        for a in range(3):
            da = d[r, a]
            if da > 0:
                bound = lo[a] + (c[a] + width) * cell_size[a]
                t_exit = min(t_exit, (bound - o[r, a]) / da)
            elif da < 0:
                bound = lo[a] + c[a] * cell_size[a]
                t_exit = min(t_exit, (bound - o[r, a]) / da)
        k_jump = int(math.floor((t_exit - t_min) / step - u)) - 1
        k = max(k + 1, k_jump)


@njit(cache=True)
def _coarsen(occ, coarse, block):
    g = occ.shape[0]
    for x in range(g):
        for y in range(g):
            for z in range(g):
                if occ[x, y, z]:
                    coarse[x // block, y // block, z // block] = True


def _grids_of(occupancy: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The occupancy as numpy and its block grids (a block is occupied when any of its cells is)."""
    occ = _np(occupancy.bool())
    grids = [occ]
    for block in (COARSE, COARSER):
        nb = -(-occ.shape[0] // block)
        coarse = np.zeros((nb, nb, nb), np.bool_)
        _coarsen(occ, coarse, block)
        grids.append(coarse)
    return tuple(grids)


# rebuilt only when the occupancy changes (training updates it in place; rendering never does)
_grids = LastResult(_grids_of)


@njit(parallel=True, cache=True)
def _march_count(o, d, t_min, t_max, occ, coarse, coarser, lo, inv, step, u, k_start, max_samples, counts, done, k_end):
    dummy = np.empty(0, np.float32)
    for r in prange(o.shape[0]):
        n, fin, ke = _march_ray(r, o, d, t_min[r], t_max[r], occ, coarse, coarser, lo, inv, step, u[r], k_start[r],
                                max_samples, dummy, -1)
        counts[r] = n
        done[r] = fin
        k_end[r] = ke


@njit(parallel=True, cache=True)
def _march_fill(o, d, t_min, t_max, occ, coarse, coarser, lo, inv, step, u, k_start, max_samples, offsets, ray_indices, ts):
    for r in prange(o.shape[0]):
        start = offsets[r]
        n, _, _ = _march_ray(r, o, d, t_min[r], t_max[r], occ, coarse, coarser, lo, inv, step, u[r], k_start[r],
                             max_samples, ts, start)
        for j in range(n):
            ray_indices[start + j] = r


@njit(parallel=True, cache=True)
def _march_buffered(o, d, t_min, t_max, occ, coarse, coarser, lo, inv, step, u, k_start, max_samples, buf, counts, done,
                    k_end):
    # one pass into a [R, max_samples] buffer: for the short rounds of rendering
    for r in prange(o.shape[0]):
        n, fin, ke = _march_ray(r, o, d, t_min[r], t_max[r], occ, coarse, coarser, lo, inv, step, u[r], k_start[r],
                                max_samples, buf[r], 0)
        counts[r] = n
        done[r] = fin
        k_end[r] = ke


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


def march(rays_o, rays_d, t_min, t_max, occupancy, aabb, step, u, k_start, max_samples):
    """See `march_ref.march`."""
    n_rays = rays_o.shape[0]
    o, d = _np(rays_o.float()), _np(rays_d.float())
    tmin, tmax, uu = _np(t_min.float()), _np(t_max.float()), _np(u.float())
    ks = _np(k_start.long())
    occ, coarse, coarser = _grids(occupancy)
    box = aabb.float()
    lo = _np(box[:3])
    inv = _np(occupancy.shape[0] / (box[3:] - box[:3]))
    step32 = np.float32(step)
    counts = np.empty(n_rays, np.int64)
    done = np.empty(n_rays, np.bool_)
    k_end = np.empty(n_rays, np.int64)
    if 0 < n_rays * max_samples <= 1 << 24:
        buf = np.empty((n_rays, max_samples), np.float32)
        _march_buffered(o, d, tmin, tmax, occ, coarse, coarser, lo, inv, step32, uu, ks, max_samples, buf, counts, done, k_end)
        keep = np.arange(max_samples)[None, :] < counts[:, None]
        ray_indices = np.repeat(np.arange(n_rays, dtype=np.int64), counts)
        return torch.from_numpy(ray_indices), torch.from_numpy(buf[keep]), torch.from_numpy(done), torch.from_numpy(k_end)
    if n_rays:
        _march_count(o, d, tmin, tmax, occ, coarse, coarser, lo, inv, step32, uu, ks, max_samples, counts, done, k_end)
    offsets = np.zeros(n_rays + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    total = int(offsets[-1])
    ray_indices = np.empty(total, np.int64)
    ts = np.empty(total, np.float32)
    if total:
        _march_fill(o, d, tmin, tmax, occ, coarse, coarser, lo, inv, step32, uu, ks, max_samples, offsets, ray_indices, ts)
    return torch.from_numpy(ray_indices), torch.from_numpy(ts), torch.from_numpy(done), torch.from_numpy(k_end)


# ---- volume rendering ----


@njit(parallel=True, cache=True)
def _weights(sigmas, dts, offsets, t_in, weights, t_before, t_after):
    for r in prange(offsets.shape[0] - 1):
        T = t_in[r]
        for s in range(offsets[r], offsets[r + 1]):
            a = np.float32(1.0) - np.exp(-sigmas[s] * dts[s])
            t_before[s] = T
            weights[s] = T * a
            T = T * (np.float32(1.0) - a)
        t_after[r] = T


@njit(parallel=True, cache=True)
def _composite_fwd(sigmas, rgbs, ts, dts, offsets, rgb, opacity, depth):
    for r in prange(offsets.shape[0] - 1):
        T = np.float32(1.0)
        c0 = c1 = c2 = acc = dep = np.float32(0.0)
        for s in range(offsets[r], offsets[r + 1]):
            decay = np.exp(-sigmas[s] * dts[s])
            w = T * (np.float32(1.0) - decay)
            c0 += w * rgbs[s, 0]
            c1 += w * rgbs[s, 1]
            c2 += w * rgbs[s, 2]
            acc += w
            dep += w * ts[s]
            T = T * decay
        rgb[r, 0] = c0
        rgb[r, 1] = c1
        rgb[r, 2] = c2
        opacity[r] = acc
        depth[r] = dep


@njit(parallel=True, cache=True)
def _composite_bwd(sigmas, rgbs, ts, dts, offsets, v_rgb, v_opacity, v_depth, v_sigmas, v_rgbs):
    # dL/dtau_i = T_{i+1} g_i - sum_{k>i} w_k g_k with g_k = dL/dw_k; the suffix sum runs backwards
    for r in prange(offsets.shape[0] - 1):
        start, end = offsets[r], offsets[r + 1]
        total = np.float32(0.0)
        T = np.float32(1.0)
        for s in range(start, end):  # forward: the total of w_k g_k, and T after the last sample
            decay = np.exp(-sigmas[s] * dts[s])
            w = T * (np.float32(1.0) - decay)
            g = v_rgb[r, 0] * rgbs[s, 0] + v_rgb[r, 1] * rgbs[s, 1] + v_rgb[r, 2] * rgbs[s, 2]
            g += v_opacity[r] + v_depth[r] * ts[s]
            total += w * g
            v_rgbs[s, 0] = w * v_rgb[r, 0]
            v_rgbs[s, 1] = w * v_rgb[r, 1]
            v_rgbs[s, 2] = w * v_rgb[r, 2]
            T = T * decay
        T = np.float32(1.0)
        prefix = np.float32(0.0)
        for s in range(start, end):
            decay = np.exp(-sigmas[s] * dts[s])
            w = T * (np.float32(1.0) - decay)
            g = v_rgb[r, 0] * rgbs[s, 0] + v_rgb[r, 1] * rgbs[s, 1] + v_rgb[r, 2] * rgbs[s, 2]
            g += v_opacity[r] + v_depth[r] * ts[s]
            prefix += w * g
            T = T * decay
            v_sigmas[s] = dts[s] * (T * g - (total - prefix))


def _offsets(ray_indices: torch.Tensor, n_rays: int) -> np.ndarray:
    counts = np.bincount(_np(ray_indices), minlength=n_rays)
    offsets = np.zeros(n_rays + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets


def sample_weights(sigmas, dts, ray_indices, transmittance):
    """See `march_ref.sample_weights`."""
    n = sigmas.shape[0]
    offsets = _offsets(ray_indices, transmittance.shape[0])
    weights, t_before = np.empty(n, np.float32), np.empty(n, np.float32)
    t_after = np.empty(transmittance.shape[0], np.float32)
    _weights(_np(sigmas.float()), _np(dts.float()), offsets, _np(transmittance.float()), weights, t_before, t_after)
    return torch.from_numpy(weights), torch.from_numpy(t_before), torch.from_numpy(t_after)


class _Composite(torch.autograd.Function):
    @staticmethod
    def forward(ctx, sigmas, rgbs, ts, dts, ray_indices, n_rays):
        offsets = _offsets(ray_indices, n_rays)
        s, c, t, dt = _np(sigmas.float()), _np(rgbs.float()), _np(ts.float()), _np(dts.float())
        rgb = np.empty((n_rays, 3), np.float32)
        opacity, depth = np.empty(n_rays, np.float32), np.empty(n_rays, np.float32)
        _composite_fwd(s, c, t, dt, offsets, rgb, opacity, depth)
        ctx.save_for_backward(sigmas, rgbs, ts, dts)
        ctx.offsets = offsets
        return torch.from_numpy(rgb), torch.from_numpy(opacity), torch.from_numpy(depth)

    @staticmethod
    def backward(ctx, v_rgb, v_opacity, v_depth):
        sigmas, rgbs, ts, dts = ctx.saved_tensors
        v_sigmas = np.empty(sigmas.shape[0], np.float32)
        v_rgbs = np.empty((sigmas.shape[0], 3), np.float32)
        _composite_bwd(_np(sigmas.float()), _np(rgbs.float()), _np(ts.float()), _np(dts.float()), ctx.offsets,
                       _np(v_rgb.float()), _np(v_opacity.float()), _np(v_depth.float()), v_sigmas, v_rgbs)
        return torch.from_numpy(v_sigmas), torch.from_numpy(v_rgbs), None, None, None, None


def composite(sigmas, rgbs, ts, dts, ray_indices, n_rays):
    """See `march_ref.composite` (differentiable in sigmas and rgbs)."""
    return _Composite.apply(sigmas, rgbs, ts, dts, ray_indices, n_rays)
