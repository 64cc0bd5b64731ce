"""Fast CPU Gaussian-splat rasterizer (Numba), with the semantics of `rasterize_ref.py`.

Stages, each a compiled function cached on disk (`cache=True`: a second process loads them instead of
compiling them again; `neuralframe bench splat` records both times in benchmarks/splat.json):

1. `project` (parallel over Gaussians, `rasterize_cpu_project.py`): EWA projection and culling in float64
   with the formulas of `ref.project` / `ref.visible` (a Gaussian whose footprint cannot reach the image,
   by a bound from its covariance's trace, is culled before its covariance is projected), SH colour as
   `ref.sh_to_rgb` in float32, all rounded once into one float32 record of 16 values (a cache line) per
   Gaussian: position, conic, opacity, colour, depth and the extent and shape of its footprint.
2. `sort_visible` (serial, `rasterize_cpu_sort.py`): a stable LSD radix sort of the visible Gaussians by
   their float32 depth bits (positive floats order like their bit patterns), three 11-bit passes over
   key << 32 | index after one pass that gathers the visible Gaussians and counts all three digits (and
   the Gaussians of each work tile).
3. `bin_and_pack` (serial counting sorts; the gather is parallel for large scenes): (tile, Gaussian) pairs
   grouped by tile (the depth order survives inside each tile, so no second sort is needed), and the
   records packed by home tile (a Gaussian's first tile), front to back inside each: a tile reads mostly
   consecutive records.
4. `blend` (parallel over 32 x 32 work tiles in raster order, handed out one at a time,
   `rasterize_cpu_blend.py`; the image does not depend on the tiling, see `rasterize_ref.py`, and wider
   tiles mean fewer (tile, Gaussian) pairs than the reference's 16 x 16): a tile keeps its pixels' state
   as a struct of arrays in columns 8 pixels wide and walks its Gaussians front to back. A Gaussian visits,
   in each column it reaches, the rows its alpha >= 1/255 ellipse reaches there, less rows whose pixels
   have all stopped, and evaluates them 8 pixels at a time in two loops that LLVM vectorizes: alpha
   (sigma in float32 exactly as the reference computes it, exp(-sigma) by a float32 polynomial within
   1.01 ulp, the reference's tests as lane masks), then the blending. A tile stops once all its pixels
   have. It writes the image as `ref.rasterize` finishes it (background, alpha, normalised depth).

Agreement with the reference: sigma is the reference's to the bit; exp(-sigma) may differ from torch's by
an ulp, colours come from float32 SH, the transmittance product is kept in float32 (torch's cumprod
accumulates in float64) and colours are summed front to back: images differ by float32 rounding. A pixel
whose alpha lands within an ulp of the 1/255 cut-off could differ by one contribution; the random-scene
tests bound this (mean <= 1e-5, max <= 1e-3 per channel).
"""

from __future__ import annotations

import threading

import numba
import numpy as np
import torch

from neuralframe.backend.memo import LastResult
from neuralframe.render import interrupt
from neuralframe.render.camera import Camera
from neuralframe.render.output import RenderOutput
from neuralframe.render.splat.gaussians import Gaussians
from neuralframe.render.splat.rasterize_cpu_blend import REC, TH, TW, blend
from neuralframe.render.splat.rasterize_cpu_project import project, world
from neuralframe.render.splat.rasterize_cpu_sort import bin_and_pack, sort_visible


def _numpy(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32)


