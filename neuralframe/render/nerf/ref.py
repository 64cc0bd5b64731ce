"""Pure-PyTorch references of the NeRF kernels: readable, differentiable, no compiled code.

The fast kernels in `cpu.py` and `march_cpu.py` have the same signatures and are tested against these.
"""

from __future__ import annotations

import torch

from neuralframe.render.nerf.hashgrid import PRIMES

_U32 = 0xFFFFFFFF


def _level_lookup(x, scale, resolution, size):  # x [N, 3] -> indices [N, 8], weights [N, 8]
    # fmaf(scale, x, 0.5) rounds once: the float64 product and sum are exact before the one rounding
    pos = (x.double() * float(scale) + 0.5).float()
    grid = torch.floor(pos)
    frac = pos - grid
    grid = grid.long()
    dense = resolution**3 <= size
    indices, weights = [], []
    for corner in range(8):
        bits = [(corner >> dim) & 1 for dim in range(3)]
        weight = torch.ones_like(frac[:, 0])
        for dim in range(3):
            weight = weight * (frac[:, dim] if bits[dim] else 1.0 - frac[:, dim])
        g = [(grid[:, dim] + bits[dim]) & _U32 for dim in range(3)]
        if dense:
            index = (g[0] + g[1] * resolution + g[2] * resolution * resolution) & _U32
        else:
            index = ((g[0] * PRIMES[0]) ^ (g[1] * PRIMES[1]) ^ (g[2] * PRIMES[2])) & _U32
        indices.append(index % size)
        weights.append(weight)
    return torch.stack(indices, 1), torch.stack(weights, 1)


def hashgrid_forward(
    x: torch.Tensor,  # [N, 3]
    params: torch.Tensor,  # [T, F]
    offsets: torch.Tensor,  # [L + 1] int64
    scales: torch.Tensor,  # [L] float32
    resolutions: torch.Tensor,  # [L] int64
) -> torch.Tensor:  # [N, L * F]
    """Hash-grid features, level by level; differentiable in x and params through autograd."""
    assert x.dim() == 2 and x.shape[1] == 3, x.shape
    assert params.dim() == 2 and offsets.numel() == scales.numel() + 1
    out = []
    for level in range(scales.numel()):
        start, end = int(offsets[level]), int(offsets[level + 1])
        index, weight = _level_lookup(x, float(scales[level]), int(resolutions[level]), end - start)
        values = params[start + index]  # [N, 8, F]
        out.append((weight.unsqueeze(-1) * values).sum(1))
    return torch.cat(out, 1)


def hashgrid_backward(
    x: torch.Tensor,  # [N, 3]
    params: torch.Tensor,  # [T, F]
    offsets: torch.Tensor,
    scales: torch.Tensor,
    resolutions: torch.Tensor,
    v_features: torch.Tensor,  # [N, L * F]
    need_x: bool = False,
) -> tuple[torch.Tensor | None, torch.Tensor]:  # v_x [N, 3] or None, v_params [T, F]
    """Gradients of the forward above, by autograd (the definition the fast kernels must match)."""
    with torch.enable_grad():
        xg = x.detach().requires_grad_(need_x)
        pg = params.detach().requires_grad_(True)
        features = hashgrid_forward(xg, pg, offsets, scales, resolutions)
        inputs = [pg, xg] if need_x else [pg]
        grads = torch.autograd.grad(features, inputs, v_features)
    return (grads[1] if need_x else None), grads[0]


# ---- ray marching and volume rendering over packed samples ----


