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
torch, onnxruntime and TensorRT run the same call) takes it in and gives it back, and this object only
keeps the latest one for its stream. `prepare()` (a new stream) and `reset()` start again from the zero
state. The engine comes from the `Engines` handed in (`engines.py`): torch by default.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from neuralframe.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from neuralframe.matting.engines import Engines, Network

RVM_SUFFIXES = (".pth", ".pt")
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
        engines: builds the network's engine for each frame size (`engines.TorchEngines()` by default;
            the app hands in onnxruntime or TensorRT ones for `--backend`).
        impl: implementation of the fused conversion kernels.

    `__call__(image)`: uint8 [H, W, 3] -> float32 [H, W] in [0, 1]; afterwards `foreground` holds RVM's
    foreground uint8 [H, W, 3], `state` the recurrent state (r1..r4) the next frame starts from, and
    `timings` the call's milliseconds ({"rvm": ms}). A frame of another size starts a new stream.
    """

    def __init__(self, path: str | os.PathLike, downsample_ratio: float | None = None,
                 engines: "Engines | None" = None, impl: str = "auto"):
        from neuralframe.matting.engines import TorchEngines
        from neuralframe.matting.rvm import check_downsample_ratio

        self.path = Path(path)
        self.downsample_ratio = None if downsample_ratio is None else check_downsample_ratio(downsample_ratio)
        self.engines = engines if engines is not None else TorchEngines()
        self.impl = impl
        self.model = None
        self.engine = None
        self.size: tuple[int, int] | None = None
        self.ratio: float | None = None
        self.state: tuple["torch.Tensor", ...] | None = None
        self.foreground: "torch.Tensor | None" = None
        self.timings: dict[str, float] = {}
        self._zeros: tuple["torch.Tensor", ...] | None = None

    def network(self, height: int, width: int, ratio: float, zeros: tuple["torch.Tensor", ...]) -> "Network":
        """RVM as an engine maker takes it: one step at this frame size, `ratio` baked in, state explicit."""
        from neuralframe.matting import rvm
        from neuralframe.matting.engines import Network

        model = self.model
        shapes = {"src": (1, 3, height, width), **{n: tuple(r.shape) for n, r in zip(rvm.ONNX_INPUTS[1:], zeros)}}
        return Network(f"rvm-{height}x{width}-r{ratio:g}", tuple(rvm.ONNX_INPUTS), tuple(rvm.ONNX_OUTPUTS), shapes,
                       torch_module=lambda device: rvm.RVMStep(model, ratio),
                       export=lambda folder: rvm.export_onnx(model, folder / "rvm.onnx", size=(height, width),
                                                             downsample_ratio=ratio))

    def prepare(self, height: int, width: int) -> "RVMMatter":
        """Load the weights (once) and build the network for frames of this size; starts a new stream."""
        import torch

        from neuralframe.backend import fused
        from neuralframe.matting import rvm

        if self.model is None:
            self.model = rvm.load_rvm(self.path)
            for param in self.model.parameters():
                param.requires_grad_(False)
        ratio = self.downsample_ratio or default_downsample_ratio(height, width)
        example = torch.zeros((1, 3, height, width))
        zeros = self.model.initial_state(example, ratio)  # InputError if the ratio leaves less than a pixel
        self.close()
        self.engine = self.engines(self.network(height, width, ratio, zeros))
        device = getattr(self.engine, "device", None)  # a torch engine's: the state lives beside the network
        if device is not None:
            zeros = tuple(r.to(device) for r in zeros)
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
