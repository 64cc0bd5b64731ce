"""Export entry for a text-to-image pipeline folder: the bundled tiny-shapes model (default), any local
diffusers Stable-Diffusion-family folder (--model PATH), or the tiny-shapes architecture with seeded
random weights (--random-weights).

Four graphs, each the component diffusers runs, with the call a pipeline makes:

- "text-encoder": input_ids int64 [N, 77] -> last_hidden_state [N, 77, D] (the CLIP text model);
- "unet": sample [N, 4, h, w], timestep int64 [N], encoder_hidden_states [N, 77, D] and, for a model with a
  guidance embedding (unet.config.time_cond_proj_dim, the LCM student), timestep_cond [N, C] -> noise_pred;
  guided sampling then takes one UNet call per step;
- "vae-encoder": image [N, 3, H, W] in [-1, 1] -> latent_mean [N, 4, H/8, W/8] (the posterior mean,
  before `scaling_factor`);
- "vae-decoder": latents [N, 4, H/8, W/8] (unscaled) -> image [N, 3, H, W].

--dynamic frees the batch axis of every graph and the spatial axes of the autoencoder and the UNet
(both fully convolutional; the UNet's latent sides must be even, for its one downsampling), so the
streaming engine can run them at any working size.

Real inputs are the tiny-shapes world's held-out prompts and images plus photographs, taken through the
model's own components: the UNet sees noised latents of real images at the four LCM timesteps, the
text encoder's states of their captions and the guidance embedding of the default guidance.

int8: the autoencoder's decoder (accuracy: PSNR of decoded real images against the originals, float32
decoder vs int8 decoder) and the UNet (accuracy: prompt adherence of 4-step samples scored by the bundled
shape classifier, float32 UNet vs int8 UNet, everything else float32).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from neuralframe.errors import InputError
from neuralframe.export.specs import BuildOptions, Feed, Graph, Int8Spec, Tolerance, reject_options

LCM_TIMESTEPS = (999, 759, 499, 259)  # where a 4-step LCM schedule evaluates the UNet
REAL_PROMPTS = 4
ADHERENCE_PROMPTS = 48


class TextEncoderGraph(nn.Module):
    def __init__(self, text):
        super().__init__()
        self.text = text

    def forward(self, input_ids: Tensor) -> Tensor:
        return self.text(input_ids=input_ids).last_hidden_state


class UNetGraph(nn.Module):
    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, sample: Tensor, timestep: Tensor, encoder_hidden_states: Tensor,
                timestep_cond: Tensor | None = None) -> Tensor:
        return self.unet(sample, timestep, encoder_hidden_states, timestep_cond=timestep_cond, return_dict=False)[0]


class VaeEncoderGraph(nn.Module):
    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, image: Tensor) -> Tensor:
        return self.vae.encode(image).latent_dist.mean


class VaeDecoderGraph(nn.Module):
    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, latents: Tensor) -> Tensor:
        return self.vae.decode(latents, return_dict=False)[0]


class TinyEncoderGraph(nn.Module):
    def __init__(self, tiny):
        super().__init__()
        self.tiny = tiny

    def forward(self, image: Tensor) -> Tensor:
        return self.tiny.encode(image).latents


class Components:
    """The four modules, the tokenizer, the tiny autoencoder when the folder has one, and where they came
    from."""

    def __init__(self, text, unet, vae, tokenizer, weights: str, folder: Path | None, guidance: float, tiny=None):
        self.text, self.unet, self.vae, self.tokenizer, self.tiny = text, unet, vae, tokenizer, tiny
        self.weights, self.folder, self.guidance = weights, folder, guidance
        for m in (text, unet, vae) + ((tiny,) if tiny is not None else ()):
            m.eval().requires_grad_(False)

    @property
    def latent_size(self) -> int:
        size = self.unet.config.sample_size
        return int(size[0] if isinstance(size, (list, tuple)) else size)

    @property
    def image_size(self) -> int:
        return self.latent_size * 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def context(self) -> int:
        return int(self.tokenizer.model_max_length)

    @property
    def cond_dim(self) -> int | None:
        return self.unet.config.time_cond_proj_dim

    def ids(self, prompts: list[str]) -> Tensor:
        return self.tokenizer(prompts, padding="max_length", max_length=self.context, truncation=True,
                              return_tensors="pt").input_ids.long()

    def guidance_cond(self, n: int) -> Tensor:
        from neuralframe.generate.models.architectures import guidance_embedding

        return guidance_embedding(torch.full((n,), self.guidance - 1.0), self.cond_dim)


def _load(options: BuildOptions) -> Components:
    from neuralframe.generate.models.card import ImageDefaults
    from neuralframe.generate.models.folder import BUNDLED, check_pipeline_folder

    if options.random_weights:
        from neuralframe.generate.models.architectures import (
            W_EMBED_DIM,
            build_text_encoder,
            build_unet,
            build_vae,
        )
        from neuralframe.generate.tokenizer import load_clip_tokenizer

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(options.seed)
            text, unet, vae = build_text_encoder(), build_unet(time_cond_proj_dim=W_EMBED_DIM), build_vae()
        return Components(text, unet, vae, load_clip_tokenizer(), f"random (seed {options.seed}): tiny-shapes "
                          "architecture only", None, 3.0)
    folder = Path(options.model_path) if options.model_path else BUNDLED
    if options.model_path is None and not (folder / "model_index.json").is_file():
        raise InputError("tiny-shapes: the bundled model is not in assets/models/tiny-shapes; train it with "
                         "`neuralframe train tiny-shapes`, pass --model FOLDER, or --random-weights")
    index = check_pipeline_folder(folder)
    for part in ("text_encoder", "unet", "vae", "tokenizer"):
        if part not in index:
            raise InputError(f"{folder}: model_index.json lists no '{part}'; export needs a Stable-Diffusion-family "
                             "folder (text_encoder, tokenizer, unet, vae)")
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    try:
        text = CLIPTextModel.from_pretrained(folder / "text_encoder", local_files_only=True)
        unet = UNet2DConditionModel.from_pretrained(folder / "unet", local_files_only=True)
        vae = AutoencoderKL.from_pretrained(folder / "vae", local_files_only=True)
        tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer", local_files_only=True)
    except (OSError, ValueError, KeyError, RuntimeError, json.JSONDecodeError) as e:
        raise InputError(f"{folder}: cannot load its components ({str(e).splitlines()[0]})") from None
    guidance = float(ImageDefaults.read(folder).guidance_scale or 3.0)
    where = "bundled assets/models/tiny-shapes" if options.model_path is None else str(folder)
    from neuralframe.generate.models.folder import load_tiny_vae

    return Components(text, unet, vae, tokenizer, where, folder, guidance, load_tiny_vae(folder, required=False))


@functools.lru_cache(maxsize=2)
def _real_data(image_size: int, n: int, seed: int) -> tuple[tuple[str, ...], Tensor]:
    """Held-out tiny-shapes captions and images (plus photographs), images float [-1, 1]."""
    import torch.nn.functional as F

    from neuralframe.generate.data.batches import PhotoCrops, ShapeBatches

    shapes = ShapeBatches("eval", n, split="eval")(step=1000 + seed)
    photos = PhotoCrops(seed=777 + seed)(0, max(1, n // 2))
    pixels = torch.cat([shapes["pixels"], photos])
    if pixels.shape[-1] != image_size:
        pixels = F.interpolate(pixels, size=(image_size, image_size), mode="bilinear", align_corners=False)
    return tuple(shapes["captions"]), pixels


def _rows(feed: Feed) -> list[Feed]:
    """A batched feed as batch-1 feeds (the static graphs take one sample; --dynamic ones take any)."""
    n = next(iter(feed.values())).shape[0]
    return [{k: v[i:i + 1] for k, v in feed.items()} for i in range(n)]


def _run(runner: Callable[..., Feed], feed: Feed) -> Feed:
    """`runner` over a batched feed one sample at a time (static graphs), outputs concatenated."""
    outs = [runner(**row) for row in _rows(feed)]
    return {k: torch.cat([torch.as_tensor(o[k]) for o in outs]) for k in outs[0]}


def _graphs(c: Components, options: BuildOptions) -> list[Graph]:
    ls, size, ctx, d = c.latent_size, c.image_size, c.context, c.text.config.hidden_size
    ch = c.vae.config.latent_channels
    scale = float(c.vae.config.scaling_factor)
    captions, pixels = _real_data(size, REAL_PROMPTS, 0)

    @functools.lru_cache(maxsize=1)
    def real_states() -> tuple[Tensor, Tensor, Tensor]:
        with torch.no_grad():
            ids = c.ids(list(captions))
            hidden = c.text(input_ids=ids).last_hidden_state
            latents = c.vae.encode(pixels).latent_dist.mean
        return ids, hidden, latents

    def batch(n_dynamic: int, dynamic: bool) -> int:
        return n_dynamic if dynamic else 1

    # text encoder
    def text_random(gen: torch.Generator, dynamic: bool) -> Feed:
        n = batch(3, dynamic)
        ids = torch.randint(0, c.text.config.vocab_size - 2, (n, ctx), generator=gen)
        length = torch.randint(3, ctx, (n,), generator=gen)
        bos, eos = c.tokenizer.bos_token_id, c.tokenizer.eos_token_id
        ids[:, 0] = bos
        for i in range(n):
            ids[i, int(length[i]):] = eos  # the pipeline's padding (CLIP pads with its end token)
        return {"input_ids": ids}

    text_graph = Graph(
        name="text-encoder", module=TextEncoderGraph(c.text), reference=TextEncoderGraph(c.text),
        inputs=("input_ids",), outputs=("last_hidden_state",),
        example=lambda: {"input_ids": c.ids(list(captions[:1]))},
        random_inputs=text_random, real_inputs=lambda: _rows({"input_ids": real_states()[0]}),
        real_description=f"{REAL_PROMPTS} held-out tiny-shapes captions, tokenized and padded to {ctx}",
        dynamic_axes={"input_ids": {0: "N"}, "last_hidden_state": {0: "N"}},
        profile={"input_ids": ((1, ctx), (2, ctx), (8, ctx))},
        weights=c.weights,
        notes=[f"CLIP text model: {c.text.config.num_hidden_layers} layers, width {d}, vocabulary "
               f"{c.text.config.vocab_size}, context {ctx} (pipelines pad to it)"],
    )

    # UNet
    unet_inputs: tuple[str, ...] = ("sample", "timestep", "encoder_hidden_states")
    if c.cond_dim:
        unet_inputs += ("timestep_cond",)

    def unet_feed(sample: Tensor, t: Tensor, hidden: Tensor, cond: Tensor | None) -> Feed:
        feed = {"sample": sample, "timestep": t, "encoder_hidden_states": hidden}
        if c.cond_dim:
            feed["timestep_cond"] = cond
        return feed

    def unet_random(gen: torch.Generator, dynamic: bool) -> Feed:
        n = batch(3, dynamic)
        h, w = (2 * ls, ls + 4) if dynamic else (ls, ls)
        cond = c.guidance_cond(n) if c.cond_dim else None
        return unet_feed(torch.randn(n, ch, h, w, generator=gen), torch.randint(0, 1000, (n,), generator=gen),
                         torch.randn(n, ctx, d, generator=gen), cond)

    def unet_real() -> list[Feed]:
        from neuralframe.generate.models.schedulers import noise_scheduler

        _, hidden, latents = real_states()
        k = hidden.shape[0]
        x0 = latents[:k] * scale
        alphas = noise_scheduler().alphas_cumprod
        gen = torch.Generator().manual_seed(5)
        feeds = []
        for t in LCM_TIMESTEPS:
            ab = alphas[t]
            noisy = ab.sqrt() * x0 + (1 - ab).sqrt() * torch.randn(x0.shape, generator=gen)
            feeds += _rows(unet_feed(noisy, torch.full((k,), t, dtype=torch.long), hidden,
                                     c.guidance_cond(k) if c.cond_dim else None))
        return feeds

    def unet_example() -> Feed:
        cond = c.guidance_cond(1) if c.cond_dim else None
        return unet_feed(torch.zeros(1, ch, ls, ls), torch.tensor([999]), torch.zeros(1, ctx, d), cond)

    unet_axes = {name: {0: "N"} for name in unet_inputs + ("noise_pred",)}
    unet_axes["sample"] = unet_axes["noise_pred"] = {0: "N", 2: "h", 3: "w"}
    unet_profile = {"sample": ((1, ch, ls, ls), (2, ch, 2 * ls, 2 * ls), (8, ch, 8 * ls, 8 * ls)),
                    "timestep": ((1,), (2,), (8,)),
                    "encoder_hidden_states": ((1, ctx, d), (2, ctx, d), (8, ctx, d))}
    if c.cond_dim:
        unet_profile["timestep_cond"] = ((1, c.cond_dim), (2, c.cond_dim), (8, c.cond_dim))
    unet_notes = [f"latents {ch}x{ls}x{ls} (trained size; --dynamic frees the sides, even sizes); {sum(p.numel() for p in c.unet.parameters()):,} "
                  "parameters"]
    if c.cond_dim:
        unet_notes.append(f"guidance embedding input timestep_cond [N, {c.cond_dim}]: guided sampling takes one "
                          f"UNet evaluation per step (w = guidance_scale - 1, default guidance {c.guidance:g})")
    unet_graph = Graph(
        name="unet", module=UNetGraph(c.unet), reference=UNetGraph(c.unet),
        inputs=unet_inputs, outputs=("noise_pred",), example=unet_example,
        random_inputs=unet_random, real_inputs=unet_real,
        real_description=f"latents of {REAL_PROMPTS} held-out images noised to the 4 LCM timesteps "
                         f"{list(LCM_TIMESTEPS)}, with their captions' text states"
                         + (" and the default guidance embedding" if c.cond_dim else ""),
        dynamic_axes=unet_axes, profile=unet_profile, weights=c.weights, notes=unet_notes,
        int8=_unet_int8(c, unet_real, unet_feed) if c.cond_dim else None,
    )

    # autoencoder
    def image_random(gen: torch.Generator, dynamic: bool) -> Feed:
        n, h, w = (2, size + 32, size - 16) if dynamic else (1, size, size)
        return {"image": torch.rand(n, 3, h, w, generator=gen) * 2 - 1}

    def latent_random(gen: torch.Generator, dynamic: bool) -> Feed:
        n, h, w = (2, ls + 4, ls - 2) if dynamic else (1, ls, ls)
        return {"latents": torch.randn(n, ch, h, w, generator=gen) / scale}

    vae_notes = [f"AutoencoderKL {size}x{size}x3 <-> {ls}x{ls}x{ch}; scaling_factor {scale:.4g} is applied "
                 "outside (by the pipeline), as in diffusers"]
    spatial_in = {0: "N", 2: "H", 3: "W"}
    spatial_lat = {0: "N", 2: "h", 3: "w"}
    encoder_graph = Graph(
        name="vae-encoder", module=VaeEncoderGraph(c.vae), reference=VaeEncoderGraph(c.vae),
        inputs=("image",), outputs=("latent_mean",),
        example=lambda: {"image": pixels[:1].clone()}, random_inputs=image_random,
        real_inputs=lambda: _rows({"image": pixels}),
        real_description=f"{REAL_PROMPTS} held-out tiny-shapes images and {pixels.shape[0] - REAL_PROMPTS} "
                         "crops of scikit-image's photographs",
        dynamic_axes={"image": spatial_in, "latent_mean": spatial_lat},
        profile={"image": ((1, 3, 8, 8), (1, 3, size, size), (4, 3, 4 * size, 4 * size))},
        weights=c.weights, tolerance={"fp32": Tolerance(5e-3, 1e-3)},
        notes=vae_notes + ["float32 tolerance 5e-3 absolute: on flat backgrounds the first GroupNorms (eps 1e-6) "
                           "see near-zero variance and scale each runtime's rounding noise by up to 1e3 (random "
                           "images agree to ~1e-6; the latents' spread is ~2)"])
    decoder_graph = Graph(
        name="vae-decoder", module=VaeDecoderGraph(c.vae), reference=VaeDecoderGraph(c.vae),
        inputs=("latents",), outputs=("image",),
        example=lambda: {"latents": real_states()[2][:1].clone()}, random_inputs=latent_random,
        real_inputs=lambda: _rows({"latents": real_states()[2]}),
        real_description="the encoder's latents of the real images above",
        dynamic_axes={"latents": spatial_lat, "image": spatial_in},
        profile={"latents": ((1, ch, 1, 1), (1, ch, ls, ls), (4, ch, 4 * ls, 4 * ls))},
        weights=c.weights, notes=vae_notes, int8=_decoder_int8(c))
    graphs = [text_graph, unet_graph, encoder_graph, decoder_graph]
    if c.tiny is None:
        return graphs

    # the tiny autoencoder (vae_tiny/): scaled latents in and out (its scaling factor is 1), as TAESD
    def scaled_random(gen: torch.Generator, dynamic: bool) -> Feed:
        n, h, w = (2, ls + 4, ls - 2) if dynamic else (1, ls, ls)
        return {"latents": torch.randn(n, ch, h, w, generator=gen)}

    tiny_notes = [f"AutoencoderTiny (TAESD-style, distilled from the autoencoder) {size}x{size}x3 <-> "
                  f"{ls}x{ls}x{ch} scaled latents; for real-time streams (StreamEngine(tiny_vae=...))"]
    tiny_encoder = Graph(
        name="vae-tiny-encoder", module=TinyEncoderGraph(c.tiny), reference=TinyEncoderGraph(c.tiny),
        inputs=("image",), outputs=("latents",),
        example=lambda: {"image": pixels[:1].clone()}, random_inputs=image_random,
        real_inputs=lambda: _rows({"image": pixels}), real_description=encoder_graph.real_description,
        dynamic_axes={"image": spatial_in, "latents": spatial_lat},
        profile={"image": ((1, 3, 8, 8), (1, 3, size, size), (4, 3, 4 * size, 4 * size))},
        weights=c.weights, notes=tiny_notes)
    tiny_decoder = Graph(
        name="vae-tiny-decoder", module=VaeDecoderGraph(c.tiny), reference=VaeDecoderGraph(c.tiny),
        inputs=("latents",), outputs=("image",),
        example=lambda: {"latents": real_states()[2][:1] * scale}, random_inputs=scaled_random,
        real_inputs=lambda: _rows({"latents": real_states()[2] * scale}),
        real_description="the full encoder's scaled latents of the real images above",
        dynamic_axes={"latents": spatial_lat, "image": spatial_in},
        profile={"latents": ((1, ch, 1, 1), (1, ch, ls, ls), (4, ch, 4 * ls, 4 * ls))},
        weights=c.weights, notes=tiny_notes)
    return graphs + [tiny_encoder, tiny_decoder]


def _psnr(a: Tensor, b: Tensor) -> float:
    import math

    mse = float(((a.clamp(-1, 1) - b) / 2).square().mean())
    return -10.0 * math.log10(max(mse, 1e-12))


def _decoder_int8(c: Components) -> Int8Spec:
    size = c.image_size

    def calibration() -> list[dict[str, Any]]:
        _, pixels = _real_data(size, 16, 1)  # other images than the accuracy check's
        with torch.no_grad():
            latents = c.vae.encode(pixels).latent_dist.mean
        return [{"latents": row["latents"].numpy()} for row in _rows({"latents": latents})]

    def accuracy(fp32, int8) -> dict[str, Any]:
        _, pixels = _real_data(size, 32, 2)
        with torch.no_grad():
            latents = c.vae.encode(pixels).latent_dist.mean
        a = _run(fp32, {"latents": latents})["image"].float()
        b = _run(int8, {"latents": latents})["image"].float()
        value, ref = _psnr(b, pixels), _psnr(a, pixels)
        return {"metric": "vae_psnr_db", "value": round(value, 2), "fp32_value": round(ref, 2),
                "change_db": round(value - ref, 2), "psnr_int8_vs_fp32_db": round(_psnr(b, a), 2),
                "images": int(pixels.shape[0]),
                "data": "32 held-out tiny-shapes images and 16 photo crops (not used for calibration), "
                        "decoded from the float32 encoder's latents; PSNR against the originals"}

    return Int8Spec(calibration=calibration,
                    calibration_description="latents of 16 held-out tiny-shapes images and 8 photo crops",
                    accuracy=accuracy, op_types=("Conv",))


def _unet_int8(c: Components, unet_real: Callable[[], list[Feed]], unet_feed) -> Int8Spec:
    def calibration() -> list[dict[str, Any]]:
        return [{k: v.numpy() for k, v in feed.items()} for feed in unet_real()]

    def accuracy(fp32, int8) -> dict[str, Any]:
        from neuralframe.generate.models.classifier import DEFAULT_DIR, ShapeClassifier

        if not (DEFAULT_DIR / "model.safetensors").is_file():
            return {"metric": "prompt_adherence", "value": None, "fp32_value": None,
                    "note": "no bundled shape classifier (assets/models/shape-classifier) to score with"}
        from neuralframe.generate.evaluate import TUNE_SEEDS, eval_prompts

        scorer = ShapeClassifier.load(DEFAULT_DIR)
        texts, shapes, colours = eval_prompts(ADHERENCE_PROMPTS, first_seed=TUNE_SEEDS + 50_000)
        out = {}
        for name, runner in (("fp32", fp32), ("int8", int8)):
            pixels = _sample(c, runner, unet_feed, texts)
            s, col = scorer.predict(pixels)
            out[name] = float(((s == shapes) & (col == colours)).float().mean())
        return {"metric": "prompt_adherence", "value": round(out["int8"], 4), "fp32_value": round(out["fp32"], 4),
                "change": round(out["int8"] - out["fp32"], 4), "prompts": ADHERENCE_PROMPTS, "steps": 4,
                "guidance_scale": c.guidance,
                "data": f"{ADHERENCE_PROMPTS} held-out prompts (not the calibration ones), 4-step LCM samples, "
                        "the same seeds for both; only the UNet differs"}

    return Int8Spec(calibration=calibration,
                    calibration_description=f"the UNet's real inputs: {REAL_PROMPTS} held-out images noised to "
                                            f"the 4 LCM timesteps, with their captions",
                    accuracy=accuracy, op_types=("Conv", "MatMul"))


@torch.no_grad()
def _sample(c: Components, unet: Callable[..., Feed], unet_feed, prompts: list[str], steps: int = 4) -> Tensor:
    """4-step LCM samples with `unet` as the denoiser (a runner called with named tensors): [B, 3, H, W]."""
    from diffusers import LCMScheduler

    if c.folder is not None and (c.folder / "scheduler" / "scheduler_config.json").is_file():
        scheduler = LCMScheduler.from_pretrained(c.folder / "scheduler")
    else:
        from neuralframe.generate.models.schedulers import noise_scheduler

        scheduler = LCMScheduler.from_config(noise_scheduler().config)
    scheduler.set_timesteps(steps)
    n, ls = len(prompts), c.latent_size
    hidden = c.text(input_ids=c.ids(prompts)).last_hidden_state
    gen = torch.Generator().manual_seed(0)
    latents = torch.randn(n, c.vae.config.latent_channels, ls, ls, generator=gen) * scheduler.init_noise_sigma
    cond = c.guidance_cond(n)
    for t in scheduler.timesteps:
        eps = _run(unet, unet_feed(latents, torch.full((n,), int(t), dtype=torch.long), hidden, cond))["noise_pred"]
        latents, denoised = scheduler.step(eps.float(), t, latents, generator=gen, return_dict=False)
    return c.vae.decode(denoised / c.vae.config.scaling_factor, return_dict=False)[0].clamp(-1, 1)


def build(options: BuildOptions) -> list[Graph]:
    reject_options(options, "tiny-shapes", ("ratios", "size"))
    if options.model_path is not None and options.random_weights:
        raise InputError("pass --model or --random-weights, not both")
    if options.model_path is not None and not Path(options.model_path).is_dir():
        raise InputError(f"--model '{options.model_path}' is not a folder (a local diffusers pipeline folder)")
    return _graphs(_load(options), options)
