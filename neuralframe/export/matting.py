"""Engines for the matting networks' `--backend`, built when a stream starts (the apps hand them in).

    engines = matting_engines("tensorrt")           # or "torch" (with a device), "onnx"
    runner = SegmenterRunner(engines=engines)       # neuralframe.matting takes any `Engines`

The matting runners know their network's input shapes only once the first frame's size is known, so
they describe it then (`neuralframe.matting.engines.Network`) and call the engines: "onnx" exports it to
ONNX at those shapes (in a temporary folder) and loads it into onnxruntime; "tensorrt" builds a float16
TensorRT engine from that export (cached by the graph's hash, `tensorrt.static_engine`).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from neuralframe.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from neuralframe.backend.runtime import Engine
    from neuralframe.matting.engines import Engines, Network

# the matting runners' names for a --backend value (the CLI reads "onnxruntime" as "onnx")
BACKENDS = ("torch", "onnx", "tensorrt")


@dataclass(frozen=True)
class ExportedEngines:
    """A network exported to ONNX at its static shapes and run in onnxruntime ("onnx"), or built into a
    float16 TensorRT engine ("tensorrt"; an NVIDIA GPU and `pip install tensorrt`)."""

    backend: str = "onnx"

    def __call__(self, network: "Network") -> "Engine":
        from neuralframe.backend.runtime import OnnxEngine, require_tensorrt

        if self.backend == "tensorrt":
            require_tensorrt("--backend tensorrt")  # before the export, not after it
        # onnxruntime reads the file when the session opens and TensorRT keeps its own cached copy: the
        # export need not outlive this call
        with tempfile.TemporaryDirectory(prefix="nf-matting-") as tmp:
            onnx_path = network.export(Path(tmp))
            if self.backend == "tensorrt":
                from neuralframe.export.tensorrt import static_engine

                return static_engine(onnx_path, network.name, network.shapes)
            return OnnxEngine(onnx_path)


def matting_engines(backend: str = "torch", device: str = "cpu") -> "Engines":
    """The engines for a matting backend: "torch" (the module on `device`), "onnx" or "tensorrt"."""
    from neuralframe.matting.engines import TorchEngines

    if backend not in BACKENDS:
        raise InputError(f"unknown matting backend '{backend}': use {' or '.join(BACKENDS)}")
    return TorchEngines(device) if backend == "torch" else ExportedEngines(backend)
