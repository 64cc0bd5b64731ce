"""`RenderOutput`: what every renderer (Gaussian splats, NeRF) returns for one camera."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch


@dataclass
class RenderOutput:
    """One rendered view, as float tensors on the renderer's device.

    Args:
        rgb: [H, W, 3] colour in [0, 1] for ordinary scenes (not clamped: a renderer may return
            values slightly above 1), with the background already composited under it.
        alpha: [H, W] accumulated opacity in [0, 1] (1 - final transmittance).
        depth: [H, W] camera-space depth (z, along the optical axis) as the alpha-weighted expected
            depth *normalised by alpha*: sum_i w_i z_i / alpha (gsplat's "ED" mode). It is 0 where
            alpha is 0. Multiply by `alpha` for the unnormalised accumulated depth (gsplat's "D").
    """

    rgb: "torch.Tensor"  # [H, W, 3]
    alpha: "torch.Tensor"  # [H, W]
    depth: "torch.Tensor"  # [H, W]

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    def to_uint8(self) -> "np.ndarray":  # [H, W, 3] uint8
        """The colour image as 8-bit RGB (clamped to [0, 1], rounded), for saving or display."""
        import torch

        img = (self.rgb.detach().float().clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8)
        return img.cpu().numpy()

    def detach(self) -> "RenderOutput":
        return RenderOutput(self.rgb.detach(), self.alpha.detach(), self.depth.detach())

    def cpu(self) -> "RenderOutput":
        return RenderOutput(self.rgb.cpu(), self.alpha.cpu(), self.depth.cpu())
