"""General-purpose stages built on the backend's fused kernels."""

from __future__ import annotations

from neuralframe.errors import InputError
from neuralframe.streaming.frame import Frame, StreamInfo
from neuralframe.streaming.pipeline import Stage


class ColorResize(Stage):
    """Resize and colour-grade in one fused pass (uint8 in, uint8 out).

    Args:
        size: (height, width) of the output, or None to keep the input size.
        grade: a name from `fused.GRADES` ("identity", "warm", "cool", "sepia", "gray").
        impl: "auto", "reference" or "cpu".
    """

    def __init__(self, size: tuple[int, int] | None = None, grade: str = "identity", impl: str = "auto"):
        from neuralframe.backend import fused

        self.size = size
        self.grade = grade
        self.matrix, self.bias = fused.grade(grade)
        self.impl = impl
        self.name = "color-resize" if grade != "identity" else "resize"

    def setup(self, info: StreamInfo) -> StreamInfo:
        from neuralframe.backend import fused

        if self.size is None:
            self.size = (info.height, info.width)
        self._fn = fused.color_resize
        # compile (or load the cached kernel) now, not on the first frame's clock
        import torch

        self._fn(torch.zeros((4, 4, 3), dtype=torch.uint8), (2, 2), self.matrix, self.bias, impl=self.impl)
        return info.resized(*self.size)

    def process(self, frame: Frame) -> Frame:
        if frame.image.ndim != 3 or frame.image.shape[2] != 3:
            raise InputError(f"frame {frame.index} is {list(frame.image.shape)}, expected [H, W, 3]")
        return frame.replace(image=self._fn(frame.image, self.size, self.matrix, self.bias, impl=self.impl))

