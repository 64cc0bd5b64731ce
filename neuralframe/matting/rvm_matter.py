"""Robust Video Matting as the matting model of the effects and of the `matte` job (`--model rvm_mobilenetv3.pth`).

    matter = RVMMatter("rvm_mobilenetv3.pth").prepare(720, 1280)   # downsample_ratio 0.375 for 720p
    alpha = matter(frame_u8)             # uint8 [H, W, 3] -> float32 [H, W]; matter.foreground uint8 [H, W, 3]

RVM's alpha (`pha`) is used as it comes, without the segmenter path's refinement (temporal stabiliser and
fast guided filter): RVM already resolves edges at full resolution with its own deep guided filter and is
temporally coherent through its recurrent state, so a second filter would only soften the edges it found
and make the matte lag behind motion that the recurrence follows. RVM also predicts the foreground colours
(`fgr`), which the effects composite instead of the raw frame, so the old background does not tint soft
edges such as hair.

The recurrent state r1..r4 is explicit: the network (`rvm.RVMStep`, behind the shared Engine protocol, so
torch and onnxruntime run the same call) takes it in and gives it back, and this object only keeps the
latest one for its stream. `prepare()` (a new stream) and `reset()` start again from the zero state.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from neuralframe.errors import InputError
from neuralframe.streaming.frame import Frame, StreamInfo
from neuralframe.streaming.pipeline import Stage

if TYPE_CHECKING:  # pragma: no cover
    import torch

RVM_SUFFIXES = (".pth", ".pt")
BACKENDS = ("torch", "onnx", "tensorrt")
# RVM's own advice for portraits: 0.25 at 1920x1080, 0.375 at 1280x720, 0.125 at 4K, i.e. the network
# sees about 480 pixels along the long side; smaller frames run at full size
LONG_SIDE = 480


def default_downsample_ratio(height: int, width: int) -> float:
    """The downsample_ratio used when none is given: about 480 pixels on the long side, at most 1."""
    return min(1.0, LONG_SIDE / max(int(height), int(width)))


class RVMMatter:
    """Frame -> alpha (and foreground) for one stream with RVM, carrying the recurrent state between frames.

    Args:
        path: an RVM state dict (.pth) in the official `rvm_mobilenetv3.pth` layout.
        downsample_ratio: the scale the network runs at, in (0, 1]; None: `default_downsample_ratio`.
        backend: "torch" (our module), "onnx" (our module exported and run in onnxruntime) or "tensorrt"
            (the same export built into a float16 TensorRT engine for this frame size; NVIDIA GPU).
        device: torch device for the torch backend ("cpu", "cuda", "auto").
        impl: implementation of the fused conversion kernels.

    `__call__(image)`: uint8 [H, W, 3] -> float32 [H, W] in [0, 1]; afterwards `foreground` holds RVM's
    foreground uint8 [H, W, 3], `state` the recurrent state (r1..r4) the next frame starts from, and
    `timings` the call's milliseconds ({"rvm": ms}). A frame of another size starts a new stream.
    """

    def __init__(self, path: str | os.PathLike, downsample_ratio: float | None = None, backend: str = "torch",
                 device: str = "cpu", impl: str = "auto"):
        from neuralframe.matting.rvm import check_downsample_ratio

        if backend not in BACKENDS:
            raise InputError(f"unknown matting backend '{backend}': use {' or '.join(BACKENDS)}")
        self.path = Path(path)
        self.downsample_ratio = None if downsample_ratio is None else check_downsample_ratio(downsample_ratio)
        self.backend = backend
        self.device = device
        self.impl = impl
        self.model = None
        self.engine = None
        self.size: tuple[int, int] | None = None
        self.ratio: float | None = None
        self.state: tuple["torch.Tensor", ...] | None = None
        self.foreground: "torch.Tensor | None" = None
        self.timings: dict[str, float] = {}
        self._zeros: tuple["torch.Tensor", ...] | None = None
        self._tmp = None

    def prepare(self, height: int, width: int) -> "RVMMatter":
        """Load the weights (once) and build the network for frames of this size; starts a new stream."""
        import torch

        from neuralframe.backend import fused
        from neuralframe.backend.runtime import OnnxEngine, TorchEngine
        from neuralframe.matting import rvm

        if self.model is None:
            self.model = rvm.load_rvm(self.path)
            for param in self.model.parameters():
                param.requires_grad_(False)
        ratio = self.downsample_ratio or default_downsample_ratio(height, width)
        example = torch.zeros((1, 3, height, width))
        zeros = self.model.initial_state(example, ratio)  # InputError if the ratio leaves less than a pixel
        self.close()
        if self.backend == "tensorrt":
            from neuralframe.backend.runtime import require_tensorrt

            require_tensorrt("--backend tensorrt")  # before the export, not after it
        if self.backend == "torch":
            self.engine = TorchEngine(rvm.RVMStep(self.model, ratio), inputs=rvm.ONNX_INPUTS,
                                      outputs=rvm.ONNX_OUTPUTS, device=self.device)
            zeros = tuple(r.to(self.engine.device) for r in zeros)
        else:
            import tempfile

            self._tmp = tempfile.TemporaryDirectory(prefix="nf-rvm-")
            onnx_path = rvm.export_onnx(self.model, Path(self._tmp.name) / "rvm.onnx", size=(height, width),
                                        downsample_ratio=ratio)
            if self.backend == "tensorrt":
                from neuralframe.export.tensorrt import static_engine

                shapes = {"src": (1, 3, height, width), **{n: tuple(r.shape) for n, r in
                                                              zip(rvm.ONNX_INPUTS[1:], zeros)}}
                self.engine = static_engine(onnx_path, f"rvm-{height}x{width}-r{ratio:g}", shapes)
            else:
                self.engine = OnnxEngine(onnx_path)
        self._zeros = zeros
        self.size, self.ratio = (int(height), int(width)), ratio
        # load the conversion kernels now (or from Numba's cache), not on the first frame's clock
        fused.to_uint8(fused.to_float(torch.zeros((2, 2, 3), dtype=torch.uint8), impl=self.impl), impl=self.impl)
        self.reset()
        return self

    def reset(self) -> None:
        """Forget the stream: the next frame starts from the zero state."""
        self.state = None
        self.foreground = None

    def __call__(self, image: "torch.Tensor") -> "torch.Tensor":  # image [H, W, 3] uint8
        from neuralframe.backend import fused

        if image.ndim != 3 or image.shape[2] != 3:
            raise InputError(f"RVM takes uint8 [H, W, 3] frames, got {list(image.shape)}")
        h, w = int(image.shape[0]), int(image.shape[1])
        if self.engine is None or (h, w) != self.size:
            self.prepare(h, w)
        t0 = time.perf_counter()
        src = fused.to_float(image, impl=self.impl)[None]  # [1, 3, H, W] in [0, 1]
        r1, r2, r3, r4 = self.state if self.state is not None else self._zeros
        out = self.engine(src=src, r1i=r1, r2i=r2, r3i=r3, r4i=r4)
        self.state = (out["r1o"], out["r2o"], out["r3o"], out["r4o"])
        alpha = out["pha"][0, 0].float().cpu().contiguous()  # [H, W]
        self.foreground = fused.to_uint8(out["fgr"][0].float().cpu(), impl=self.impl)  # [H, W, 3]
        self.timings = {"rvm": (time.perf_counter() - t0) * 1e3}
        return alpha

    def close(self) -> None:
        self.engine = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


class RVMStage(Stage):
    """The first half of a matting effect with RVM, on its own thread: the final alpha and RVM's foreground
    travel in `frame.metadata["alpha"]` and `["foreground"]` to a `MatteStage(split=True)`, which composites.

    Args:
        settings: `effects.MatteSettings` whose `model` is an RVM .pth.
        size: output (height, width) (the frame is resized first), or None to keep the input size.
    """

    def __init__(self, settings, size: tuple[int, int] | None = None):
        self.settings = settings
        self.size = size
        self.name = "rvm"
        self.matter: RVMMatter | None = None
        self._threads_set = False

    def setup(self, info: StreamInfo) -> StreamInfo:
        from neuralframe.matting.effects import make_matter

        h, w = self.size or (info.height, info.width)
        self.matter = make_matter(self.settings).prepare(h, w)  # a fresh stream: zero state
        return info.resized(h, w)

    def process(self, frame: Frame) -> Frame:
        from neuralframe.matting.effects import stage_input

        image = stage_input(self, frame)
        alpha = self.matter(image)
        metadata = dict(frame.metadata, alpha=alpha, foreground=self.matter.foreground,
                        segment_ms=self.matter.timings["rvm"])
        return frame.replace(image=image, metadata=metadata)

    def teardown(self) -> None:
        if self.matter is not None:
            self.matter.close()
