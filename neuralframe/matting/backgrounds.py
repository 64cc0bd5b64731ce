"""What goes behind the person: a colour, an image, a looping video, the frame itself blurred, or nothing
(`AlphaView`: the alpha as a grey picture).

    background = parse_background("#00b140")          # also "beach.jpg", "clip.mp4", "blur:24"
    background.setup(720, 1280)
    out = background.composite(foreground, alpha, frame)   # uint8 [H, W, 3]

A background is a small strategy object: `setup(h, w)` once per stream, `__call__(frame)` per frame, and
`composite` (the fused kernel `fused.composite`, or the alpha itself for `AlphaView`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from neuralframe.errors import InputError
from neuralframe.streaming.frame import Frame

if TYPE_CHECKING:  # pragma: no cover
    import torch

DEFAULT_BLUR = 24.0


class Background:
    """What goes behind the person: `setup(h, w)` once, then `__call__(frame)` -> uint8 [H, W, 3].

    `composite(foreground, alpha, frame)` puts the person over it (a subclass may show something else)."""

    def setup(self, height: int, width: int) -> None:
        self.size = (height, width)

    def __call__(self, frame: Frame) -> "torch.Tensor":
        raise NotImplementedError

    def composite(self, foreground: "torch.Tensor", alpha: "torch.Tensor", frame: Frame,
                  impl: str = "auto") -> "torch.Tensor":
        """foreground uint8 [H, W, 3] over this background where alpha float32 [H, W] says -> uint8 [H, W, 3]."""
        from neuralframe.backend import fused

        return fused.composite(foreground, alpha, self(frame), impl=impl)

    def close(self) -> None:
        pass


class ColorBackground(Background):
    def __init__(self, rgb: tuple[int, int, int]):
        self.rgb = rgb

    def setup(self, height: int, width: int) -> None:
        import torch

        super().setup(height, width)
        self.image = torch.tensor(self.rgb, dtype=torch.uint8).expand(height, width, 3).contiguous()

    def __call__(self, frame: Frame) -> "torch.Tensor":
        return self.image


def _fit(image: "torch.Tensor", size: tuple[int, int], impl: str) -> "torch.Tensor":
    """Scale to cover `size` (keeping the aspect ratio), centre-crop: a background never looks squashed."""
    from neuralframe.backend import fused

    h, w = int(image.shape[0]), int(image.shape[1])
    H, W = size
    if (h, w) == (H, W):
        return image
    s = max(H / h, W / w)
    sh, sw = max(H, round(h * s)), max(W, round(w * s))
    big = fused.resize(image, (sh, sw), impl=impl)
    top, left = (sh - H) // 2, (sw - W) // 2
    return big[top:top + H, left:left + W].contiguous()


class ImageBackground(Background):
    def __init__(self, path: Path, impl: str = "auto"):
        self.path = path
        self.impl = impl

    def setup(self, height: int, width: int) -> None:
        from neuralframe.streaming.sources import VideoFileSource

        super().setup(height, width)
        source = VideoFileSource(self.path)
        try:
            source.open()
            first = source.read()
        finally:
            source.close()
        if first is None:
            raise InputError(f"background image '{self.path}' has no picture in it")
        self.image = _fit(first.image[..., :3].contiguous(), (height, width), self.impl)

    def __call__(self, frame: Frame) -> "torch.Tensor":
        return self.image


class VideoBackground(Background):
    """A looping background video, one of its frames per input frame."""

    def __init__(self, path: Path, impl: str = "auto"):
        self.path = path
        self.impl = impl
        self.source = None

    def setup(self, height: int, width: int) -> None:
        from neuralframe.streaming.sources import VideoFileSource

        super().setup(height, width)
        self.source = VideoFileSource(self.path, loop=True)
        self.source.open()

    def __call__(self, frame: Frame) -> "torch.Tensor":
        bg = self.source.read()
        if bg is None:
            raise InputError(f"background video '{self.path}' delivered no frame")
        return _fit(bg.image, self.size, self.impl)

    def close(self) -> None:
        if self.source is not None:
            self.source.close()
            self.source = None


class BlurBackground(Background):
    """The frame itself, strongly blurred: area-downsample by `factor`, box-blur twice there, upsample.

    Args:
        strength: blur radius in pixels at the frame's resolution.
    """

    def __init__(self, strength: float = DEFAULT_BLUR, impl: str = "auto"):
        if not strength > 0:
            raise InputError(f"blur strength must be positive, got {strength:g}")
        self.strength = float(strength)
        self.impl = impl

    def setup(self, height: int, width: int) -> None:
        super().setup(height, width)
        self.factor = int(max(1, min(16, round(self.strength / 3))))
        self.small = (max(1, round(height / self.factor)), max(1, round(width / self.factor)))
        self.radius = max(1, round(self.strength / self.factor / 2))

    def __call__(self, frame: Frame) -> "torch.Tensor":
        import torch.nn.functional as F

        from neuralframe.backend import fused
        from neuralframe.matting.refine import area_downsample

        x = area_downsample(frame.image, self.small, impl=self.impl)[None]  # [1, 3, h, w]
        k = 2 * self.radius + 1
        for _ in range(2):  # two box passes: close to a Gaussian, no ringing
            x = F.avg_pool2d(x, k, stride=1, padding=self.radius, count_include_pad=False)
        return fused.resize(fused.to_uint8(x[0], impl=self.impl), self.size, impl=self.impl)


class AlphaView(Background):
    """The `matte` effect: no background, the output is the alpha itself as a grey picture."""

    def composite(self, foreground: "torch.Tensor", alpha: "torch.Tensor", frame: Frame,
                  impl: str = "auto") -> "torch.Tensor":
        from neuralframe.backend import fused

        return fused.to_uint8(alpha[None].expand(3, -1, -1), impl=impl)


def parse_color(text: str) -> tuple[int, int, int]:
    """'#RRGGBB' -> (r, g, b)."""
    t = text.strip()
    if not (len(t) == 7 and t[0] == "#"):
        raise InputError(f"colour '{text}' is not #RRGGBB (for example #00b140)")
    try:
        return int(t[1:3], 16), int(t[3:5], 16), int(t[5:7], 16)
    except ValueError:
        raise InputError(f"colour '{text}' is not #RRGGBB (for example #00b140)") from None


def parse_background(spec: str, impl: str = "auto") -> Background:
    """A background from `#RRGGBB`, an image file, a video file, or `blur[:STRENGTH]`."""
    from neuralframe.streaming.sources import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

    text = spec.strip()
    if text.startswith("#"):
        return ColorBackground(parse_color(text))
    if text == "blur" or text.startswith("blur:"):
        value = text.partition(":")[2]
        if not value:
            return BlurBackground(DEFAULT_BLUR, impl)
        try:
            strength = float(value)
        except ValueError:
            raise InputError(f"blur strength '{value}' is not a number (for example blur:24)") from None
        return BlurBackground(strength, impl)
    path = Path(text)
    if not text:
        raise InputError("replace needs a background: replace:IMAGE, replace:VIDEO or replace:#RRGGBB")
    if not path.exists():
        raise InputError(f"background '{text}' does not exist (use an image, a video or #RRGGBB)")
    if path.is_dir():
        raise InputError(f"background '{text}' is a folder: use an image, a video or #RRGGBB")
    suffix = path.suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return ImageBackground(path, impl)
    if suffix in VIDEO_EXTENSIONS:
        return VideoBackground(path, impl)
    raise InputError(f"background '{text}' is neither an image ({', '.join(IMAGE_EXTENSIONS)}) nor a video "
                     f"({', '.join(VIDEO_EXTENSIONS)})")
