"""gsplat's CUDA rasterizer behind the same signature as `ref.rasterize` (imported on first use).

Differences from the reference that gsplat itself makes: alpha is clamped at 0.999 instead of 0.99,
and projection and blending run in float32. Everything else (0.3 dilation, compensation when
antialiased, SH evaluation, 16 x 16 tiles, thresholds, normalised expected depth) is the same.
"""

from __future__ import annotations

import torch

from neuralframe.backend.device import import_optional
from neuralframe.render.camera import Camera
from neuralframe.render.output import RenderOutput
from neuralframe.render.splat.gaussians import Gaussians


def rasterize(g: Gaussians, camera: Camera, *, sh_degree: int | None = None, background=None,
              antialiased: bool = False) -> RenderOutput:
    """Render `g` (on a CUDA device) from `camera` with `gsplat.rasterization`."""
    gsplat = import_optional("gsplat", "cuda", "the CUDA splat rasterizer")
    device = g.means.device
    degree = g.sh_degree if sh_degree is None else sh_degree
    if g.n == 0:  # gsplat's kernels crash the process on an empty scene: render nothing ourselves
        alpha = torch.zeros(camera.height, camera.width, device=device)
        rgb = torch.zeros(camera.height, camera.width, 3, device=device)
        if background is not None:
            rgb = rgb + torch.as_tensor(background, dtype=rgb.dtype, device=device)
        return RenderOutput(rgb, alpha, torch.zeros_like(alpha))
    colors, alphas, _ = gsplat.rasterization(
        means=g.means,
        quats=g.quats,
        scales=torch.exp(g.scales),
        opacities=torch.sigmoid(g.opacities),
        colors=g.sh,
        viewmats=camera.viewmat.to(device=device, dtype=torch.float32)[None],
        Ks=camera.K.to(device=device, dtype=torch.float32)[None],
        width=camera.width,
        height=camera.height,
        near_plane=camera.near,
        far_plane=camera.far,
        sh_degree=degree,
        eps2d=0.3,
        tile_size=16,
        render_mode="RGB+ED",
        rasterize_mode="antialiased" if antialiased else "classic",
    )
    rgb, depth, alpha = colors[0, ..., :3], colors[0, ..., 3], alphas[0, ..., 0]
    if background is not None:
        rgb = rgb + (1.0 - alpha)[..., None] * torch.as_tensor(background, dtype=rgb.dtype, device=device)
    return RenderOutput(rgb, alpha, depth)
