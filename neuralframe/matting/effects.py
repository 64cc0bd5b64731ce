"""Matting effects as pipeline stages: `matte`, `replace:IMAGE|VIDEO|#RRGGBB`, `blur[:STRENGTH]`.

    stage = effect_stage("blur:20")              # a Stage for `neuralframe stream --effect blur:20`
    stage = effect_stage("replace:beach.jpg")
    stage = effect_stage("matte")                # the alpha itself, as a grey picture

Each stage segments the frame (the bundled segmenter, our torch module or its ONNX export), refines the
matte on the full frame (temporal stabilisation, fast guided filter) and composites with the fused
kernel `fused.composite`. With `MatteSettings(model="rvm_mobilenetv3.pth")` Robust Video Matting computes
the alpha and the foreground instead, with no refinement (see `rvm_matter.py` for why). The alpha also
travels on in `frame.metadata["alpha"]` (float32 [H, W]), and the foreground that was composited in
`["foreground"]`, for sinks that write them (see `offline.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from neuralframe.errors import InputError
from neuralframe.matting.refine import RefineSettings
from neuralframe.streaming.frame import Frame, StreamInfo
from neuralframe.streaming.pipeline import Stage

if TYPE_CHECKING:  # pragma: no cover
    import torch

EFFECTS = ("matte", "replace", "blur")
DEFAULT_BLUR = 24.0


@dataclass(frozen=True)
class MatteSettings:
    """How the alpha is computed.

    Args:
        variant: segmenter "auto", "general" (256x256) or "landscape" (144x256).
        backend: "torch", "onnx" (onnxruntime) or "tensorrt".
        device: torch device for the segmenter ("cpu", "cuda", "auto").
        model: a .tflite segmenter to import instead of the bundled one, or an RVM state dict (.pth, such
            as the official rvm_mobilenetv3.pth) to matte with Robust Video Matting.
        downsample_ratio: RVM only: the scale its network runs at, in (0, 1]; None picks one from the
            frame size (`rvm_matter.default_downsample_ratio`).
        refine: refinement settings (the segmenter path only).
        impl: kernel implementation ("auto", "cpu", "reference").
        kernel_threads: Numba threads for the stage's kernels, set on the stage's own worker thread
            (Numba's setting is per thread); 0 keeps Numba's default. One measured fastest in a
            pipeline on 2 cores, where decode and encode already use the other core.
    """

    variant: str = "auto"
    backend: str = "torch"
    device: str = "cpu"
    model: str | None = None
    downsample_ratio: float | None = None
    refine: RefineSettings = field(default_factory=RefineSettings)
    impl: str = "auto"
    kernel_threads: int = 1


def model_kind(settings: MatteSettings) -> str:
    """"rvm" when `settings.model` is an RVM state dict (.pth/.pt), else "segmenter" (the bundled one or a
    .tflite); checks that the file is there and that the options fit the model, before anything opens."""
    kind = "segmenter"
    if settings.model is not None:
        from neuralframe.matting.rvm_matter import RVM_SUFFIXES

        path = Path(settings.model)
        if not path.exists():
            raise InputError(f"model file '{path}' does not exist (give an RVM .pth state dict or a .tflite "
                             "segmenter)")
        if path.is_dir():
            raise InputError(f"model '{path}' is a folder: give the RVM .pth or the .tflite file in it")
        suffix = path.suffix.lower()
        if suffix in RVM_SUFFIXES:
            kind = "rvm"
        elif suffix != ".tflite":
            raise InputError(f"model file '{path}' is neither an RVM state dict (.pth) nor a .tflite segmenter")
    if settings.downsample_ratio is not None:
        if kind != "rvm":
            raise InputError("--downsample-ratio applies to an RVM model only (--model rvm_mobilenetv3.pth)")
        from neuralframe.matting.rvm import check_downsample_ratio

        check_downsample_ratio(settings.downsample_ratio)
    return kind


def make_matter(settings: MatteSettings):
    """The frame -> alpha object for one stream: `Matter` (segmenter + refiner) or `RVMMatter`."""
    if model_kind(settings) == "rvm":
        from neuralframe.matting.rvm_matter import RVMMatter

        return RVMMatter(settings.model, settings.downsample_ratio, settings.backend, settings.device,
                         impl=settings.impl)
    return Matter(settings)


class Matter:
    """Frame -> alpha for one stream: segmenter, then refiner (which keeps the temporal state).

    `__call__(image)`: uint8 [H, W, 3] -> float32 [H, W] in [0, 1]. `timings` holds the last call's
    milliseconds per step ("segment", "refine"). `foreground` is None: the frame itself is composited
    (`RVMMatter`, on the same interface, predicts one).
    """

    foreground = None

    def __init__(self, settings: MatteSettings = MatteSettings()):
        from neuralframe.matting.refine import Refiner
        from neuralframe.matting.segmenter import SegmenterRunner

        self.settings = settings
        self.segmenter = SegmenterRunner(settings.variant, settings.backend, settings.device, settings.model,
                                         impl=settings.impl)
        self.refiner = Refiner(settings.refine, impl=settings.impl)
        self.timings: dict[str, float] = {}

    def prepare(self, height: int, width: int) -> "Matter":
        import torch

        self.segmenter.prepare(height, width)
        # compile the refinement kernels now (or load them from Numba's cache), not on the first frame
        self.refiner(torch.zeros((max(8, height // 8), max(8, width // 8), 3), dtype=torch.uint8),
                     torch.zeros(self.segmenter.size), torch.zeros((3, *self.segmenter.size)))
        self.refiner.reset()
        return self

    def __call__(self, image: "torch.Tensor") -> "torch.Tensor":
        import time

        t0 = time.perf_counter()
        mask, guide = self.segmenter(image)
        t1 = time.perf_counter()
        alpha = self.refiner(image, mask, guide)
        self.timings = {"segment": (t1 - t0) * 1e3, "refine": (time.perf_counter() - t1) * 1e3}
        return alpha

    def reset(self) -> None:
        self.refiner.reset()

    def close(self) -> None:
        self.segmenter.close()


# backgrounds: one small strategy object per effect -------------------------------------------------

class Background:
    """What goes behind the person: `setup(h, w)` once, then `__call__(frame)` -> uint8 [H, W, 3]."""

    def setup(self, height: int, width: int) -> None:
        self.size = (height, width)

    def __call__(self, frame: Frame) -> "torch.Tensor":
        raise NotImplementedError

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
    """Marker for the `matte` effect: the output is the alpha as a grey picture."""


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


class MatteStage(Stage):
    """Segment, refine and composite each frame over a background (or show the alpha); with an RVM model,
    matte with RVM and composite its foreground.

    Args:
        background: a `Background`; `AlphaView()` outputs the alpha as a grey picture.
        settings: how the alpha is computed.
        size: output (height, width) (the frame is resized first), or None to keep the input size.
    """

    def __init__(self, background: Background, settings: MatteSettings = MatteSettings(),
                 size: tuple[int, int] | None = None, name: str = "matte", split: bool = False):
        self.background = background
        self.settings = settings
        self.size = size
        self.name = name
        # split: the coarse matte comes from a SegmentStage before this one (or, with RVM, the final alpha
        # and foreground from an RVMStage)
        self.split = split
        self.kind = model_kind(settings)
        self.matter = None
        self.refiner = None
        self._threads_set = False

    def setup(self, info: StreamInfo) -> StreamInfo:
        h, w = self.size or (info.height, info.width)
        if self.split:
            if self.kind == "segmenter":
                from neuralframe.matting.refine import Refiner

                self.refiner = Refiner(self.settings.refine, impl=self.settings.impl)
        else:
            self.matter = make_matter(self.settings).prepare(h, w)
        self.background.setup(h, w)
        return info.resized(h, w)

    def process(self, frame: Frame) -> Frame:
        from neuralframe.backend import fused

        image = stage_input(self, frame)
        foreground = None
        if self.split and self.kind == "rvm":
            alpha, foreground = frame.metadata.get("alpha"), frame.metadata.get("foreground")
            if alpha is None or foreground is None:
                raise InputError(f"frame {frame.index} has no RVM matte: an rvm stage must come first")
            timings = {"rvm": frame.metadata.get("segment_ms", 0.0)}
        elif self.split:
            import time

            coarse = frame.metadata.get("coarse")
            if coarse is None:
                raise InputError(f"frame {frame.index} has no coarse matte: a segment stage must come first")
            t0 = time.perf_counter()
            alpha = self.refiner.fine(image, coarse)
            timings = {"segment": frame.metadata.get("segment_ms", 0.0), "refine": (time.perf_counter() - t0) * 1e3}
        else:
            alpha = self.matter(image)
            foreground = self.matter.foreground
            timings = dict(self.matter.timings)
        if foreground is None:
            foreground = image
        if isinstance(self.background, AlphaView):
            out = fused.to_uint8(alpha[None].expand(3, -1, -1), impl=self.settings.impl)
        else:
            out = fused.composite(foreground, alpha, self.background(frame.replace(image=image)),
                                  impl=self.settings.impl)
        metadata = dict(frame.metadata, alpha=alpha, foreground=foreground, matte_ms=timings)
        metadata.pop("coarse", None)
        return frame.replace(image=out, metadata=metadata)

    def reset(self) -> None:
        """Back to the start of a stream: the matte's temporal (or RVM's recurrent) state starts over."""
        if self.matter is not None:
            self.matter.reset()
        elif self.refiner is not None:
            self.refiner.reset()

    def teardown(self) -> None:
        self.background.close()
        if self.matter is not None:
            self.matter.close()


class SegmentStage(Stage):
    """The first half of a matting effect on its own thread: segment (and stabilise) each frame; the
    coarse matte and the guide travel in `frame.metadata["coarse"]` to a `MatteStage(split=True)`."""

    def __init__(self, settings: MatteSettings = MatteSettings(), size: tuple[int, int] | None = None):
        self.settings = settings
        self.size = size
        self.name = "segment"
        self._threads_set = False

    def setup(self, info: StreamInfo) -> StreamInfo:
        from neuralframe.matting.refine import Refiner
        from neuralframe.matting.segmenter import SegmenterRunner

        h, w = self.size or (info.height, info.width)
        s = self.settings
        self.segmenter = SegmenterRunner(s.variant, s.backend, s.device, s.model, impl=s.impl).prepare(h, w)
        self.refiner = Refiner(s.refine, impl=s.impl)
        return info.resized(h, w)

    def process(self, frame: Frame) -> Frame:
        import time

        image = stage_input(self, frame)
        t0 = time.perf_counter()
        mask, guide = self.segmenter(image)
        mask = self.refiner.coarse(mask, guide)
        ms = (time.perf_counter() - t0) * 1e3
        return frame.replace(image=image, metadata=dict(frame.metadata, coarse=mask, segment_ms=ms))

    def teardown(self) -> None:
        self.segmenter.close()


def stage_input(stage, frame: Frame) -> "torch.Tensor":
    """The frame's image as a matting stage takes it: [H, W, 3] checked, resized to `stage.size` when
    that is set; on the stage's first frame, its thread's Numba thread count is set. `stage` has
    `settings` (MatteSettings), `size` and `_threads_set`."""
    from neuralframe.backend import fused

    if not stage._threads_set:
        stage._threads_set = True
        _set_kernel_threads(stage.settings.kernel_threads)
    image = frame.image
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"frame {frame.index} is {list(image.shape)}, expected [H, W, 3]")
    if stage.size is not None and tuple(image.shape[:2]) != tuple(stage.size):
        image = fused.resize(image, stage.size, impl=stage.settings.impl)
    return image


def _set_kernel_threads(n: int) -> None:
    """Numba threads for kernels called from this thread only (a no-op without Numba)."""
    if n <= 0:
        return
    try:
        import numba
    except ImportError:  # pragma: no cover
        return
    numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))


def is_matting_effect(spec: str) -> bool:
    """Whether `--effect SPEC` names a matting effect (so the CLI can route it here)."""
    name = spec.strip().partition(":")[0]
    return name in EFFECTS


def effect_stages(spec: str, size: tuple[int, int] | None = None, impl: str = "auto", *,
                  settings: MatteSettings | None = None) -> list[Stage]:
    """Like `effect_stage`, as two stages (segment | refine + composite, or with RVM: rvm | composite) that
    run on two threads: the faster choice in a pipeline. Same output, frame for frame."""
    stage = effect_stage(spec, size, impl, settings=settings)
    stage.split = True
    if stage.kind == "rvm":
        from neuralframe.matting.rvm_matter import RVMStage

        return [RVMStage(stage.settings, size), stage]
    return [SegmentStage(stage.settings, size), stage]


def effect_stage(spec: str, size: tuple[int, int] | None = None, impl: str = "auto", *,
                 settings: MatteSettings | None = None) -> Stage:
    """The stage for `--effect matte | replace:IMAGE|VIDEO|#RRGGBB | blur[:STRENGTH]`.

    Args:
        spec: the effect as typed on the command line.
        size: output (height, width), or None for the source's size.
        impl: kernel implementation.
        settings: segmenter and refinement settings, or an RVM model (default: the bundled segmenter on
            the CPU).
    """
    text = spec.strip()
    name, _, arg = text.partition(":")
    settings = settings or MatteSettings(impl=impl)
    if name == "matte":
        if arg:
            raise InputError(f"effect 'matte' takes no argument, got '{text}'")
        return MatteStage(AlphaView(), settings, size, name="matte")
    if name == "replace":
        if not arg:
            raise InputError("effect 'replace' needs a background: replace:IMAGE, replace:VIDEO or replace:#RRGGBB")
        return MatteStage(parse_background(arg, impl), settings, size, name="replace")
    if name == "blur":
        return MatteStage(parse_background(text, impl), settings, size, name="blur")
    raise InputError(f"unknown matting effect '{text}': use matte, replace:IMAGE|VIDEO|#RRGGBB or blur[:STRENGTH]")
