"""Engines for a model's exported graphs, for the commands that run on them (`--backend`).

    engines = exported_engines("nerf-field", "scene.safetensors", "onnxruntime")   # {"nerf-field": engine}
    out = engines["nerf-field"](x=points, d=directions)
    make = engine_factory("tiny-shapes")           # for domain code that builds them when it needs them
    engines = make("model-folder", "onnxruntime", ("unet",))

The apps build engines here and hand them (or a factory) to the domain code that runs them
(`render.scene.NerfScene.use_engine`, `generate.models.engines.use_backend`), which never imports this
package.

The model is exported once with `neuralframe export MODEL --model PATH --dynamic` (parity checks
included) into a cache keyed by the weights' content, and every later run loads the cached graphs:
onnxruntime runs them directly; tensorrt builds (and caches) float16 engines from them on an NVIDIA GPU.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

from neuralframe.errors import OutputError

CACHE_VERSION = 3  # bump when the exporters change what they write


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "neuralframe" / "onnx"


def weights_key(path: Path) -> str:
    """sha256 of a weights file, or of a model folder's configs and weights (names and bytes)."""
    digest = hashlib.sha256(f"neuralframe-export-cache-{CACHE_VERSION}".encode())
    files = [path] if path.is_file() else sorted(f for f in path.rglob("*") if f.is_file() and
                                                 f.suffix in (".json", ".safetensors", ".bin", ".pth", ".txt"))
    for f in files:
        digest.update(str(f.relative_to(path) if f != path else f.name).encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def exported_graphs(model: str, model_path: str | os.PathLike, cache_dir: Path | None = None,
                    say: Callable[[str], None] | None = None) -> Path:
    """The folder of MODEL's ONNX graphs for these weights (exported, checked and cached on first use)."""
    from neuralframe.export.run import ExportSettings, export

    source = Path(model_path)
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    target = cache / f"{model}-{source.resolve().name}-{weights_key(source)}"
    report = target / f"{model}.report.json"
    if report.is_file() and json.loads(report.read_text()).get("passed"):
        return target
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"{cache}: the ONNX cache folder cannot be created ({error.strerror or error}); "
                          "set XDG_CACHE_HOME to a writable folder") from None
    (say or (lambda m: None))(f"exporting {source} to ONNX once (cached in {target})")
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        export(ExportSettings(model, out=str(tmp), model_path=str(source), dynamic=True, runs=2))
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def exported_engines(model: str, model_path: str | os.PathLike, backend: str, graphs: tuple[str, ...] | None = None,
                     threads: int | None = None, cache_dir: Path | None = None,
                     say: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Engines (named by graph) running MODEL's exported graphs on `backend` ("onnxruntime" or "tensorrt")."""
    from neuralframe.backend.runtime import resolve_backend

    backend = resolve_backend(backend)
    if backend == "torch":
        raise ValueError("exported_engines is for onnxruntime and tensorrt; torch runs the module itself")
    if backend == "tensorrt":
        from neuralframe.backend.runtime import require_tensorrt

        require_tensorrt("--backend tensorrt")
    folder = exported_graphs(model, model_path, cache_dir, say)
    report = json.loads((folder / f"{model}.report.json").read_text())
    names = graphs or tuple(g["name"] for g in report["graphs"])
    if backend == "onnxruntime":
        from neuralframe.backend.runtime import OnnxEngine

        return {name: OnnxEngine(folder / f"{name}.onnx", providers="auto", threads=threads or 0) for name in names}
    from neuralframe.backend.runtime import TensorRTEngine
    from neuralframe.export.specs import BuildOptions, model_entry
    from neuralframe.export.tensorrt import build_engine

    specs = {g.name: g for g in model_entry(model).build(BuildOptions(model_path=str(model_path), dynamic=True))}
    return {name: TensorRTEngine(build_engine(folder / f"{name}.onnx", specs[name], "fp16", True)[0])
            for name in names}


def engine_factory(model: str, threads: int | None = None, cache_dir: Path | None = None,
                   say: Callable[[str], None] | None = None) -> Callable[..., dict[str, Any]]:
    """`exported_engines` for MODEL as a callable `(model_path, backend, graphs) -> {name: engine}`, the form
    domain code takes it in (`neuralframe.generate.models.engines.EngineFactory`)."""
    return functools.partial(exported_engines, model, threads=threads, cache_dir=cache_dir, say=say)
