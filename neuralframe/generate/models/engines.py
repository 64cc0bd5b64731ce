"""A text-to-image pipeline's networks on exported engines, the pipeline itself unchanged.

    pipe = load_pipeline(folder)
    use_backend(pipe, folder, "onnxruntime")   # text encoder, UNet and decoder now run in onnxruntime

The folder's components are exported once (`neuralframe export tiny-shapes --model FOLDER --dynamic`, with
its parity checks) into a cache keyed by the weights' content, then every later run loads the cached
graphs. The torch modules stay in the pipeline (diffusers reads their configs, dtypes and devices); only
their computation is routed: `text_encoder.forward`, `unet.forward` and `vae.decode` call the engines with
the same arguments and return what the modules return. `tensorrt` builds engines from the same graphs
(NVIDIA GPU and `pip install tensorrt`; elsewhere a clear error).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

import torch

from neuralframe.errors import InputError, OutputError

GRAPHS = ("text-encoder", "unet", "vae-decoder")


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "neuralframe" / "onnx"


def weights_key(folder: Path) -> str:
    """sha256 of the folder's configs and weights (names and bytes): the cache key of its exports."""
    digest = hashlib.sha256()
    for part in ("text_encoder", "unet", "vae"):
        for f in sorted((folder / part).iterdir()):
            if f.is_file() and f.suffix in (".json", ".safetensors", ".bin"):
                digest.update(f"{part}/{f.name}".encode())
                with open(f, "rb") as fh:
                    for block in iter(lambda: fh.read(1 << 20), b""):
                        digest.update(block)
    return digest.hexdigest()[:16]


def exported_graphs(folder: Path, cache_dir: Path | None = None, say: Callable[[str], None] | None = None) -> Path:
    """The folder of the pipeline's ONNX graphs (exported, checked and cached on first use)."""
    from neuralframe.export.run import ExportSettings, export

    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    target = cache / f"{folder.resolve().name}-{weights_key(folder)}"
    report = target / "tiny-shapes.report.json"
    if report.is_file() and json.loads(report.read_text()).get("passed"):
        return target
    (say or (lambda m: None))(f"exporting {folder} to ONNX once (cached in {target})")
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"{cache}: the ONNX cache folder cannot be created ({error.strerror or error}); "
                          "set XDG_CACHE_HOME to a writable folder") from None
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        export(ExportSettings("tiny-shapes", out=str(tmp), model_path=str(folder), dynamic=True, runs=2))
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _engines(folder: Path, graphs: Path, backend: str, threads: int | None) -> dict[str, Any]:
    if backend == "onnxruntime":
        from neuralframe.backend.runtime import OnnxEngine

        return {name: OnnxEngine(graphs / f"{name}.onnx", providers="auto", threads=threads or 0) for name in GRAPHS}
    from neuralframe.export.specs import BuildOptions, model_entry
    from neuralframe.backend.runtime import TensorRTEngine, require_tensorrt
    from neuralframe.export.tensorrt import build_engine

    require_tensorrt("--backend tensorrt")
    specs = {g.name: g for g in model_entry("tiny-shapes").build(BuildOptions(model_path=str(folder), dynamic=True))}
    return {name: TensorRTEngine(build_engine(graphs / f"{name}.onnx", specs[name], "fp16", True)[0])
            for name in GRAPHS}


def use_backend(pipe, folder: str | os.PathLike, backend: str, threads: int | None = None,
                cache_dir: Path | None = None, say: Callable[[str], None] | None = None) -> None:
    """Route the pipeline's text encoder, UNet and decoder through `backend` ("torch" leaves it as it is)."""
    from neuralframe.backend.runtime import resolve_backend

    backend = resolve_backend(backend)
    if backend == "torch":
        return
    if backend == "tensorrt":
        from neuralframe.backend.runtime import require_tensorrt

        require_tensorrt("--backend tensorrt")
    folder = Path(folder)
    engines = _engines(folder, exported_graphs(folder, cache_dir, say), backend, threads)
    text, unet, decoder = engines["text-encoder"], engines["unet"], engines["vae-decoder"]
    conditioned = unet.inputs[-1].name == "timestep_cond"
    dtype = pipe.unet.dtype

    def text_forward(input_ids, attention_mask=None, output_hidden_states=None, **kwargs):
        if output_hidden_states:
            raise InputError(f"--backend {backend} runs the text encoder's last layer only (no clip_skip)")
        return (text(input_ids=input_ids.long())["last_hidden_state"].to(dtype),)

    def unet_forward(sample, timestep, encoder_hidden_states=None, timestep_cond=None, return_dict=True, **kwargs):
        n = sample.shape[0]
        t = torch.as_tensor(timestep).long().reshape(-1).expand(n).contiguous()
        feed = {"sample": sample.float(), "timestep": t, "encoder_hidden_states": encoder_hidden_states.float()}
        if conditioned:
            if timestep_cond is None:
                raise InputError("this UNet takes a guidance embedding (timestep_cond); use a pipeline that passes "
                                 "one (LatentConsistencyModelPipeline)")
            feed["timestep_cond"] = timestep_cond.float()
        out = unet(**feed)["noise_pred"].to(sample.dtype)
        return (out,) if not return_dict else _Output(sample=out)

    def decode(z, return_dict=True, **kwargs):
        image = decoder(latents=z.float())["image"].to(z.dtype)
        return (image,) if not return_dict else _Output(sample=image)

    pipe.text_encoder.forward = text_forward
    pipe.unet.forward = unet_forward
    pipe.vae.decode = decode
    pipe.neuralframe_backend = backend


class _Output(dict):
    """What `return_dict=True` callers read: `.sample`."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None
