"""How the alpha is computed: `MatteSettings`, and the frame -> alpha object for one stream.

    matter = make_matter(MatteSettings()).prepare(720, 1280)       # the bundled segmenter + refinement
    matter = make_matter(MatteSettings(model="rvm_mobilenetv3.pth"), engines)   # Robust Video Matting
    alpha = matter(frame_u8)          # uint8 [H, W, 3] -> float32 [H, W]; matter.foreground (RVM) or None

The networks run on the engines handed in (`engines.py`); without any, torch on `settings.device`. The app
builds them for `settings.backend` (`neuralframe.export.matting.matting_engines`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from neuralframe.errors import InputError
from neuralframe.matting.refine import RefineSettings
from neuralframe.matting.rvm_matter import RVM_SUFFIXES

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from neuralframe.matting.engines import Engines
    from neuralframe.matting.rvm_matter import RVMMatter


@dataclass(frozen=True)
class MatteSettings:
    """How the alpha is computed.

    Args:
        variant: segmenter "auto", "general" (256x256) or "landscape" (144x256).
        backend: "torch", "onnx" (onnxruntime) or "tensorrt": the app builds the engines for it
            (`neuralframe.export.matting.matting_engines`) and hands them to the stages.
        device: torch device for the torch backend ("cpu", "cuda", "auto").
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


def default_engines(settings: MatteSettings) -> "Engines":
    """The engines when none are handed in: torch on `settings.device`. Only an app builds the others."""
    from neuralframe.matting.engines import TorchEngines

    if settings.backend != "torch":
        raise InputError(f"matting backend '{settings.backend}' needs its engines from the app: pass "
                         "engines=neuralframe.export.matting.matting_engines(backend, device)")
    return TorchEngines(settings.device)


def make_matter(settings: MatteSettings, engines: "Engines | None" = None) -> "Matter | RVMMatter":
    """The frame -> alpha object for one stream: `Matter` (segmenter + refiner) or `RVMMatter`."""
    kind = model_kind(settings)
    engines = engines if engines is not None else default_engines(settings)
    if kind == "rvm":
        from neuralframe.matting.rvm_matter import RVMMatter

        return RVMMatter(settings.model, settings.downsample_ratio, engines, impl=settings.impl)
    return Matter(settings, engines)


class Matter:
    """Frame -> alpha for one stream: segmenter, then refiner (which keeps the temporal state).

    `__call__(image)`: uint8 [H, W, 3] -> float32 [H, W] in [0, 1]. `timings` holds the last call's
    milliseconds per step ("segment", "refine"). `foreground` is None: the frame itself is composited
    (`RVMMatter`, on the same interface, predicts one).
    """

    foreground = None

    def __init__(self, settings: MatteSettings = MatteSettings(), engines: "Engines | None" = None):
        from neuralframe.matting.refine import Refiner
        from neuralframe.matting.segmenter import SegmenterRunner

        self.settings = settings
        engines = engines if engines is not None else default_engines(settings)
        self.segmenter = SegmenterRunner(settings.variant, engines, settings.model, impl=settings.impl)
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
