"""A text-to-image pipeline's networks on exported engines, the pipeline itself unchanged.

    pipe = load_pipeline(folder)
    use_backend(pipe, folder, "onnxruntime")   # text encoder, UNet and decoder now run in onnxruntime

The folder's components are exported once (`neuralframe export tiny-shapes --model FOLDER --dynamic`, with
its parity checks) into a cache keyed by the weights' content (`neuralframe.export.engines`), then every
later run loads the cached graphs. The torch modules stay in the pipeline (diffusers reads their configs, dtypes and devices); only
their computation is routed: `text_encoder.forward`, `unet.forward` and `vae.decode` call the engines with
the same arguments and return what the modules return. `tensorrt` builds engines from the same graphs
(NVIDIA GPU and `pip install tensorrt`; elsewhere a clear error).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import torch

from neuralframe.errors import InputError

GRAPHS = ("text-encoder", "unet", "vae-decoder")


def use_backend(pipe, folder: str | os.PathLike, backend: str, threads: int | None = None,
                cache_dir: Path | None = None, say: Callable[[str], None] | None = None,
                encoder: bool = False, tiny_vae=None) -> None:
    """Route the pipeline's text encoder, UNet and decoder (and with `encoder` the autoencoder's encoder, for
    img2img) through `backend` ("torch" leaves it as it is); with `tiny_vae` (the folder's AutoencoderTiny,
    see `load_tiny_vae`) its decoder too (StreamEngine encodes with the full encoder)."""
    from neuralframe.backend.runtime import resolve_backend

    backend = resolve_backend(backend)
    if backend == "torch":
        return
    from neuralframe.export.engines import exported_engines

    graphs = GRAPHS + (("vae-encoder",) if encoder else ()) + (("vae-tiny-decoder",) if tiny_vae is not None else ())
    engines = exported_engines("tiny-shapes", folder, backend, graphs, threads, cache_dir, say)
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

    if encoder:
        vae_encoder = engines["vae-encoder"]

        def encode(x, return_dict=True, **kwargs):
            posterior = _Posterior(vae_encoder(image=x.float())["latent_mean"].to(x.dtype))
            return (posterior,) if not return_dict else _Output(latent_dist=posterior)

        pipe.vae.encode = encode
    if tiny_vae is not None:
        tiny_vae.decode = _decode_on(engines["vae-tiny-decoder"])
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
