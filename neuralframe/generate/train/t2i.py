"""Stage: the text-to-image teacher (CLIPTextModel + UNet2DConditionModel on the autoencoder's latents).

The text encoder is trained from scratch together with the UNet, end to end through the denoising loss
(the world's captions are its whole language). Standard DDPM training in the Stable Diffusion setting:
1000-step scaled-linear schedule, epsilon prediction, 10% of captions dropped to the empty prompt so
that classifier-free guidance works, min-SNR-5 loss weighting, EMA weights saved as the teacher.

Latents of the training images are computed once with the stage-1 encoder and cached in
WORK/latents.pt (resumable: a run stopped while caching continues where it stopped).

Before the first denoising step the text encoder gets a short head start on the world's words: a linear
probe on its pooled output (the first end-of-text token, which attends to the whole caption) learns to
name the caption's shape and colour (TEXT_WARMUP_STEPS steps, then the probe is dropped). Captions put
the shape's colour and the background's colour in either order ("a red star over a blue gradient", "a
blue gradient with a red star"); learning which colour word belongs to the shape from the denoising loss
alone is slow, and the probe teaches it in seconds.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable

import torch

from neuralframe.backend.budget import check_budget
from neuralframe.generate.data.batches import ShapeBatches
from neuralframe.generate.models.architectures import build_text_encoder, build_unet
from neuralframe.generate.models.schedulers import noise_scheduler
from neuralframe.generate.tokenizer import CONTEXT_LENGTH, load_clip_tokenizer
from neuralframe.generate.train.loop import optimizer_step, save_atomic, train_device, train_loop

N_LATENTS = 48_000
ENCODE_CHUNK = 500
BATCH = 64
LR = 5e-4
DROP_CAPTION = 0.1
EMA_DECAY = 0.999
MIN_SNR_GAMMA = 5.0
TEXT_WARMUP_STEPS = 100  # the probe is above 99% on held-out captions after about 60
TEXT_WARMUP_BATCH = 256
TEXT_WARMUP_LR = 1e-3


def tokenize(tokenizer, captions: list[str]) -> torch.Tensor:
    return tokenizer(captions, padding="max_length", max_length=CONTEXT_LENGTH, truncation=True,
                     return_tensors="pt").input_ids


@torch.no_grad()
def cached_latents(work: Path, progress: Callable[[dict], None] | None = None, n_latents: int = N_LATENTS) -> dict:
    """Scaled latent means, token ids and labels of `n_latents` training images, cached in WORK/latents.pt."""
    from diffusers import AutoencoderKL

    path = work / "latents.pt"
    from neuralframe.backend.weights import load_weights

    cache = load_weights(path, f"latent cache '{path}'") if path.exists() else \
        {"latents": [], "ids": [], "shape": [], "colour": []}
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


def warm_up_text_encoder(text: torch.nn.Module, data: dict, device: torch.device,
                         steps: int = TEXT_WARMUP_STEPS) -> dict:
    """Train `text` (in place) with a linear probe on its pooled output that names each caption's shape and
    colour, for `steps` steps or about four passes over the captions if there are few; returns the probe's
    accuracy on captions it did not train on (the last 10% of the cache)."""
    from neuralframe.generate.data.vocab import COLOURS, SHAPES

    steps = max(1, min(steps, 4 * len(data["ids"]) // TEXT_WARMUP_BATCH))

    n_shapes, n_colours = len(SHAPES), len(COLOURS)
    g = torch.Generator().manual_seed(7)
    head = torch.nn.Linear(text.config.hidden_size, n_shapes + n_colours).to(device)
    params = list(text.parameters()) + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=TEXT_WARMUP_LR, weight_decay=0.01)
    n = len(data["ids"])
    train_n = max(1, int(n * 0.9))
    ce = torch.nn.functional.cross_entropy

    def logits(idx: torch.Tensor) -> torch.Tensor:
        return head(text(data["ids"][idx].long().to(device)).pooler_output)

    text.train()
    for step in range(steps):
        idx = torch.randint(0, train_n, (TEXT_WARMUP_BATCH,), generator=g)
        out = logits(idx)
        loss = ce(out[:, :n_shapes], data["shape"][idx].to(device)) + ce(out[:, n_shapes:], data["colour"][idx].to(device))
        for group in optimizer.param_groups:
            group["lr"] = TEXT_WARMUP_LR * min(1.0, (step + 1) / 40)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        held = torch.arange(train_n, n)[:2000] if n > train_n else torch.arange(n)[:2000]
        out = logits(held)
        shape_ok = out[:, :n_shapes].argmax(1).cpu() == data["shape"][held]
        colour_ok = out[:, n_shapes:].argmax(1).cpu() == data["colour"][held]
    return {"text_warmup_steps": steps, "text_probe_shape_accuracy": round(float(shape_ok.float().mean()), 4),
            "text_probe_colour_accuracy": round(float(colour_ok.float().mean()), 4)}


def train_t2i(work: Path, seconds: float | None = None, steps: int | None = None, resume: bool = False,
              progress: Callable[[dict], None] | None = None, n_latents: int = N_LATENTS) -> dict:
    seconds, steps = check_budget(seconds, steps, default_seconds=2400.0)
    data = cached_latents(work, progress, n_latents)
    torch.manual_seed(0)
    device = train_device()
    unet, text = build_unet().to(device), build_text_encoder().to(device)
    checkpoint = work / "checkpoints" / "t2i.pt"
    warmup = {}
    if not (resume and checkpoint.exists()):  # a resumed run loads the warmed-up encoder with the rest
        if progress is not None:
            progress({"stage": "t2i", "step": 0, "progress": 0.0, "text_warmup": True})
        warmup = warm_up_text_encoder(text, data, device)
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
        optimizer_step(optimizer, loss, params)
        ema_unet.update(unet, step)
        ema_text.update(text, step)
        return {"loss": per_sample.mean().item()}

    modules = {"unet": unet, "text": text, "ema_unet": ema_unet.module, "ema_text": ema_text.module}
    result = train_loop("t2i", modules, optimizer, step_fn, checkpoint, seconds, steps, resume, LR, progress)
    ema_unet.module.cpu().save_pretrained(work / "teacher")
    ema_text.module.cpu().save_pretrained(work / "text_encoder")
    scheduler.save_pretrained(work / "teacher_scheduler")
    return {"steps": result.steps, "seconds": round(result.seconds, 1), "train_images": n,
            "final_loss": round(result.metrics.get("loss", float("nan")), 4), **warmup}
