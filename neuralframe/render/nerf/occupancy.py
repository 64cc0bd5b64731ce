"""The occupancy grid: which cells of the scene box may hold density, so marching skips the rest.

As in instant-ngp: a 128^3 grid of optical thickness (density * marching step) is refreshed during
training every few steps from the field's density at a random point in sampled cells, keeping
max(decayed old value, new value); during a warm-up every cell is sampled, afterwards a quarter of
random cells and a quarter drawn from the occupied ones (fewer here, for the CPU: see `train.py`).
The first update measures every cell. A cell is occupied while its value exceeds
min(mean, 0.01).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from neuralframe.backend.memo import LastResult

THRESHOLD = 0.01  # instant-ngp's NERF_MIN_OPTICAL_THICKNESS


def _occupied_box(mask: torch.Tensor, aabb: torch.Tensor) -> torch.Tensor:
    n = mask.shape[0]
    lo, hi = aabb[:3], aabb[3:]
    bounds = []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        cells = torch.nonzero(mask.any(dim=others[1]).any(dim=others[0])).squeeze(1)
        if cells.numel() == 0:
            return torch.cat([hi, lo])
        bounds.append((int(cells[0]), int(cells[-1]) + 1))
    first = torch.tensor([b[0] for b in bounds], dtype=torch.float32)
    last = torch.tensor([b[1] for b in bounds], dtype=torch.float32)
    size = (hi - lo) / n
    return torch.cat([lo + first * size, lo + last * size])


class OccupancyGrid(nn.Module):
    """A cubic grid of `resolution`^3 cells over `aabb`; `mask` is what marching reads."""

    def __init__(self, aabb: torch.Tensor, resolution: int = 128):
        super().__init__()
        self.resolution = int(resolution)
        self.register_buffer("aabb", torch.as_tensor(aabb, dtype=torch.float32).clone(), persistent=False)
        n = self.resolution
        # Everything starts occupied: nothing is known yet.
        self.register_buffer("density", torch.full((n, n, n), 1.0))
        self.register_buffer("mask", torch.ones((n, n, n), dtype=torch.bool))
        self.register_buffer("updates", torch.zeros((), dtype=torch.int64))
        self._box = LastResult(_occupied_box)

    def cell_points(self, cells: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A uniformly random world point in each flat cell index [M] -> [M, 3]."""
        n = self.resolution
        ijk = torch.stack([cells // (n * n), (cells // n) % n, cells % n], -1).float()
        jitter = torch.rand(cells.shape[0], 3, generator=generator)
        lo, hi = self.aabb[:3], self.aabb[3:]
        return lo + (ijk + jitter) / n * (hi - lo)

    @torch.no_grad()
    def update(
        self,
        density_fn: Callable[[torch.Tensor], torch.Tensor],  # world points [M, 3] -> density [M]
        step: float,
        warmup: bool,
        decay: float = 0.95,
        n_samples: int | None = None,
        generator: torch.Generator | None = None,
        chunk: int = 1 << 14,
    ) -> None:
        """Refresh a subset of cells from `density_fn` (all of them when `n_samples` is None in warm-up)."""
        flat = self.density.view(-1)
        total = flat.numel()
        first = int(self.updates) == 0
        if first:  # the initial "all occupied" carries no information: measure every cell once
            cells = torch.arange(total)
        elif warmup:
            count = total if n_samples is None else min(n_samples, total)
            cells = torch.randperm(total, generator=generator)[:count]
        else:
            count = total // 4 if n_samples is None else n_samples
            uniform = torch.randint(total, (count,), generator=generator)
            occupied = torch.nonzero(self.mask.view(-1)).squeeze(1)
            if occupied.numel():
                pick = torch.randint(occupied.numel(), (count,), generator=generator)
                cells = torch.cat([uniform, occupied[pick]])
            else:
                cells = uniform
        values = torch.empty(cells.shape[0])
        for i in range(0, cells.shape[0], chunk):
            points = self.cell_points(cells[i : i + chunk], generator)
            values[i : i + chunk] = density_fn(points).float() * step
        new = torch.zeros_like(flat)
        new.scatter_reduce_(0, cells, values, reduce="amax", include_self=False)
        if first:
            self.density.copy_(new.view_as(self.density))
        else:
            self.density.copy_(torch.maximum(self.density * decay, new.view_as(self.density)))
        self.updates += 1
        self.refresh_mask()

    def refresh_mask(self) -> None:
        threshold = min(float(self.density.mean()), THRESHOLD)
        self.mask.copy_(self.density > threshold)

    def occupied_box(self) -> torch.Tensor:
        """[6] world box (min, max) around the occupied cells; an empty box (min > max) when none is.
        Recomputed only after the mask changes."""
        return self._box(self.mask, self.aabb)

    @property
    def occupied_fraction(self) -> float:
        return float(self.mask.float().mean())
