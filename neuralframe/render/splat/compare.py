"""Whether two splat scenes show the same picture: both rendered from one camera close on the first scene,
and the PSNR of the second's image against the first's. Used by `neuralframe bench formats` and the
format tests."""

from __future__ import annotations

import math


def close_camera(g, width: int, height: int):
    """A fixed camera close on a scene's centre (half its robust radius fills the view: the picture is mostly
    scene, not background, so PSNR measures the splats)."""
    from neuralframe.render.scene import Bounds, frame_bounds, robust_bounds

    bounds = robust_bounds(g.means)
    return frame_bounds(Bounds(bounds.center, 0.5 * bounds.radius), width, height, azimuth_deg=30.0)


def render_psnr(source, other, width: int = 160, height: int = 120) -> float:
    """PSNR in dB of `other`'s render against `source`'s from `close_camera(source)`; inf when identical."""
    from neuralframe.render.splat import rasterize

    camera = close_camera(source, width, height)
    a = rasterize(source, camera).rgb.clamp(0, 1)
    b = rasterize(other, camera).rgb.clamp(0, 1)
    mse = float(((a - b) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)
