"""Matting as pipeline stages: the alpha of each frame, composited over a background.

    stage = MatteStage(parse_background("blur:20"), MatteSettings())         # one stage, one thread
    chain = matte_stages(parse_background("#00b140"), MatteSettings(), name="replace")   # two threads

`MatteStage` segments the frame (the bundled segmenter or a .tflite, on the engines handed in), refines the
matte on the full frame (temporal stabilisation, fast guided filter) and composites with the fused kernel
`fused.composite`. With `MatteSettings(model="rvm_mobilenetv3.pth")` Robust Video Matting computes the
alpha and the foreground instead, with no refinement (see `rvm_matter.py` for why). `matte_stages` splits
the same work over two threads (segment | refine + composite, or rvm | composite): the faster choice in a
pipeline, with the same frames. The alpha also travels on in `frame.metadata["alpha"]` (float32 [H, W]),
and the foreground that was composited in `["foreground"]`, for sinks that write them (`apps/matte.py`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from neuralframe.errors import InputError
from neuralframe.matting.backgrounds import Background
from neuralframe.matting.matters import MatteSettings, default_engines, make_matter, model_kind
from neuralframe.streaming.frame import Frame, StreamInfo
from neuralframe.streaming.pipeline import Stage

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from neuralframe.matting.engines import Engines


class MattingStage(Stage):
    """What every matting stage shares: its settings and engines, an output size, and the frame as it takes
    it (`input`).

    Args:
        settings: how the alpha is computed.
        size: output (height, width) (the frame is resized first), or None to keep the input size.
        engines: builds the networks' engines (default: torch on `settings.device`; the app hands in
            others for `settings.backend`).
    """

    def __init__(self, settings: MatteSettings, size: tuple[int, int] | None, name: str,
                 engines: "Engines | None" = None):
        self.settings = settings
        self.size = size
        self.name = name
        self.engines = engines
        self._threads_set = False

    def _engines(self) -> "Engines":
        return self.engines if self.engines is not None else default_engines(self.settings)

    def input(self, frame: Frame) -> "torch.Tensor":
        """The frame's image checked to be [H, W, 3] and resized to `size` when that is set; on the first
        frame, this worker thread's Numba thread count is set (`settings.kernel_threads`)."""
        from neuralframe.backend import fused

        if not self._threads_set:
            self._threads_set = True
            _set_kernel_threads(self.settings.kernel_threads)
        image = frame.image
        if image.ndim != 3 or image.shape[2] != 3:
            raise InputError(f"frame {frame.index} is {list(image.shape)}, expected [H, W, 3]")
        if self.size is not None and tuple(image.shape[:2]) != tuple(self.size):
            image = fused.resize(image, self.size, impl=self.settings.impl)
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


class MatteStage(MattingStage):
    """Segment, refine and composite each frame over a background (or show the alpha); with an RVM model,
    matte with RVM and composite its foreground.

    Args:
        background: a `Background`; `AlphaView()` outputs the alpha as a grey picture.
        settings: how the alpha is computed (checked here, before any source opens: `model_kind`).
        size: output (height, width) (the frame is resized first), or None to keep the input size.
        split: the alpha comes from a stage before this one (`SegmentStage`'s coarse matte, refined here,
            or `RVMStage`'s final alpha and foreground); see `matte_stages`.
        engines: as for `MattingStage`.
    """

    def __init__(self, background: Background, settings: MatteSettings = MatteSettings(),
                 size: tuple[int, int] | None = None, name: str = "matte", split: bool = False,
                 engines: "Engines | None" = None):
        super().__init__(settings, size, name, engines)
        self.background = background
        self.split = split
        self.kind = model_kind(settings)
        self.matter = None
        self.refiner = None

    def setup(self, info: StreamInfo) -> StreamInfo:
        h, w = self.size or (info.height, info.width)
        if self.split:
            if self.kind == "segmenter":
                from neuralframe.matting.refine import Refiner

                self.refiner = Refiner(self.settings.refine, impl=self.settings.impl)
        else:
            self.matter = make_matter(self.settings, self._engines()).prepare(h, w)
        self.background.setup(h, w)
        return info.resized(h, w)

    def process(self, frame: Frame) -> Frame:
        image = self.input(frame)
        foreground = None
        if self.split and self.kind == "rvm":
            alpha, foreground = frame.metadata.get("alpha"), frame.metadata.get("foreground")
            if alpha is None or foreground is None:
                raise InputError(f"frame {frame.index} has no RVM matte: an rvm stage must come first")
            timings = {"rvm": frame.metadata.get("segment_ms", 0.0)}
        elif self.split:
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
        out = self.background.composite(foreground, alpha, frame.replace(image=image), impl=self.settings.impl)
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


