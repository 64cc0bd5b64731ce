"""Matte refinement: the public entry points, dispatched between `refine_ref` (torch) and `refine_cpu` (Numba).

    alpha = refine.guided_filter(frame_u8, coarse)        # uint8 [H, W, 3], float [h, w] -> float [H, W]
    state = refine.stabilize(coarse, prev, guide, prev_guide)

`Refiner` keeps the temporal state of one stream explicitly (`reset()` starts over) and chains the two:
stabilise the segmenter's output at its own resolution, then guided-filter it onto the full frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from neuralframe.backend import dispatch
from neuralframe.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import torch

OPS = ("guided_filter", "stabilize", "guided_coefficients", "area_downsample")

for _name in OPS:
    _op = dispatch.op(f"matting.{_name}")
    _op.register("reference", f"neuralframe.matting.refine_ref:{_name}")
    _op.register("cpu", f"neuralframe.matting.refine_cpu:{_name}", requires=("numba",), device="cpu")


@dataclass(frozen=True)
class RefineSettings:
    """How a coarse matte becomes the final alpha.

    Args:
        radius: guided-filter box radius at the working resolution (1/scale of the frame).
        eps: guided-filter regularisation (smaller: follows the frame's edges more).
        scale: working resolution divisor of the guided filter.
        sharpen: contrast gain on the coarse matte around 0.5 before the guided filter (the segmenter's
            edges are softer than real ones, and its unsure patches inside a person sit near 0.5).
        temporal: stabilise over time (off: each frame on its own).
        rate: the stabiliser's smallest per-frame update (still image, small change).
        alpha_tol: a matte change at or above this is followed at once.
        image_tol: an image change (mean absolute, [0, 1]) at or above this is followed at once.
    """

    radius: int = 1
    eps: float = 3e-4
    scale: int = 4
    sharpen: float = 3.0
    temporal: bool = True
    rate: float = 0.25
    alpha_tol: float = 0.25
    image_tol: float = 0.06

    def __post_init__(self):
        if self.radius < 1 or self.scale < 1:
            raise InputError(f"refine radius and scale must be >= 1, got {self.radius} and {self.scale}")
        if not self.eps > 0:
            raise InputError(f"refine eps must be positive, got {self.eps}")
        if not 0 < self.rate <= 1:
            raise InputError(f"refine rate must be in (0, 1], got {self.rate}")


def _check(image, mask) -> None:
    import torch

    if not isinstance(image, torch.Tensor) or image.dtype != torch.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"image must be uint8 [H, W, 3], got {getattr(image, 'dtype', type(image))} "
                         f"{list(getattr(image, 'shape', []))}")
    if not isinstance(mask, torch.Tensor) or mask.ndim != 2 or not mask.is_floating_point():
        raise InputError(f"mask must be float [h, w], got {getattr(mask, 'dtype', type(mask))} "
                         f"{list(getattr(mask, 'shape', []))}")


def guided_filter(image: "torch.Tensor", mask: "torch.Tensor", radius: int = 2, eps: float = 1e-3, scale: int = 4,
                  *, impl: str = "auto") -> "torch.Tensor":
    """Coarse matte float [h, w] + frame uint8 [H, W, 3] -> alpha float32 [H, W] following the frame's edges."""
    _check(image, mask)
    fn = dispatch.op("matting.guided_filter").resolve(impl, image.device)
    return fn(image, mask, int(radius), float(eps), int(scale))


def stabilize(mask: "torch.Tensor", prev_mask: "torch.Tensor", guide: "torch.Tensor", prev_guide: "torch.Tensor",
              rate: float = 0.25, alpha_tol: float = 0.25, image_tol: float = 0.06, *,
              impl: str = "auto") -> "torch.Tensor":
    """One step of motion-aware temporal smoothing; mask/prev [h, w], guide/prev_guide [3, h, w]."""
    if mask.shape != prev_mask.shape or guide.shape != prev_guide.shape or tuple(guide.shape[1:]) != tuple(mask.shape):
        raise InputError(f"stabilize: mask {list(mask.shape)}, prev {list(prev_mask.shape)}, guide "
                         f"{list(guide.shape)}, prev guide {list(prev_guide.shape)} do not agree ([h, w] and [3, h, w])")
    fn = dispatch.op("matting.stabilize").resolve(impl, mask.device)
    return fn(mask, prev_mask, guide, prev_guide, float(rate), float(alpha_tol), float(image_tol))


def area_downsample(image: "torch.Tensor", size, *, impl: str = "auto") -> "torch.Tensor":
    """uint8 [H, W, 3] -> float32 [3, h, w] in [0, 1], each output the mean of its area of the input."""
    import torch

    _check(image, torch.zeros((1, 1)))
    h, w = (int(v) for v in size)
    if h <= 0 or w <= 0:
        raise InputError(f"area_downsample size must be positive, got {h}x{w}")
    return dispatch.op("matting.area_downsample").resolve(impl, image.device)(image, (h, w))


class Refiner:
    """Coarse matte -> final alpha for one stream, holding the stabiliser's state between frames.

    `__call__(image, mask, guide)`: image uint8 [H, W, 3]; mask float [h, w], the segmenter's output;
    guide float [3, h, w], the frame as the segmenter saw it (for motion). Returns float32 [H, W].
    """

    def __init__(self, settings: RefineSettings = RefineSettings(), impl: str = "auto"):
        self.settings = settings
        self.impl = dispatch.check_impl(impl)
        self.state: tuple["torch.Tensor", "torch.Tensor"] | None = None

    def reset(self) -> None:
        self.state = None

    def __call__(self, image: "torch.Tensor", mask: "torch.Tensor", guide: "torch.Tensor") -> "torch.Tensor":
        return self.fine(image, self.coarse(mask, guide))

    def coarse(self, mask: "torch.Tensor", guide: "torch.Tensor") -> "torch.Tensor":
        """The temporal step, at the segmenter's resolution (updates the state)."""
        s = self.settings
        if s.temporal:
            if self.state is not None and self.state[0].shape == mask.shape:
                mask = stabilize(mask, self.state[0], guide, self.state[1], s.rate, s.alpha_tol, s.image_tol,
                                 impl=self.impl)
            self.state = (mask, guide)
        return mask

    def fine(self, image: "torch.Tensor", mask: "torch.Tensor") -> "torch.Tensor":
        """Sharpen and guided-filter a (stabilised) coarse matte onto the full frame (stateless)."""
        s = self.settings
        if s.sharpen != 1.0:
            mask = ((mask - 0.5) * s.sharpen + 0.5).clamp(0.0, 1.0)
        return guided_filter(image, mask, s.radius, s.eps, s.scale, impl=self.impl)
