"""Reference pre/post-processing in plain PyTorch: readable, differentiable where it makes sense.

Every function here has a twin with the same signature in `fused_cpu.py`; `fused.py` dispatches
between them and the tests hold the fast path to these.

Conventions: images are uint8 [H, W, C] (channels last, as cameras and decoders give them); network
tensors are float32 [C, H, W] in [0, 1] before normalisation. Resizing is bilinear with half-pixel
centres (`align_corners=False`), without antialiasing, as OpenCV's INTER_LINEAR and torch's default.
Float to uint8 rounds half up after clamping to [0, 1]: `floor(x * 255 + 0.5)`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _stats(mean, std, channels: int, like: torch.Tensor):
    mean_t = torch.as_tensor(0.0 if mean is None else mean, dtype=torch.float32, device=like.device)
    std_t = torch.as_tensor(1.0 if std is None else std, dtype=torch.float32, device=like.device)
    return mean_t.reshape(-1, 1, 1).expand(channels, 1, 1), std_t.reshape(-1, 1, 1).expand(channels, 1, 1)


def _quantize(x: torch.Tensor) -> torch.Tensor:
    return torch.floor(x.clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8)


def to_float(image: torch.Tensor, mean=None, std=None) -> torch.Tensor:
    """uint8 [H, W, C] -> float32 [C, H, W]: `(image / 255 - mean) / std`."""
    x = image.permute(2, 0, 1).to(torch.float32) / 255.0
    m, s = _stats(mean, std, x.shape[0], x)
    return (x - m) / s


def to_uint8(x: torch.Tensor, mean=None, std=None) -> torch.Tensor:
    """float32 [C, H, W] -> uint8 [H, W, C]: undo `(x - mean) / std`, clamp to [0, 1], round."""
    m, s = _stats(mean, std, x.shape[0], x)
    return _quantize(x.to(torch.float32) * s + m).permute(1, 2, 0).contiguous()


def _resize_chw(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x[None], size=size, mode="bilinear", align_corners=False, antialias=False)[0]


def resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 [H, W, C] -> uint8 [h, w, C], bilinear."""
    x = image.permute(2, 0, 1).to(torch.float32) / 255.0
    return _quantize(_resize_chw(x, size)).permute(1, 2, 0).contiguous()


def preprocess(image: torch.Tensor, size: tuple[int, int], mean=None, std=None) -> torch.Tensor:
    """uint8 [H, W, C] -> float32 [C, h, w]: resize, scale to [0, 1] and normalise in one pass."""
    x = _resize_chw(image.permute(2, 0, 1).to(torch.float32) / 255.0, size)
    m, s = _stats(mean, std, x.shape[0], x)
    return (x - m) / s


def color_resize(image: torch.Tensor, size: tuple[int, int], matrix: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """uint8 [H, W, 3] -> uint8 [h, w, 3]: bilinear resize, then `matrix @ rgb + bias` per pixel.

    Args:
        image: uint8 [H, W, 3]
        matrix: [3, 3] colour transform on [0, 1] RGB
        bias: [3]
    """
    x = _resize_chw(image.permute(2, 0, 1).to(torch.float32) / 255.0, size)
    m = torch.as_tensor(matrix, dtype=torch.float32, device=x.device)
    b = torch.as_tensor(bias, dtype=torch.float32, device=x.device)
    y = torch.einsum("ij,jhw->ihw", m, x) + b.reshape(3, 1, 1)
    return _quantize(y).permute(1, 2, 0).contiguous()


def composite(foreground: torch.Tensor, alpha: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """Alpha-composite uint8 [H, W, C] images: `fg * alpha + bg * (1 - alpha)`.

    Args:
        foreground: uint8 [H, W, C]
        alpha: float32 [H, W] in [0, 1]
        background: uint8 [H, W, C]
    """
    a = alpha.to(torch.float32).clamp(0.0, 1.0)[..., None]
    fg = foreground.to(torch.float32) / 255.0
    bg = background.to(torch.float32) / 255.0
    return _quantize(fg * a + bg * (1.0 - a))
