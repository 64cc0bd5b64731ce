"""Pure-PyTorch reference of the hash-grid encoding: readable, differentiable, no compiled code.

`hashgrid_cpu.py` has the same signatures and is tested against it.
"""

from __future__ import annotations

import torch

from neuralframe.render.nerf.hashgrid import PRIMES

U32 = 0xFFFFFFFF  # grid coordinates and hashes wrap as uint32, as in tiny-cuda-nn


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
        g = [(grid[:, dim] + bits[dim]) & U32 for dim in range(3)]
        if dense:
            index = (g[0] + g[1] * resolution + g[2] * resolution * resolution) & U32
        else:
            index = ((g[0] * PRIMES[0]) ^ (g[1] * PRIMES[1]) ^ (g[2] * PRIMES[2])) & U32
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