def march(
    rays_o: torch.Tensor,  # [R, 3]
    rays_d: torch.Tensor,  # [R, 3] unit
    t_min: torch.Tensor,  # [R]
    t_max: torch.Tensor,  # [R]
    occupancy: torch.Tensor,  # [G, G, G] bool
    aabb: torch.Tensor,  # [6]
    step: float,
    u: torch.Tensor,  # [R] in [0, 1): offset of the sample inside its step
    k_start: torch.Tensor,  # [R] int64: first step index to consider
    max_samples: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Samples at t = t_min + (k + u) * step, k >= k_start, t < t_max, in occupied cells only.

    A ray stops after `max_samples` samples (resume it from `k_end`) or when t reaches t_max (done).
    Returns ray_indices [S] int64 (sorted), t [S] float32, done [R] bool, k_end [R] int64 (-1 when done).
    """
    n_rays, grid = rays_o.shape[0], occupancy.shape[0]
    lo, hi = aabb[:3], aabb[3:]
    inv = grid / (hi - lo)
    if n_rays == 0:
        empty = torch.zeros(0, dtype=torch.int64)
        return empty, torch.zeros(0), torch.zeros(0, dtype=torch.bool), empty
    span = torch.ceil((t_max - t_min) / step).clamp(min=0).long() + 1 - k_start
    n_k = max(int(span.max()), 1)
    k = k_start[:, None] + torch.arange(n_k)[None, :]  # [R, K]
    t = t_min[:, None] + (k.float() + u[:, None]) * step
    inside = t < t_max[:, None]
    pos = rays_o[:, None, :] + t[..., None] * rays_d[:, None, :]
    cell = torch.floor((pos - lo) * inv).long()
    in_grid = ((cell >= 0) & (cell < grid)).all(-1)
    cell = cell.clamp(0, grid - 1)
    occupied = occupancy[cell[..., 0], cell[..., 1], cell[..., 2]] & in_grid & inside
    rank = torch.cumsum(occupied.long(), 1)
    keep = occupied & (rank <= max_samples)
    total = rank[:, -1]
    done = total < max_samples
    last = torch.where(keep, k, torch.full_like(k, -2)).max(1).values  # k of the last kept sample
    k_end = torch.where(done, torch.full_like(last, -1), last + 1)
    rows, cols = torch.nonzero(keep, as_tuple=True)
    return rows, t[rows, cols], done, k_end


def _exclusive_segment_cumsum(values: torch.Tensor, ray_indices: torch.Tensor, n_rays: int) -> torch.Tensor:
    # float64 so that one long cumulative sum over all rays loses nothing when a ray's start is removed
    inclusive = torch.cumsum(values.double(), 0)
    exclusive = inclusive - values.double()
    counts = torch.bincount(ray_indices, minlength=n_rays)
    starts = torch.cumsum(counts, 0) - counts
    base = torch.zeros(n_rays, dtype=torch.float64)
    nonempty = counts > 0
    base[nonempty] = exclusive[starts[nonempty]]
    return (exclusive - base[ray_indices]).to(values.dtype)


def sample_weights(
    sigmas: torch.Tensor,  # [S]
    dts: torch.Tensor,  # [S]
    ray_indices: torch.Tensor,  # [S] sorted
    transmittance: torch.Tensor,  # [R] transmittance in front of each ray's first sample
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # weights [S], T before each sample [S], T after [R]
    """Volume-rendering weights w = T * (1 - exp(-sigma * dt)) of packed samples, front to back."""
    n_rays = transmittance.shape[0]
    tau = sigmas * dts
    t_before = transmittance[ray_indices] * torch.exp(-_exclusive_segment_cumsum(tau, ray_indices, n_rays))
    weights = t_before * (1.0 - torch.exp(-tau))
    total = torch.zeros(n_rays, dtype=tau.dtype).index_add(0, ray_indices, tau)
    t_after = transmittance * torch.exp(-total)
    return weights, t_before, t_after


def composite(
    sigmas: torch.Tensor,  # [S]
    rgbs: torch.Tensor,  # [S, 3]
    ts: torch.Tensor,  # [S]
    dts: torch.Tensor,  # [S]
    ray_indices: torch.Tensor,  # [S] sorted
    n_rays: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # rgb [R, 3], opacity [R], depth [R]
    """Volume rendering of packed samples: sum of w * rgb, sum of w, sum of w * t per ray."""
    assert sigmas.dim() == 1 and rgbs.shape == (sigmas.shape[0], 3)
    tau = sigmas * dts
    t_before = torch.exp(-_exclusive_segment_cumsum(tau, ray_indices, n_rays))
    weights = t_before * (1.0 - torch.exp(-tau))
    rgb = torch.zeros(n_rays, 3, dtype=rgbs.dtype).index_add(0, ray_indices, weights[:, None] * rgbs)
    opacity = torch.zeros(n_rays, dtype=sigmas.dtype).index_add(0, ray_indices, weights)
    depth = torch.zeros(n_rays, dtype=sigmas.dtype).index_add(0, ray_indices, weights * ts)
    return rgb, opacity, depth
