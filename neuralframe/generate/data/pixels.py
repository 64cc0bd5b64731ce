"""Images between the data's uint8 pixels and the models' float range (the diffusers convention: [-1, 1],
channels first).

    x = to_model_range(pixels)      # uint8 [B, H, W, 3] -> float32 [B, 3, H, W] in [-1, 1]
    pixels = to_uint8(x)            # and back, rounded to nearest, clamped
"""

from __future__ import annotations

import numpy as np
import torch


def to_model_range(pixels_uint8: np.ndarray) -> torch.Tensor:  # uint8 [B, H, W, 3] -> float32 [B, 3, H, W]
    """uint8 [B, H, W, 3] -> float32 [B, 3, H, W] in [-1, 1] (the diffusers image convention)."""
    return torch.from_numpy(np.ascontiguousarray(pixels_uint8)).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> np.ndarray:  # float [B, 3, H, W] -> uint8 [B, H, W, 3]
    """float [B, 3, H, W] in [-1, 1] -> uint8 [B, H, W, 3]."""
    x = ((images.detach().float().clamp(-1, 1) + 1.0) * 127.5 + 0.5).to(torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous().numpy()
