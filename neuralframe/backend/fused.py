"""Fused pre/post-processing shared by every domain: the public entry points.

    x = fused.preprocess(frame_u8, (256, 256), mean=0.5, std=0.5)   # uint8 [H, W, 3] -> float [3, 256, 256]
    out = fused.to_uint8(y, mean=0.5, std=0.5)                       # float [3, h, w] -> uint8 [h, w, 3]
    out = fused.composite(fg, alpha, bg)                             # matting, HUD overlays

Each op has a `reference` (plain torch, `fused_ref.py`; also what CUDA tensors use) and a `cpu`
implementation (Numba, `fused_cpu.py`); `impl="auto"` takes the CPU kernel for CPU tensors.
Shapes are checked here, at the boundary, with messages that say what was expected.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from neuralframe.backend import dispatch
from neuralframe.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import torch

OPS = ("to_float", "to_uint8", "resize", "preprocess", "color_resize", "composite")

for _name in OPS:
    _op = dispatch.op(f"fused.{_name}")
    _op.register("reference", f"neuralframe.backend.fused_ref:{_name}")
    _op.register("cpu", f"neuralframe.backend.fused_cpu:{_name}", requires=("numba",), device="cpu")


def _check_image(image: "torch.Tensor", name: str = "image", channels: tuple[int, ...] | None = None) -> None:
    import torch

    if not isinstance(image, torch.Tensor):
        raise InputError(f"{name} must be a torch.Tensor, got {type(image).__name__}")
    if image.dtype != torch.uint8 or image.ndim != 3:
        raise InputError(f"{name} must be uint8 [H, W, C], got {str(image.dtype).replace('torch.', '')} {list(image.shape)}")
    if channels is not None and image.shape[2] not in channels:
        raise InputError(f"{name} must have {' or '.join(map(str, channels))} channels, got {image.shape[2]}")


def _check_size(size) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise InputError(f"size must be (height, width), got {size!r}") from None
    if h <= 0 or w <= 0:
        raise InputError(f"size must be positive, got {h}x{w}")
    return h, w


def _run(name: str, impl: str, device, *args, **kwargs):
    return dispatch.op(f"fused.{name}").resolve(impl, device)(*args, **kwargs)


def to_float(image: "torch.Tensor", mean=None, std=None, *, impl: str = "auto") -> "torch.Tensor":
    """uint8 [H, W, C] -> float32 [C, H, W], `(image / 255 - mean) / std` (mean/std scalar or per channel)."""
    _check_image(image)
    return _run("to_float", impl, image.device, image, mean, std)


def to_uint8(x: "torch.Tensor", mean=None, std=None, *, impl: str = "auto") -> "torch.Tensor":
    """float [C, H, W] -> uint8 [H, W, C]: denormalise, clamp to [0, 1], round half up."""
    import torch

    if not isinstance(x, torch.Tensor) or x.ndim != 3 or not x.is_floating_point():
        raise InputError(f"expected a float [C, H, W] tensor, got {getattr(x, 'dtype', type(x))} {list(getattr(x, 'shape', []))}")
    return _run("to_uint8", impl, x.device, x, mean, std)


def resize(image: "torch.Tensor", size, *, impl: str = "auto") -> "torch.Tensor":
    """uint8 [H, W, C] -> uint8 [h, w, C], bilinear with half-pixel centres."""
    _check_image(image)
    return _run("resize", impl, image.device, image, _check_size(size))


def preprocess(image: "torch.Tensor", size, mean=None, std=None, *, impl: str = "auto") -> "torch.Tensor":
    """uint8 [H, W, C] -> float32 [C, h, w] in one pass: resize, scale, normalise, to channels-first."""
    _check_image(image)
    return _run("preprocess", impl, image.device, image, _check_size(size), mean, std)


def color_resize(image: "torch.Tensor", size, matrix, bias=(0.0, 0.0, 0.0), *, impl: str = "auto") -> "torch.Tensor":
    """uint8 [H, W, 3] -> uint8 [h, w, 3] in one pass: resize, then a 3x3 colour matrix and bias on [0, 1] RGB."""
    _check_image(image, channels=(3,))
    return _run("color_resize", impl, image.device, image, _check_size(size), matrix, bias)


def composite(foreground: "torch.Tensor", alpha: "torch.Tensor", background: "torch.Tensor", *, impl: str = "auto") -> "torch.Tensor":
    """`foreground * alpha + background * (1 - alpha)` on uint8 [H, W, C] images, alpha float [H, W]."""
    _check_image(foreground, "foreground")
    _check_image(background, "background")
    if tuple(foreground.shape) != tuple(background.shape):
        raise InputError(f"foreground {list(foreground.shape)} and background {list(background.shape)} differ in shape")
    if tuple(alpha.shape) != tuple(foreground.shape[:2]):
        raise InputError(f"alpha must be [H, W] = {list(foreground.shape[:2])}, got {list(alpha.shape)}")
    return _run("composite", impl, foreground.device, foreground, alpha, background)


# Colour grades for the demo and the `color` effect: 3x3 matrices on linear-ish [0, 1] RGB, and biases.
GRADES: dict[str, tuple[tuple[tuple[float, ...], ...], tuple[float, ...]]] = {
    "identity": (((1, 0, 0), (0, 1, 0), (0, 0, 1)), (0, 0, 0)),
    "warm": (((1.08, 0.04, 0.0), (0.02, 1.0, 0.0), (0.0, 0.0, 0.86)), (0.02, 0.0, -0.01)),
    "cool": (((0.9, 0.0, 0.0), (0.0, 1.0, 0.04), (0.0, 0.06, 1.1)), (0.0, 0.0, 0.02)),
    "sepia": (((0.393, 0.769, 0.189), (0.349, 0.686, 0.168), (0.272, 0.534, 0.131)), (0, 0, 0)),
    "gray": (((0.299, 0.587, 0.114), (0.299, 0.587, 0.114), (0.299, 0.587, 0.114)), (0, 0, 0)),
}


def grade(name: str):
    """The (matrix, bias) of a named colour grade."""
    if name not in GRADES:
        raise InputError(f"unknown colour grade '{name}': use one of {', '.join(GRADES)}")
    return GRADES[name]
