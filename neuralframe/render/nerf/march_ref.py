"""Pure-PyTorch references of ray marching and volume rendering over packed samples: readable,
differentiable, no compiled code. `march_cpu.py` has the same signatures and is tested against these.
"""

from __future__ import annotations

import torch


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
