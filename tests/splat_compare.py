"""Whether two splat scenes show the same picture: renders from one camera and their PSNR (importable from
every test folder, like cli_helpers)."""

from __future__ import annotations

import math

import torch


def camera_for(g, width: int = 160, height: int = 120):
    """A fixed camera close on a scene's centre (half its robust radius fills the view: the picture is
    mostly scene, not background, so PSNR measures the splats)."""
    from neuralframe.render.scene import Bounds, frame_bounds, robust_bounds

    bounds = robust_bounds(g.means)
    return frame_bounds(Bounds(bounds.center, 0.5 * bounds.radius), width, height, azimuth_deg=30.0)


def render(g, camera) -> torch.Tensor:
    """The scene's colour image from `camera` (the CPU kernel, which matches the reference)."""
    from neuralframe.render.splat import rasterize

    return rasterize(g, camera).rgb.clamp(0, 1)


def psnr(a, b) -> float:
    """PSNR in dB of scene `b`'s render against scene `a`'s, both from a camera framing `a` (inf when
    identical): whether two files show the same picture."""
    camera = camera_for(a)
    mse = float(((render(a, camera) - render(b, camera)) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)
