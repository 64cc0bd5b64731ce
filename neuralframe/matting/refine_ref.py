"""Reference matte refinement in plain PyTorch: the fast guided filter and the temporal stabiliser.

`refine_cpu.py` has the same functions with the same signatures; `refine.py` dispatches between them
and the tests hold the fast path to these.

Fast guided filter (He and Sun, "Fast Guided Filter", 2015) with a colour guide: the linear model
`q = A . I + b` is fitted at 1/`scale` of the frame's resolution (box windows of `radius` there, `eps`
regularising the 3x3 colour covariance), and its smoothed coefficients are upsampled bilinearly and
applied to the full-resolution frame, so the matte follows the frame's own edges (hair, fingers) at
the cost of one pass over the full frame.

Conventions: downsampling is area averaging (`F.interpolate(mode="area")`), upsampling bilinear with
half-pixel centres (`align_corners=False`), box means are clipped at the borders (each window averages
only the pixels inside the image).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def low_size(height: int, width: int, scale: int) -> tuple[int, int]:
    """The working size of the guided filter for a frame: 1/scale of it, rounded, at least 1."""
    return max(1, int(round(height / scale))), max(1, int(round(width / scale)))


def box(x: torch.Tensor, r: int) -> torch.Tensor:
    """Mean over a (2r+1)^2 window clipped at the borders. x: [C, h, w]."""
    return F.avg_pool2d(x[None], 2 * r + 1, stride=1, padding=r, count_include_pad=False)[0]


def guided_coefficients(guide: torch.Tensor, p: torch.Tensor, radius: int, eps: float):
    """Smoothed linear coefficients of the colour guided filter at the working resolution.

    Args:
        guide: float32 [3, h, w] in [0, 1]
        p: float32 [h, w], the input to filter (the coarse matte)
    Returns:
        A [3, h, w], b [h, w] (already box-averaged: `q = A . I + b` at any resolution).
    """
    r = radius
    mI = box(guide, r)  # [3, h, w]
    mp = box(p[None], r)[0]  # [h, w]
    cov_ip = box(guide * p[None], r) - mI * mp[None]  # [3, h, w]
    pairs = box(torch.stack([guide[i] * guide[j] for i in range(3) for j in range(3)]), r)  # [9, h, w]
    sigma = (pairs - torch.stack([mI[i] * mI[j] for i in range(3) for j in range(3)])).reshape(3, 3, *p.shape)
    sigma = sigma + eps * torch.eye(3, dtype=p.dtype, device=p.device)[:, :, None, None]
    a = torch.linalg.solve(sigma.permute(2, 3, 0, 1), cov_ip.permute(1, 2, 0)[..., None])[..., 0]  # [h, w, 3]
    a = a.permute(2, 0, 1)
    b = mp - (a * mI).sum(0)
    return box(a, r), box(b[None], r)[0]


def guided_filter(image: torch.Tensor, mask: torch.Tensor, radius: int = 2, eps: float = 1e-3,
                  scale: int = 4) -> torch.Tensor:
    """Refine a coarse matte against the full-resolution frame.

    Args:
        image: uint8 [H, W, 3], the frame.
        mask: float32 [h, w] in [0, 1], the coarse matte at any resolution (e.g. the segmenter's).
        radius: box radius at the working resolution (1/scale of the frame).
        eps: regularisation; larger follows the coarse matte more, smaller the frame's edges more.
        scale: the working resolution is the frame's divided by this.
    Returns:
        float32 [H, W] in [0, 1].
    """
    H, W = image.shape[:2]
    h, w = low_size(H, W, scale)
    full = image.permute(2, 0, 1).to(torch.float32) / 255.0  # [3, H, W]
    guide = F.interpolate(full[None], size=(h, w), mode="area")[0]
    p = F.interpolate(mask.to(torch.float32)[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
    a, b = guided_coefficients(guide, p, radius, eps)
    up = F.interpolate(torch.cat([a, b[None]])[None], size=(H, W), mode="bilinear", align_corners=False)[0]
    return ((up[:3] * full).sum(0) + up[3]).clamp(0.0, 1.0)


def stabilize(mask: torch.Tensor, prev_mask: torch.Tensor, guide: torch.Tensor, prev_guide: torch.Tensor,
              rate: float = 0.25, alpha_tol: float = 0.25, image_tol: float = 0.06) -> torch.Tensor:
    """Temporal stabilisation of a matte that does not smear motion.

    Each pixel moves from its previous value towards the new one by a rate that is small (`rate`) for
    small changes on a still image (sensor noise, segmenter jitter) and reaches 1 (no lag) where the
    matte changes by `alpha_tol` or more, or where the image itself changed by `image_tol` or more (a
    moving person): `out = prev + k (new - prev)`, `k = clamp(max(|new - prev| / alpha_tol,
    |I - I_prev| / image_tol), rate, 1)`.

    Args:
        mask, prev_mask: float32 [h, w] in [0, 1], this frame's matte and the previous output.
        guide, prev_guide: float32 [3, h, w], the frames at the matte's resolution.
    Returns:
        float32 [h, w], the stabilised matte (the next call's `prev_mask`).
    """
    d = mask - prev_mask
    motion = (guide - prev_guide).abs().mean(0)
    k = torch.maximum(d.abs() / alpha_tol, motion / image_tol).clamp(rate, 1.0)
    return prev_mask + k * d


def area_downsample(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 [H, W, 3] -> float32 [3, h, w] in [0, 1] by area averaging (no aliasing, unlike bilinear)."""
    full = image.permute(2, 0, 1).to(torch.float32) / 255.0
    return F.interpolate(full[None], size=tuple(size), mode="area")[0]
