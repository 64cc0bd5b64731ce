"""Stage: the text-to-image teacher (CLIPTextModel + UNet2DConditionModel on the autoencoder's latents).

The text encoder is trained from scratch together with the UNet, end to end through the denoising loss
(the world's captions are its whole language). Standard DDPM training in the Stable Diffusion setting:
1000-step scaled-linear schedule, epsilon prediction, 10% of captions dropped to the empty prompt so
that classifier-free guidance works, min-SNR-5 loss weighting, EMA weights saved as the teacher.

Latents of the training images are computed once with the stage-1 encoder and cached in
WORK/latents.pt (resumable: a run stopped while caching continues where it stopped).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable

import torch

from neuralframe.generate.models.architectures import build_text_encoder, build_unet
from neuralframe.generate.tokenizer import CONTEXT_LENGTH, load_clip_tokenizer
from neuralframe.generate.train.batches import ShapeBatches
from neuralframe.backend.budget import check_budget
from neuralframe.generate.train.loop import save_atomic, train_device, train_loop

N_LATENTS = 48_000
ENCODE_CHUNK = 500
BATCH = 64
LR = 5e-4
DROP_CAPTION = 0.1
EMA_DECAY = 0.999
MIN_SNR_GAMMA = 5.0


def noise_scheduler():
    """The training schedule (Stable Diffusion's)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                         beta_schedule="scaled_linear", prediction_type="epsilon", clip_sample=False,
                         steps_offset=1)


def tokenize(tokenizer, captions: list[str]) -> torch.Tensor:
    return tokenizer(captions, padding="max_length", max_length=CONTEXT_LENGTH, truncation=True,
                     return_tensors="pt").input_ids


@torch.no_grad()
def cached_latents(work: Path, progress: Callable[[dict], None] | None = None, n_latents: int = N_LATENTS) -> dict:
    """Scaled latent means, token ids and labels of `n_latents` training images, cached in WORK/latents.pt."""
    from diffusers import AutoencoderKL

    path = work / "latents.pt"
    cache = torch.load(path, weights_only=False) if path.exists() else {"latents": [], "ids": [], "shape": [],
                                                                          "colour": []}
    done = sum(len(x) for x in cache["latents"])
    if done >= n_latents:
        return {k: torch.cat(v)[:n_latents] for k, v in cache.items()}
    vae = AutoencoderKL.from_pretrained(work / "vae").eval().to(train_device())
    scale = vae.config.scaling_factor
    tokenizer = load_clip_tokenizer()
    chunk_size = min(ENCODE_CHUNK, n_latents)
    batches = ShapeBatches("latents", chunk_size)
    for chunk in range(done // chunk_size, -(-n_latents // chunk_size)):
        b = batches(chunk)
        cache["latents"].append((vae.encode(b["pixels"].to(vae.device)).latent_dist.mean * scale).cpu())
        cache["ids"].append(tokenize(tokenizer, b["captions"]).to(torch.int32))
        cache["shape"].append(b["shape"])
        cache["colour"].append(b["colour"])
        if chunk % 8 == 7 or (chunk + 1) * chunk_size >= n_latents:
            save_atomic(cache, path)
        if progress is not None:
            progress({"stage": "t2i", "step": 0, "progress": 0.0, "latents": (chunk + 1) * chunk_size})
    return {k: torch.cat(v)[:n_latents] for k, v in cache.items()}


def snr_weights(scheduler, t: torch.Tensor) -> torch.Tensor:
    """min(SNR, gamma) / SNR: the min-SNR weighting for epsilon prediction."""
    ab = scheduler.alphas_cumprod[t]
    snr = ab / (1 - ab)
    return snr.clamp(max=MIN_SNR_GAMMA) / snr


class EMA:
    def __init__(self, module: torch.nn.Module):
        self.module = copy.deepcopy(module).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, module: torch.nn.Module, step: int) -> None:
        decay = min(EMA_DECAY, (1 + step) / (10 + step))
        for e, p in zip(self.module.parameters(), module.parameters()):
            e.lerp_(p.detach(), 1 - decay)


def train_t2i(work: Path, seconds: float | None = None, steps: int | None = None, resume: bool = False,
              progress: Callable[[dict], None] | None = None, n_latents: int = N_LATENTS) -> dict:
    seconds, steps = check_budget(seconds, steps, default_seconds=2400.0)
    data = cached_latents(work, progress, n_latents)
    torch.manual_seed(0)
    device = train_device()
    unet, text = build_unet().to(device), build_text_encoder().to(device)
    ema_unet, ema_text = EMA(unet), EMA(text)
    params = list(unet.parameters()) + list(text.parameters())
    optimizer = torch.optim.AdamW(params, lr=LR, weight_decay=0.01)
    scheduler = noise_scheduler()
    tokenizer = load_clip_tokenizer()
    empty = tokenize(tokenizer, [""])[0].to(torch.int32)
    alphas = scheduler.alphas_cumprod
    n = len(data["latents"])

    def step_fn(step: int) -> dict:
        g = torch.Generator().manual_seed(1_000_003 * (step + 1))
        idx = torch.randint(0, n, (BATCH,), generator=g)
        x0, ids = data["latents"][idx], data["ids"][idx].clone()
        ids[torch.rand(BATCH, generator=g) < DROP_CAPTION] = empty
        noise = torch.randn(x0.shape, generator=g)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (BATCH,), generator=g)
        ab = alphas[t][:, None, None, None]
        xt = (ab.sqrt() * x0 + (1 - ab).sqrt() * noise).to(device)
        weights = snr_weights(scheduler, t).to(device)
        noise, t = noise.to(device), t.to(device)
        hidden = text(ids.long().to(device)).last_hidden_state
        pred = unet(xt, t, hidden).sample
        per_sample = (pred - noise).square().mean((1, 2, 3))
        loss = (weights * per_sample).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        ema_unet.update(unet, step)
        ema_text.update(text, step)
        return {"loss": per_sample.mean().item()}

    modules = {"unet": unet, "text": text, "ema_unet": ema_unet.module, "ema_text": ema_text.module}
    result = train_loop("t2i", modules, optimizer, step_fn, work / "checkpoints" / "t2i.pt", seconds, steps,
                        resume, LR, progress)
    ema_unet.module.cpu().save_pretrained(work / "teacher")
    ema_text.module.cpu().save_pretrained(work / "text_encoder")
    scheduler.save_pretrained(work / "teacher_scheduler")
    return {"steps": result.steps, "seconds": round(result.seconds, 1), "train_images": n,
            "final_loss": round(result.metrics.get("loss", float("nan")), 4)}
