"""TensorRT engines from the exported ONNX: built with the TensorRT Python API, cached, run on the engine
protocol.

    trt = require_tensorrt()                                   # or a one-line error saying what to install
    path, info = build_engine(onnx_path, graph, "fp16", dynamic=True, cache_dir=default_cache_dir())
    engine = TensorRTEngine(path)                              # named CUDA tensors in, named tensors out
    out = engine(src=x, r1i=r1, ...)

Engines are cached by the ONNX file's hash, the input shapes (static shapes, or the optimisation profile
of the dynamic axes), the precision, the TensorRT version and the GPU's architecture: a cached engine is
reused only where it was built for exactly that. fp16 and int8 are builder flags on the float32 ONNX
(TensorRT picks each layer's precision; int8 is calibrated by TensorRT's entropy calibrator on the same
feeds onnxruntime's int8 uses). A graph with `fp16_ops` keeps its other float layers in float32.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from neuralframe.backend.runtime import TensorRTEngine, require_tensorrt
from neuralframe.export.onnx import ExportError, atomic_path
from neuralframe.export.specs import Graph

WORKSPACE = 4 << 30


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "neuralframe" / "tensorrt"


def gpu_arch() -> str:
    import torch

    major, minor = torch.cuda.get_device_capability()
    return f"sm_{major}{minor}"


def _shapes(onnx_path: Path, graph: Graph, dynamic: bool) -> dict[str, Any]:
    if dynamic:
        return {name: [list(s) for s in shapes] for name, shapes in sorted(graph.profile.items())}
    example = graph.example()
    return {name: list(example[name].shape) for name in graph.inputs}


def cache_key(onnx_path: Path, shapes: dict[str, Any], precision: str, trt_version: str, arch: str) -> str:
    digest = hashlib.sha256()
    with open(onnx_path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    key = {"onnx_sha256": digest.hexdigest(), "shapes": shapes, "precision": precision, "tensorrt": trt_version,
           "gpu_arch": arch}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]


def _calibrator(trt, feeds: list[dict[str, Any]], cache: Path):
    import torch

    class Calibrator(trt.IInt8EntropyCalibrator2):
        """Feeds calibration batches from CUDA tensors; keeps the table beside the engine cache."""

        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.index = 0
            self.buffers: dict[str, torch.Tensor] = {}

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names):
            if self.index >= len(feeds):
                return None
            feed = feeds[self.index]
            self.index += 1
            self.buffers = {n: torch.from_numpy(feed[n]).cuda().contiguous() for n in names}
            return [int(self.buffers[n].data_ptr()) for n in names]

        def read_calibration_cache(self):
            return cache.read_bytes() if cache.is_file() else None

        def write_calibration_cache(self, data) -> None:
            cache.write_bytes(bytes(data))

    return Calibrator()


def _keep_float32(trt, network, fp16_ops: tuple[str, ...]) -> int:
    """Constrain float layers other than the ones float16 is meant for to float32; returns how many."""
    allowed = {"MatMul": trt.LayerType.MATRIX_MULTIPLY, "Gemm": trt.LayerType.MATRIX_MULTIPLY,
               "Relu": trt.LayerType.ACTIVATION, "Sigmoid": trt.LayerType.ACTIVATION}
    keep_types = {allowed[o] for o in fp16_ops if o in allowed}
    skip = {trt.LayerType.CONSTANT, trt.LayerType.SHAPE}
    count = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type in keep_types or layer.type in skip:
            continue
        outs = [layer.get_output(j) for j in range(layer.num_outputs)]
        if outs and all(t.dtype == trt.float32 for t in outs):
            layer.precision = trt.float32
            for j in range(layer.num_outputs):
                layer.set_output_type(j, trt.float32)
            count += 1
    return count


def build_engine(onnx_path: Path, graph: Graph, precision: str, dynamic: bool,
                 cache_dir: Path | None = None) -> tuple[Path, dict[str, Any]]:
    """The engine for `onnx_path` at `precision` ("fp32", "fp16", "int8"), from the cache or built now."""
    trt = require_tensorrt()
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    shapes = _shapes(onnx_path, graph, dynamic)
    arch = gpu_arch()
    key = cache_key(onnx_path, shapes, precision, trt.__version__, arch)
    engine_path = cache_dir / f"{graph.name}-{precision}-{key}.engine"
    info = {"precision": precision, "tensorrt": trt.__version__, "gpu_arch": arch, "shapes": shapes,
            "cache_key": key, "cache": str(engine_path)}
    if engine_path.is_file():
        return engine_path, {**info, "cached": True}
    cache_dir.mkdir(parents=True, exist_ok=True)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [parser.get_error(i).desc() for i in range(parser.num_errors)]
        raise ExportError(f"{onnx_path.name}: TensorRT's ONNX parser failed: {errors[0] if errors else 'unknown'}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE)
    profile = None
    if dynamic:
        profile = builder.create_optimization_profile()
        for name, (lo, opt, hi) in graph.profile.items():
            profile.set_shape(name, tuple(lo), tuple(opt), tuple(hi))
        config.add_optimization_profile(profile)
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        if graph.int8 is None:
            raise ExportError(f"{graph.name}: int8 is not supported for this model yet")
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = _calibrator(trt, graph.int8.calibration(), engine_path.with_suffix(".calib"))
        if profile is not None:
            config.set_calibration_profile(profile)
    if precision != "fp32" and graph.fp16_ops is not None:
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        info["float32_layers"] = _keep_float32(trt, network, graph.fp16_ops)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError(f"{onnx_path.name}: TensorRT could not build a {precision} engine (see its log above)")
    with atomic_path(engine_path) as tmp:
        tmp.write_bytes(bytes(serialized))
    return engine_path, {**info, "cached": False}


class _StaticGraph:
    """What `build_engine` reads of a Graph, for an ONNX file exported at fixed shapes outside the model
    registry (the matting runners export one graph per frame size)."""

    def __init__(self, name: str, shapes: dict[str, tuple[int, ...]], fp16_ops: tuple[str, ...] | None = None):
        self.name, self.shapes, self.fp16_ops = name, shapes, fp16_ops
        self.inputs, self.profile, self.int8 = tuple(shapes), {}, None

    def example(self) -> dict[str, Any]:
        import torch

        return {name: torch.empty(shape) for name, shape in self.shapes.items()}


def static_engine(onnx_path: Path, name: str, shapes: dict[str, tuple[int, ...]], precision: str = "fp16",
                  fp16_ops: tuple[str, ...] | None = None, cache_dir: Path | None = None) -> TensorRTEngine:
    """A TensorRT engine (cached like the exports') for an ONNX graph with static input shapes."""
    path, _ = build_engine(Path(onnx_path), _StaticGraph(name, shapes, fp16_ops), precision, False, cache_dir)
    return TensorRTEngine(path)


__all__ = ["TensorRTEngine", "build_engine", "default_cache_dir", "require_tensorrt", "static_engine"]
