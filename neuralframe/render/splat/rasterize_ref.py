"""Reference Gaussian-splat rasterizer in plain PyTorch: readable, differentiable, no kernel calls.

It defines what every implementation (`rasterize_cpu.py`, `rasterize_cuda.py`) must compute, with gsplat's semantics:

1. Projection (EWA splatting). Means and covariances go to camera space; the perspective Jacobian is
   evaluated at the mean with x/z and y/z clamped to 1.3 x the field of view; the 2D covariance is
   dilated by 0.3 pixel^2 (a low-pass filter). With `antialiased=True` the opacity is multiplied by
   sqrt(det(cov2d) / det(cov2d + 0.3 I)) (gsplat's compensation, Mip-Splatting's 2D filter).
2. Culling: depth outside (near, far), opacity below 1/255, or a footprint that misses the image.
3. Colour: spherical harmonics up to degree 3 evaluated at the direction from the camera centre to
   the mean, then +0.5 and clamped at 0 (INRIA 3DGS, gsplat).
4. Tiles: 16 x 16 pixel tiles; a Gaussian is binned to the tiles its opacity-aware bounding box
   (gsplat >= 1.5: min(3.33, sqrt(2 ln(255 opacity))) standard deviations per axis) overlaps. That box
   holds every pixel where the Gaussian's alpha can reach 1/255, so the image does not depend on the
   tiling; tiles only bound the work.
5. Blending, per pixel centre (x + 0.5, y + 0.5), front to back in depth order:
   alpha = min(0.99, opacity * exp(-0.5 d^T conic d)); skipped when below 1/255; the pixel stops
   before a Gaussian that would bring its transmittance T to 1e-4 or below. colour = sum T_i a_i c_i
   + T_final * background; alpha = 1 - T_final; depth = sum T_i a_i z_i / alpha (normalised
   expected depth, gsplat's "ED"; 0 where alpha is 0).

Precision: the per-Gaussian stage (projection, culling, SH) runs in float64 and is rounded once to
float32, so that implementations agree on it to the last bit; blending runs in float32. gsplat itself
clamps alpha at 0.999 where INRIA uses 0.99; we follow INRIA (`ALPHA_MAX`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from neuralframe.render.camera import Camera, quat_to_rotmat
from neuralframe.render.output import RenderOutput
from neuralframe.render.splat.gaussians import SH_C0, Gaussians

TILE = 16
EPS2D = 0.3  # pixel^2 added to every projected covariance
CLIP_FOV = 1.3  # the Jacobian is evaluated with x/z, y/z clamped to this many half fields of view
EXTEND_MAX = 3.33  # standard deviations covered by the bounding box at most
# Thresholds as exact float32 values, so comparisons mean the same in every implementation.
ALPHA_MAX = float(np.float32(0.99))
ALPHA_MIN = float(np.float32(1.0 / 255.0))
T_MIN = float(np.float32(1e-4))

# Real spherical-harmonic basis constants (as in INRIA 3DGS).
C0 = SH_C0
C1 = 0.4886025119029199
C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
      -0.4570457994644658, 1.445305721320277, -0.5900435899266435)


def sh_basis(dirs: torch.Tensor, degree: int) -> torch.Tensor:  # [..., 3] unit -> [..., (degree+1)^2]
    """The real SH basis functions Y_k at unit directions `dirs`."""
    x, y, z = dirs.unbind(-1)
    out = [torch.full_like(x, C0)]
    if degree >= 1:
        out += [-C1 * y, C1 * z, -C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        out += [C2[0] * x * y, C2[1] * y * z, C2[2] * (2 * zz - xx - yy), C2[3] * x * z, C2[4] * (xx - yy)]
    if degree >= 3:
        out += [C3[0] * y * (3 * xx - yy), C3[1] * x * y * z, C3[2] * y * (4 * zz - xx - yy),
                C3[3] * z * (2 * zz - 3 * xx - 3 * yy), C3[4] * x * (4 * zz - xx - yy),
                C3[5] * z * (xx - yy), C3[6] * x * (xx - 3 * yy)]
    return torch.stack(out, -1)


def sh_to_rgb(sh: torch.Tensor, dirs: torch.Tensor, degree: int) -> torch.Tensor:  # [N, K, 3], [N, 3] -> [N, 3]
    """View-dependent colour: max(sum_k sh_k Y_k(dir) + 0.5, 0), using the first (degree+1)^2 terms."""
    k = (degree + 1) ** 2
    basis = sh_basis(F.normalize(dirs, dim=-1), degree)  # [N, k]
    return torch.clamp_min((basis[..., None] * sh[:, :k]).sum(-2) + 0.5, 0.0)


@dataclass
class Projection:
    """Per-Gaussian 2D quantities (float64) of the Gaussians `Gaussians[ids]`."""

    means2d: torch.Tensor  # [M, 2] pixel coordinates of the projected means
    cov2d: torch.Tensor  # [M, 2, 2] dilated 2D covariance
    conics: torch.Tensor  # [M, 3] its inverse (a, b, c) = [[a, b], [b, c]]
    opacities: torch.Tensor  # [M] after sigmoid (and compensation when antialiased)
    depths: torch.Tensor  # [M] camera-space z


def project(means: torch.Tensor, quats: torch.Tensor, scales: torch.Tensor, logits: torch.Tensor,
            camera: Camera, antialiased: bool) -> Projection:
    """EWA projection of Gaussians (any subset of rows) in float64.

    Args:
        means: [M, 3], quats: [M, 4] (w, x, y, z), scales: [M, 3] (log), logits: [M] opacity logits.
    """
    f64 = torch.float64
    R, t = camera.R.to(means.device), camera.t.to(means.device)
    p = means.to(f64) @ R.T + t  # [M, 3] camera space
    rot = quat_to_rotmat(F.normalize(quats.to(f64), dim=-1))  # [M, 3, 3]
    M = R @ (rot * torch.exp(scales.to(f64))[:, None, :])  # [M, 3, 3] camera-space R S
    cov = M @ M.transpose(1, 2)  # [M, 3, 3]

    x, y, z = p.unbind(-1)
    fx, fy, cx, cy = camera.fx, camera.fy, camera.cx, camera.cy
    W, H = camera.width, camera.height
    # The Jacobian is evaluated with the mean clamped to a little beyond the field of view, so that
    # Gaussians far off to the side do not get absurdly stretched footprints.
    lim_x_pos = (W - cx) / fx + EPS2D * (0.5 * W / fx)
    lim_x_neg = cx / fx + EPS2D * (0.5 * W / fx)
    lim_y_pos = (H - cy) / fy + EPS2D * (0.5 * H / fy)
    lim_y_neg = cy / fy + EPS2D * (0.5 * H / fy)
    tx = z * torch.clamp(x / z, -lim_x_neg, lim_x_pos)
    ty = z * torch.clamp(y / z, -lim_y_neg, lim_y_pos)
    zero = torch.zeros_like(z)
    J = torch.stack([fx / z, zero, -fx * tx / (z * z), zero, fy / z, -fy * ty / (z * z)], -1).reshape(-1, 2, 3)
    cov2d = J @ cov @ J.transpose(1, 2)  # [M, 2, 2]
    det_orig = cov2d[:, 0, 0] * cov2d[:, 1, 1] - cov2d[:, 0, 1] * cov2d[:, 1, 0]
    cov2d = cov2d + EPS2D * torch.eye(2, dtype=f64, device=means.device)
    a, b, c = cov2d[:, 0, 0], 0.5 * (cov2d[:, 0, 1] + cov2d[:, 1, 0]), cov2d[:, 1, 1]
    det = a * c - b * b
    opac = torch.sigmoid(logits.to(f64))
    if antialiased:
        opac = opac * torch.sqrt(torch.clamp(det_orig / det, min=1e-12))
    conics = torch.stack([c / det, -b / det, a / det], -1)
    means2d = torch.stack([fx * x / z + cx, fy * y / z + cy], -1)
    return Projection(means2d, cov2d, conics, opac, z)


@torch.no_grad()
def visible(g: Gaussians, camera: Camera, antialiased: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the Gaussians that reach the image, front to back, and their tile rectangles.

    Returns:
        ids: [M] int64 indices into `g`, sorted by float32 depth (stable: ties keep index order).
        rects: [M, 4] int64 half-open tile ranges (x0, y0, x1, y1).
    """
    proj = project(g.means, g.quats, g.scales, g.opacities, camera, antialiased)
    z, opac = proj.depths, proj.opacities
    mx, my = proj.means2d.unbind(-1)
    extend = torch.clamp(torch.sqrt(2.0 * torch.log(torch.clamp(opac * 255.0, min=1.0))), max=EXTEND_MAX)
    rx = torch.ceil(extend * torch.sqrt(proj.cov2d[:, 0, 0]))
    ry = torch.ceil(extend * torch.sqrt(proj.cov2d[:, 1, 1]))
    W, H = camera.width, camera.height
    det = proj.cov2d[:, 0, 0] * proj.cov2d[:, 1, 1] - proj.cov2d[:, 0, 1] * proj.cov2d[:, 1, 0]
    # Written as "keep" conditions so that NaNs (from Gaussians at z = 0) are dropped.
    keep = ((z > camera.near) & (z < camera.far) & (det > 0) & (opac >= ALPHA_MIN)
            & (mx + rx > 0) & (mx - rx < W) & (my + ry > 0) & (my - ry < H))
    ids = keep.nonzero().flatten()
    order = torch.sort(z[ids].to(torch.float32), stable=True).indices
    ids = ids[order]
    tiles_x, tiles_y = _tiles(camera)
    mx, my, rx, ry = mx[ids], my[ids], rx[ids], ry[ids]
    rects = torch.stack([
        torch.clamp(torch.floor((mx - rx) / TILE), 0, tiles_x),
        torch.clamp(torch.floor((my - ry) / TILE), 0, tiles_y),
        torch.clamp(torch.ceil((mx + rx) / TILE), 0, tiles_x),
        torch.clamp(torch.ceil((my + ry) / TILE), 0, tiles_y),
    ], -1).to(torch.int64)
    return ids, rects