class SegmentStage(MattingStage):
    """The first half of a matting effect on its own thread: segment (and stabilise) each frame; the
    coarse matte and the guide travel in `frame.metadata["coarse"]` to a `MatteStage(split=True)`."""

    def __init__(self, settings: MatteSettings = MatteSettings(), size: tuple[int, int] | None = None,
                 engines: "Engines | None" = None):
        super().__init__(settings, size, "segment", engines)

    def setup(self, info: StreamInfo) -> StreamInfo:
        from neuralframe.matting.refine import Refiner
        from neuralframe.matting.segmenter import SegmenterRunner

        h, w = self.size or (info.height, info.width)
        s = self.settings
        self.segmenter = SegmenterRunner(s.variant, self._engines(), s.model, impl=s.impl).prepare(h, w)
        self.refiner = Refiner(s.refine, impl=s.impl)
        return info.resized(h, w)

    def process(self, frame: Frame) -> Frame:
        image = self.input(frame)
        t0 = time.perf_counter()
        mask, guide = self.segmenter(image)
        mask = self.refiner.coarse(mask, guide)
        ms = (time.perf_counter() - t0) * 1e3
        return frame.replace(image=image, metadata=dict(frame.metadata, coarse=mask, segment_ms=ms))

    def teardown(self) -> None:
        self.segmenter.close()


class RVMStage(MattingStage):
    """The first half of a matting effect with RVM, on its own thread: the final alpha and RVM's foreground
    travel in `frame.metadata["alpha"]` and `["foreground"]` to a `MatteStage(split=True)`, which composites.

    Args:
        settings: `MatteSettings` whose `model` is an RVM .pth.
        size: output (height, width) (the frame is resized first), or None to keep the input size.
        engines: as for `MattingStage`.
    """

    def __init__(self, settings: MatteSettings, size: tuple[int, int] | None = None,
                 engines: "Engines | None" = None):
        super().__init__(settings, size, "rvm", engines)
        self.matter = None

    def setup(self, info: StreamInfo) -> StreamInfo:
        h, w = self.size or (info.height, info.width)
        self.matter = make_matter(self.settings, self._engines()).prepare(h, w)  # a fresh stream: zero state
        return info.resized(h, w)

    def process(self, frame: Frame) -> Frame:
        image = self.input(frame)
        alpha = self.matter(image)
        metadata = dict(frame.metadata, alpha=alpha, foreground=self.matter.foreground,
                        segment_ms=self.matter.timings["rvm"])
        return frame.replace(image=image, metadata=metadata)

    def teardown(self) -> None:
        if self.matter is not None:
            self.matter.close()


def matte_stages(background: Background, settings: MatteSettings = MatteSettings(),
                 size: tuple[int, int] | None = None, name: str = "matte",
                 engines: "Engines | None" = None) -> list[Stage]:
    """`MatteStage`'s work as two stages on two threads: segment | refine + composite, or with an RVM model
    rvm | composite. Same output, frame for frame."""
    stage = MatteStage(background, settings, size, name=name, split=True, engines=engines)
    first = RVMStage if stage.kind == "rvm" else SegmentStage
    return [first(settings, size, engines=engines), stage]
