"""How a matting runner gets the engine its network runs on, without knowing which backend builds it.

    network = Network("segmenter-landscape", ("image",), ("mask",), {"image": (1, 3, 144, 256)},
                      torch_module=lambda device: model, export=lambda folder: write_onnx(folder))
    engine = engines(network)              # an `Engine` (backend/runtime.py): named tensors in and out

The runners (`segmenter.SegmenterRunner`, `rvm_matter.RVMMatter`) describe their network for one frame
size as a `Network` when a stream starts, and hand it to the `Engines` they were given. `TorchEngines`
runs the module itself; the app hands in others for `--backend onnxruntime|tensorrt`
(`neuralframe.export.matting.matting_engines`), so this domain never imports the exporters.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from neuralframe.backend.runtime import Engine


@dataclass(frozen=True)
class Network:
    """A matting network at fixed input shapes, as an engine maker needs it.

    Args:
        name: names the built engine (and a TensorRT engine's cache file), e.g. "rvm-144x256-r0.5".
        inputs: input names, in the order the torch module takes them.
        outputs: output names, in the order the torch module returns them.
        shapes: each input's static shape, e.g. {"image": (1, 3, 144, 256)}.
        torch_module: the module the torch engine runs on a device (a CPU may get another layout).
        export: writes the network's ONNX graph into a folder; returns the file's path.
    """

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    shapes: dict[str, tuple[int, ...]]
    torch_module: Callable[["torch.device"], "torch.nn.Module"]
    export: Callable[[Path], Path]


class Engines(Protocol):
    """Builds the engine for a network: called once per stream (and frame size) by a runner."""

    def __call__(self, network: Network) -> "Engine": ...


@dataclass(frozen=True)
class TorchEngines:
    """The network's torch module itself, on `device` ("cpu", "cuda[:N]" or "auto")."""

    device: str = "cpu"

    def __call__(self, network: Network) -> "Engine":
        from neuralframe.backend.device import resolve_device
        from neuralframe.backend.runtime import TorchEngine

        device = resolve_device(self.device)
        return TorchEngine(network.torch_module(device), inputs=network.inputs, outputs=network.outputs,
                           device=str(device))