def _tiles(camera: Camera) -> tuple[int, int]:
    return math.ceil(camera.width / TILE), math.ceil(camera.height / TILE)


def tile_lists(rects: torch.Tensor, tiles_x: int, tiles_y: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For every tile, the (depth-ordered) Gaussians binned to it.

    Args:
        rects: [M, 4] tile ranges of Gaussians already sorted front to back.

    Returns:
        gauss: [P] int64 indices into the M Gaussians, grouped by tile, front to back within a tile.
        offsets: [tiles_y * tiles_x + 1] int64: tile t owns gauss[offsets[t]:offsets[t + 1]].
    """
    x0, y0, x1, y1 = rects.unbind(-1)
    w, h = (x1 - x0).clamp(min=0), (y1 - y0).clamp(min=0)
    counts = w * h
    gauss = torch.repeat_interleave(torch.arange(len(rects)), counts)
    first = torch.cumsum(counts, 0) - counts
    local = torch.arange(len(gauss)) - first[gauss]  # position inside the Gaussian's rectangle
    tx = x0[gauss] + local % w[gauss].clamp(min=1)
    ty = y0[gauss] + local // w[gauss].clamp(min=1)
    tile = ty * tiles_x + tx
    # Sorting by (tile, depth rank): Gaussians are already in depth order, so a stable sort by tile.
    order = torch.sort(tile, stable=True).indices
    gauss, tile = gauss[order], tile[order]
    per_tile = torch.bincount(tile, minlength=tiles_x * tiles_y)
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64), torch.cumsum(per_tile, 0)])
    return gauss, offsets


def rasterize(g: Gaussians, camera: Camera, *, sh_degree: int | None = None, background=None,
              antialiased: bool = False, max_elements: int = 1 << 22) -> RenderOutput:
    """Render `g` from `camera`; differentiable with respect to every tensor of `g`.

    Args:
        g: the scene (float32 tensors on any device torch supports).
        camera: the view.
        sh_degree: SH degree to evaluate (default: all the scene has).
        background: [3] colour composited under the splats (default black).
        antialiased: gsplat's antialiased mode (opacity compensation for the 0.3 dilation).
        max_elements: pixel x Gaussian evaluations held in memory at once (bounds peak memory).

    Returns:
        RenderOutput with rgb [H, W, 3], alpha [H, W], depth [H, W] (float32).
    """
    degree = g.sh_degree if sh_degree is None else sh_degree
    device = g.means.device
    W, H = camera.width, camera.height
    tiles_x, tiles_y = _tiles(camera)
    n_tiles = tiles_x * tiles_y

    ids, rects = visible(g, camera, antialiased)
    proj = project(g.means[ids], g.quats[ids], g.scales[ids], g.opacities[ids], camera, antialiased)
    cam_pos = camera.position.to(device)
    colors = sh_to_rgb(g.sh[ids].to(torch.float64), g.means[ids].to(torch.float64) - cam_pos, degree)
    # One rounding to float32 for everything the blending stage reads.
    means2d = proj.means2d.to(torch.float32)
    conics = proj.conics.to(torch.float32)
    opac = proj.opacities.to(torch.float32)
    depths = proj.depths.to(torch.float32)
    colors = colors.to(torch.float32)

    gauss, offsets = tile_lists(rects.cpu(), tiles_x, tiles_y)
    gauss, offsets = gauss.to(device), offsets.tolist()
    counts = [offsets[t + 1] - offsets[t] for t in range(n_tiles)]

    # Pixel centres of one tile, relative to its corner: [256, 2] as (x, y).
    iy, ix = torch.meshgrid(torch.arange(TILE), torch.arange(TILE), indexing="ij")
    local_xy = torch.stack([ix.flatten(), iy.flatten()], -1).to(device)

    out_rgb = torch.zeros(n_tiles, TILE * TILE, 3, device=device)
    out_t = torch.ones(n_tiles, TILE * TILE, device=device)
    out_depth = torch.zeros(n_tiles, TILE * TILE, device=device)
    busy = [t for t in range(n_tiles) if counts[t] > 0]
    chunks_rgb, chunks_t, chunks_depth, chunk_tiles = [], [], [], []
    start = 0
    while start < len(busy):
        # Group tiles so that tiles x 256 pixels x (longest list) stays under max_elements.
        stop, longest = start, 0
        while stop < len(busy):
            longest_next = max(longest, counts[busy[stop]])
            if stop > start and (stop - start + 1) * TILE * TILE * longest_next > max_elements:
                break
            longest = longest_next
            stop += 1
        tiles = busy[start:stop]
        rgb, t_final, depth = _blend_tiles(tiles, longest, gauss, offsets, counts, tiles_x, local_xy,
                                           means2d, conics, opac, colors, depths)
        chunks_rgb.append(rgb)
        chunks_t.append(t_final)
        chunks_depth.append(depth)
        chunk_tiles += tiles
        start = stop
    if chunk_tiles:
        index = torch.tensor(chunk_tiles, device=device)
        out_rgb = out_rgb.index_copy(0, index, torch.cat(chunks_rgb))
        out_t = out_t.index_copy(0, index, torch.cat(chunks_t))
        out_depth = out_depth.index_copy(0, index, torch.cat(chunks_depth))

    def image(x: torch.Tensor) -> torch.Tensor:  # [tiles, 256, ...] -> [H, W, ...]
        rest = x.shape[2:]
        x = x.reshape(tiles_y, tiles_x, TILE, TILE, *rest).transpose(1, 2)
        return x.reshape(tiles_y * TILE, tiles_x * TILE, *rest)[:H, :W]

    rgb, t_final, depth = image(out_rgb), image(out_t), image(out_depth)
    alpha = 1.0 - t_final
    depth = depth / torch.clamp(alpha, min=1e-10)
    if background is not None:
        bg = torch.as_tensor(background, dtype=torch.float32, device=device)
        rgb = rgb + t_final[..., None] * bg
    return RenderOutput(rgb, alpha, depth)


def _blend_tiles(tiles, longest, gauss, offsets, counts, tiles_x, local_xy, means2d, conics, opac,
                 colors, depths):
    """Front-to-back blending of a group of tiles, padded to the longest list: [T, 256, ...]."""
    device = means2d.device
    n = len(tiles)
    # [T, longest] indices into the visible Gaussians, -1 for padding.
    idx = torch.full((n, longest), -1, dtype=torch.int64)
    for row, t in enumerate(tiles):
        idx[row, : counts[t]] = gauss[offsets[t]: offsets[t + 1]].cpu()
    idx = idx.to(device)
    pad = idx < 0
    idx = idx.clamp(min=0)

    corner = torch.tensor([[(t % tiles_x) * TILE, (t // tiles_x) * TILE] for t in tiles], device=device)
    pix = (corner[:, None, :] + local_xy[None]).to(torch.float32) + 0.5  # [T, 256, 2]
    mean = means2d[idx]  # [T, K, 2]
    dx = mean[:, None, :, 0] - pix[:, :, None, 0]  # [T, 256, K]
    dy = mean[:, None, :, 1] - pix[:, :, None, 1]
    ca, cb, cc = (conics[idx][:, None, :, i] for i in range(3))  # [T, 1, K]
    sigma = 0.5 * (ca * dx * dx + cc * dy * dy) + cb * dx * dy
    alpha = torch.clamp_max(opac[idx][:, None, :] * torch.exp(-sigma), ALPHA_MAX)
    used = (sigma >= 0) & (alpha >= ALPHA_MIN) & ~pad[:, None, :]
    alpha = torch.where(used, alpha, torch.zeros_like(alpha))

    # Transmittance after each Gaussian; a pixel stops before the first one that takes it to T_MIN.
    t_after = torch.cumprod(1.0 - alpha, -1)  # [T, 256, K]
    t_all = torch.cat([torch.ones_like(t_after[..., :1]), t_after], -1)  # T before each, plus final
    kept = (t_after > T_MIN).sum(-1, keepdim=True)  # a prefix, since T only decreases
    weights = alpha * t_all[..., :-1] * (torch.arange(longest, device=device) < kept)
    t_final = t_all.gather(-1, kept).squeeze(-1)
    rgb = (weights[..., None] * colors[idx][:, None]).sum(-2)  # [T, 256, 3]
    depth = (weights * depths[idx][:, None]).sum(-1)  # [T, 256]
    return rgb, t_final, depth
