"""Coarser levels of detail of a splat scene, for rendering while the camera moves.

    levels = detail_levels(gaussians, 3)        # [the scene, 1/2 of its Gaussians, 1/4]
    coarse = levels[level_for(gaussians.n, 32768)]

A low-resolution frame spends most of a CPU rasterizer's time per Gaussian, not per pixel (projection,
sorting, binning, and each Gaussian's setup in every tile it touches): halving the bundled scene's frame
size saves little (benchmarks/viewer.json records the viewer with and without levels). Fewer, larger
Gaussians are what makes such a frame cheaper. Each level merges the Gaussians of the one before in
pairs of spatial neighbours (pairs along a Morton curve through their centres), moment-matched as
hierarchical 3DGS merges its nodes (Kerbl et al. 2024): the merged Gaussian has the pair's mean and
covariance (the weighted covariances plus the spread of the centres), the weights being each Gaussian's
opacity times its cross-section (det(Sigma)^(1/3)); neighbours too far apart for their sizes are kept as
they are; the merged opacity keeps the pair's opacity-weighted cross-section (clamped below 1) and its
colour is the weighted mean of the SH coefficients. A merged level is an approximation meant for frames
whose pixels are several times larger than the scene's Gaussians; the viewer renders with all Gaussians
once the camera stops.

Building a level of a large scene takes seconds: `coarser` calls `neuralframe.render.interrupt.check()`
between its steps, so the viewer's background build stops within a step when the window closes.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from neuralframe.render import interrupt
from neuralframe.render.splat.gaussians import Gaussians

MAX_OPACITY = 0.99
# Neighbours on the Morton curve that are further apart than this many times the sum of their largest standard
# deviations are not merged (the curve jumps between distant cells at its cell borders: merging across a jump
# would draw a long needle between two specks).
MERGE_REACH = 3.0


def _morton(points: np.ndarray, bits: int = 10) -> np.ndarray:
    """Morton (Z-order) codes of points [N, 3] quantised to `bits` per axis within their bounding box."""
    lo, hi = points.min(0), points.max(0)
    q = ((points - lo) / np.maximum(hi - lo, 1e-12) * ((1 << bits) - 1)).astype(np.uint64)
    code = np.zeros(len(points), np.uint64)
    for b in range(bits):
        for axis in range(3):
            code |= ((q[:, axis] >> np.uint64(b)) & np.uint64(1)) << np.uint64(3 * b + axis)
    return code


def _rotation(quats: torch.Tensor) -> torch.Tensor:
    q = quats / quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], -1).reshape(*q.shape[:-1], 3, 3)


def _quaternion(R: torch.Tensor) -> torch.Tensor:
    """(w, x, y, z) of rotation matrices [N, 3, 3] (the largest of the four candidates, for stability)."""
    m00, m11, m22 = R[:, 0, 0], R[:, 1, 1], R[:, 2, 2]
    cand = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], 1)
    best = cand.argmax(1)
    s = torch.sqrt(cand.gather(1, best[:, None])[:, 0].clamp_min(1e-12)) * 2  # 4 * the largest component
    q = torch.empty(R.shape[0], 4, dtype=R.dtype)
    r21, r12, r02, r20, r10, r01 = R[:, 2, 1], R[:, 1, 2], R[:, 0, 2], R[:, 2, 0], R[:, 1, 0], R[:, 0, 1]
    options = [
        torch.stack([s / 4, (r21 - r12) / s, (r02 - r20) / s, (r10 - r01) / s], 1),
        torch.stack([(r21 - r12) / s, s / 4, (r01 + r10) / s, (r02 + r20) / s], 1),
        torch.stack([(r02 - r20) / s, (r01 + r10) / s, s / 4, (r12 + r21) / s], 1),
        torch.stack([(r10 - r01) / s, (r02 + r20) / s, (r12 + r21) / s, s / 4], 1),
    ]
    for k, option in enumerate(options):
        rows = best == k
        q[rows] = option[rows]
    return q


def coarser(g: Gaussians, max_pairs: int | None = None) -> Gaussians:
    """The next level: the Gaussians of `g` merged in pairs of spatial neighbours (see the module docstring);
    neighbours further apart than `MERGE_REACH` times their sizes stay as they are. With `max_pairs`, only
    that many pairs merge, the closest for their sizes first (`neuralframe convert --max-gaussians`)."""
    n = g.n
    if n < 2:
        return g
    g = g.cpu()
    means = g.means.double()
    order = torch.from_numpy(np.argsort(_morton(means.numpy()), kind="stable").astype(np.int64))
    interrupt.check()
    pairs = n // 2
    a, b = order[0:2 * pairs:2], order[1:2 * pairs:2]
    reach = MERGE_REACH * (g.scales[a].double().max(1).values.exp() + g.scales[b].double().max(1).values.exp())
    gap = (means[a] - means[b]).norm(dim=1) / reach
    near = gap <= 1.0
    if max_pairs is not None and int(near.sum()) > max_pairs:
        near = torch.zeros_like(near)
        near[torch.argsort(gap, stable=True)[:max(max_pairs, 0)]] = True
    rest = torch.cat([a[~near], b[~near], order[2 * pairs:]])  # too far apart, and an odd one out: kept as they are
    a, b = a[near], b[near]
    interrupt.check()

    R = _rotation(g.quats.double())
    s2 = torch.exp(2 * g.scales.double())
    cov = R @ torch.diag_embed(s2) @ R.transpose(1, 2)  # [N, 3, 3]
    opacity = torch.sigmoid(g.opacities.double())
    section = torch.exp(2 * g.scales.double().sum(1) / 3)  # det(Sigma)^(1/3): the Gaussian's cross-section
    weight = opacity * section
    interrupt.check()

    wa, wb = weight[a], weight[b]
    total = (wa + wb).clamp_min(1e-30)
    ta, tb = wa / total, wb / total
    mean = ta[:, None] * means[a] + tb[:, None] * means[b]
    da, db = means[a] - mean, means[b] - mean
    merged = (ta[:, None, None] * (cov[a] + da[:, :, None] * da[:, None, :])
              + tb[:, None, None] * (cov[b] + db[:, :, None] * db[:, None, :]))
    merged = 0.5 * (merged + merged.transpose(1, 2))
    interrupt.check()
    values, vectors = torch.linalg.eigh(merged)
    interrupt.check()
    values = values.clamp_min(1e-18)
    flip = torch.linalg.det(vectors) < 0  # a proper rotation
    vectors[flip, :, 0] = -vectors[flip, :, 0]
    section_m = torch.exp(torch.log(values).sum(1) / 3)
    opacity_m = ((wa + wb) / section_m).clamp(1e-6, MAX_OPACITY)
    interrupt.check()
    sh_m = ta[:, None, None] * g.sh[a].double()  # the pairs' coefficients only: not all of them in float64
    interrupt.check()
    sh_m += tb[:, None, None] * g.sh[b].double()
    interrupt.check()

    out = Gaussians(
        torch.cat([mean, means[rest]]).float(),
        torch.cat([_quaternion(vectors), g.quats.double()[rest]]).float(),
        torch.cat([0.5 * torch.log(values), g.scales.double()[rest]]).float(),
        torch.cat([torch.logit(opacity_m), g.opacities.double()[rest]]).float(),
        torch.cat([sh_m, g.sh[rest].double()]).float(),
        g.antialiased,
    )
    return out


def detail_levels(g: Gaussians, count: int) -> list[Gaussians]:
    """[g, coarser(g), coarser(coarser(g)), ...]: `count` levels in all (fewer when merging stops early)."""
    levels = [g]
    for _ in range(max(count, 1) - 1):
        nxt = coarser(levels[-1])
        if nxt.n == levels[-1].n:
            break
        levels.append(nxt)
    return levels


def level_for(n: int, budget: int) -> int:
    """The level that renders about `budget` Gaussians (each level at most halves the count); 0 for no budget."""
    if budget <= 0 or n <= budget:
        return 0
    return int(math.ceil(math.log2(n / budget)))
