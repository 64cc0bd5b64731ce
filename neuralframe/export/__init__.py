"""Edge export: every model to ONNX, checked against PyTorch in onnxruntime, and to TensorRT engines.

    from neuralframe.export import ExportSettings, export
    report = export(ExportSettings("segmenter", out="out/export", int8=True))

Modules: `specs` (the model registry, graphs, tolerances), one builder per model (`segmenter`, `rvm`,
`nerf`), `onnx` (trace, check, describe, float16), `lint` (TensorRT 10's operator set), `parity`
(random and real inputs, timing), `quantize` (int8), `tensorrt` (engines, cache, runner), `matting`
(the matting runners' onnxruntime/TensorRT engines, built when a stream starts), `run` (the command's
steps), `table` (the terminal report). Importing this package imports neither torch nor onnx.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ExportSettings", "MODELS", "export"]


def __getattr__(name: str) -> Any:
    if name in ("ExportSettings", "export"):
        from neuralframe.export import run

        return getattr(run, name)
    if name == "MODELS":
        from neuralframe.export.specs import MODELS

        return MODELS
    raise AttributeError(name)
