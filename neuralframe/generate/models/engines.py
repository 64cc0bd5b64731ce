"""A text-to-image pipeline's networks on exported engines, the pipeline itself unchanged.

    pipe = load_pipeline(folder)
    use_backend(pipe, folder, "onnxruntime", engines)   # text encoder, UNet and decoder now run in onnxruntime

`engines(folder, backend, graphs)` builds the folder's exported graphs on a backend and is handed in by
the app (`neuralframe.export.engines.engine_factory("tiny-shapes")`: exported once with
`neuralframe export tiny-shapes --model FOLDER --dynamic` and its parity checks, into a cache keyed by the
weights' content), so this module never imports the exporters. The torch modules stay in the pipeline
(diffusers reads their configs, dtypes and devices); only their computation is routed:
`text_encoder.forward`, `unet.forward` and `vae.decode` call the engines with the same arguments and
return what the modules return. `tensorrt` builds engines from the same graphs (NVIDIA GPU and
`pip install tensorrt`; elsewhere a clear error).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Callable

import torch

from neuralframe.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from neuralframe.backend.runtime import Engine

GRAPHS = ("text-encoder", "unet", "vae-decoder")

# (model folder, backend, graph names) -> the engines running those graphs, by name
EngineFactory = Callable[[str | os.PathLike, str, tuple[str, ...]], "dict[str, Engine]"]


def use_backend(pipe, folder: str | os.PathLike, backend: str, engines: EngineFactory | None,
                encoder: bool = False, tiny_vae=None) -> None:
    """Route the pipeline's text encoder, UNet and decoder (and with `encoder` the autoencoder's encoder, for
    img2img) through `backend` ("torch" leaves it as it is); with `tiny_vae` (the folder's AutoencoderTiny,
    see `load_tiny_vae`) its decoder too (StreamEngine encodes with the full encoder). `engines` builds
    the engines (see the module docstring)."""
    from neuralframe.backend.runtime import resolve_backend

    backend = resolve_backend(backend)
    if backend == "torch":
        return
    if engines is None:
        raise ValueError(f"--backend {backend} needs the engines handed in: the app passes "
                         "neuralframe.export.engines.engine_factory('tiny-shapes')")
    graphs = GRAPHS + (("vae-encoder",) if encoder else ()) + (("vae-tiny-decoder",) if tiny_vae is not None else ())
    built = engines(folder, backend, graphs)
    text, unet, decoder = built["text-encoder"], built["unet"], built["vae-decoder"]
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

    if encoder:
        vae_encoder = built["vae-encoder"]

        def encode(x, return_dict=True, **kwargs):
            posterior = _Posterior(vae_encoder(image=x.float())["latent_mean"].to(x.dtype))
            return (posterior,) if not return_dict else _Output(latent_dist=posterior)

        pipe.vae.encode = encode
    if tiny_vae is not None:
        tiny_vae.decode = _decode_on(built["vae-tiny-decoder"])
    pipe.text_encoder.forward = text_forward
    pipe.unet.forward = unet_forward
    pipe.vae.decode = _decode_on(decoder)
    pipe.neuralframe_backend = backend


def _decode_on(engine) -> Callable:
    """An autoencoder's `decode(z, return_dict=...)` that runs its exported decoder graph on `engine`."""

    def decode(z, return_dict=True, **kwargs):
        image = engine(latents=z.float())["image"].to(z.dtype)
        return (image,) if not return_dict else _Output(sample=image)

    return decode


class _Output(dict):
    """What `return_dict=True` callers read: `.sample`."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class _Posterior:
    """The encoder's posterior as img2img callers read it: its mean (the graph exports the mean only)."""

    def __init__(self, mean: torch.Tensor):
        self.mean = mean

    def mode(self) -> torch.Tensor:
        return self.mean

    def sample(self, generator=None) -> torch.Tensor:
        raise InputError("the exported encoder gives the posterior mean only; sample with --backend torch")