def _world_arrays_of(means: torch.Tensor, quats: torch.Tensor, scales: torch.Tensor, opacities: torch.Tensor,
                    sh: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """float32 centres, float64 world covariances, opacities (with their logarithms and the covariances'
    traces) and float32 SH of a scene (see `world`)."""
    quats_ = _numpy(quats)
    n = quats_.shape[0]
    cov3, opac = np.empty((n, 6)), np.empty((n, 3))
    world(quats_, _numpy(scales), _numpy(opacities), cov3, opac)
    return _numpy(means), cov3, opac, _numpy(sh)


# computed once per scene: a viewer renders the same Gaussians every frame
_world_arrays = LastResult(_world_arrays_of)


class _Workspace(threading.local):
    """Per-Gaussian scratch arrays of stages 1-3, kept from one frame to the next (per thread). A viewer renders
    the same scene every frame: fresh arrays would cost their page faults again each time (benchmarks/README.md,
    viewer.json), and none of them outlives the frame (the blending's outputs are new arrays)."""

    n = -1

    def get(self, n: int) -> tuple[np.ndarray, ...]:
        if self.n != n:
            self.arrays = (np.empty((n, REC), np.float32), np.empty((n, 4), np.int32), np.empty(n, np.float32),
                           np.empty(n, np.bool_), np.empty((n, REC), np.float32), np.empty((n, 4), np.int32))
            self.n = n
        return self.arrays


_workspace = _Workspace()


def prepare(g: Gaussians, camera: Camera, sh_degree: int, antialiased: bool) -> dict:
    """Stages 1-3: the visible Gaussians' records packed for the blending and per-tile lists (numpy arrays;
    `rec` is a scratch array of this thread, valid until its next call)."""
    means, cov3, opac, sh = _world_arrays(g.means, g.quats, g.scales, g.opacities, g.sh)
    n = means.shape[0]
    rec, rect, depth, valid, rec_s, rect_s = _workspace.get(n)
    viewmat = camera.viewmat.numpy().astype(np.float64)
    K = camera.K.numpy().astype(np.float64)
    campos = camera.position.numpy().astype(np.float64)
    project(means, cov3, opac, sh, int(sh_degree), viewmat, K, camera.width, camera.height,
            float(camera.near), float(camera.far), bool(antialiased), campos, rec, rect, depth, valid)
    interrupt.check()
    tiles_x = (camera.width + TW - 1) // TW
    tiles_y = (camera.height + TH - 1) // TH
    # Depths of visible Gaussians are > near > 0, so their float32 bits sort like the values.
    order, counts, home = sort_visible(valid, depth.view(np.uint32), rect, tiles_x, tiles_y, rect_s)
    interrupt.check()
    pairs, offsets = bin_and_pack(order, rect_s[:len(order)], counts, home, rec, tiles_x, rec_s)
    return dict(rec=rec_s, order=order, pairs=pairs, offsets=offsets, tiles_x=tiles_x, tiles_y=tiles_y)


def rasterize(g: Gaussians, camera: Camera, *, sh_degree: int | None = None, background=None,
              antialiased: bool = False) -> RenderOutput:
    """Render `g` from `camera` on the CPU (same arguments and result as `ref.rasterize`)."""
    return rasterize_with_stats(g, camera, sh_degree=sh_degree, background=background,
                                antialiased=antialiased)[0]


BLEND_PARTS = 8
TILES_PER_PART = 96  # (a 1280x720 frame has 920 work tiles: 8 parts; a 384x216 one, 84: one)


def rasterize_with_stats(g: Gaussians, camera: Camera, *, sh_degree: int | None = None, background=None,
                         antialiased: bool = False) -> tuple[RenderOutput, dict]:
    """`rasterize`, plus counts: visible Gaussians, (32 x 32 work tile, Gaussian) pairs and
    pixel-Gaussian evaluations (alpha values the blending computes)."""
    degree = g.sh_degree if sh_degree is None else int(sh_degree)
    s = prepare(g, camera, degree, antialiased)
    interrupt.check()
    W, H = camera.width, camera.height
    bg = np.zeros(3, np.float32) if background is None else _numpy(torch.as_tensor(background))
    rgb = np.empty((H, W, 3), np.float32)
    alpha = np.empty((H, W), np.float32)
    depth = np.empty((H, W), np.float32)
    n_tiles = s["tiles_x"] * s["tiles_y"]
    evals = np.empty(n_tiles, np.int64)
    # Raster order, handed out one tile at a time: neighbouring tiles share Gaussians, so their records
    # are still in cache, and dynamic hand-out keeps both cores busy to the end.
    # A large frame blends in up to BLEND_PARTS runs of tiles with an interrupt check between them: a viewer's
    # full-quality frame that a new camera makes stale stops within a part, not at the end of the frame.
    parts = max(1, min(BLEND_PARTS, n_tiles // TILES_PER_PART))
    ends = [n_tiles * (i + 1) // parts for i in range(parts)]
    with numba.parallel_chunksize(1):
        for t0, t1 in zip([0] + ends[:-1], ends):
            if t0:
                interrupt.check()
            blend(t0, t1, s["tiles_x"], s["pairs"], s["offsets"], s["rec"], bg, rgb, alpha, depth, evals)
    stats = {"visible": int(len(s["order"])), "pairs": int(len(s["pairs"])), "evaluations": int(evals.sum())}
    return RenderOutput(torch.from_numpy(rgb), torch.from_numpy(alpha), torch.from_numpy(depth)), stats
