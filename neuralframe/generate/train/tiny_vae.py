"""Stage `tiny-vae`: a tiny autoencoder distilled from the trained one, for real-time streams (TAESD's idea).

The streaming engine spends most of a frame in the autoencoder (at 128x128 the full decoder costs more than
a batched UNet call on this CPU). A diffusers `AutoencoderTiny` with few, narrow layers and no attention or
normalisation is trained here to speak the full autoencoder's latent language:

- its encoder regresses the full encoder's *scaled* latent means (so `AutoencoderTiny`'s scaling factor is
  1, as with TAESD, and diffusers pipelines use it as a drop-in `vae`);
- its decoder maps those latents (with a little noise, since a UNet's predictions are never exact) back to
  the original pixels, the shape's pixels weighted as in the full autoencoder's loss.

The result is saved beside the model (`vae_tiny/` in the diffusers folder; `model_index.json` does not list
it, so diffusers' own loaders ignore it) and used by `StreamEngine(tiny_vae=...)`, `--tiny-vae`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from neuralframe.backend.budget import check_budget
from neuralframe.generate.data.batches import OFFSETS, PhotoCrops, ShapeBatches, mixed_batch
from neuralframe.generate.evaluate import psnr_from_mse
from neuralframe.generate.train.loop import optimizer_step, train_device, train_loop
from neuralframe.generate.train.vae import SHAPE_WEIGHT

BATCH = 32
PHOTO_SHARE = 8
LR = 2e-3
LATENT_NOISE = 0.1  # std of the noise on the decoder's input latents (scaled latents have unit spread)
CHANNELS = 24
ENCODER_BLOCKS = (1, 1, 2, 2)
DECODER_BLOCKS = (2, 2, 1, 0)


def build_tiny_vae():
    """The architecture: 24 channels throughout, 8x down/up-sampling, 4 latent channels (about 0.2M weights;
    benchmarks/stream.json times streams with it against the full autoencoder, and
    assets/models/tiny-shapes/card.json records its parameters and PSNR)."""
    from diffusers import AutoencoderTiny

    return AutoencoderTiny(in_channels=3, out_channels=3, encoder_block_out_channels=(CHANNELS,) * 4,
                           decoder_block_out_channels=(CHANNELS,) * 4, num_encoder_blocks=ENCODER_BLOCKS,
                           num_decoder_blocks=DECODER_BLOCKS, latent_channels=4, scaling_factor=1.0)


def _teacher(work: Path):
    from diffusers import AutoencoderKL

    folder = work / "vae"
    if not folder.is_dir():
        from neuralframe.errors import InputError

        raise InputError(f"stage 'tiny-vae' needs the trained autoencoder in {folder}: run --stage vae first")
    vae = AutoencoderKL.from_pretrained(folder).eval()
    for p in vae.parameters():
        p.requires_grad_(False)
    return vae


def tiny_vae_loss(tiny, teacher, pixels: torch.Tensor, mask: torch.Tensor, generator=None) -> tuple:
    with torch.no_grad():
        target = teacher.encode(pixels).latent_dist.mean * teacher.config.scaling_factor
    latents = tiny.encode(pixels).latents
    enc = (latents - target).square().mean()
    noisy = target + LATENT_NOISE * torch.randn(target.shape, generator=generator).to(target.device)
    recon = tiny.decode(noisy).sample
    weight = 1.0 + SHAPE_WEIGHT * mask
    err = recon - pixels
    dec = (weight * err.abs()).mean() + (weight * err.square()).mean()
    mse = err.detach().square().mean().item()
    return enc + dec, {"loss": dec.item(), "enc": enc.item(), "psnr": psnr_from_mse(mse / 4.0)}


def train_tiny_vae(work: Path, seconds: float | None = None, steps: int | None = None, resume: bool = False,
                   progress: Callable[[dict], None] | None = None, eval_images: int = 256) -> dict:
    """Train and save `work/tiny_vae` (diffusers layout). Returns metrics (steps, seconds, held-out PSNR)."""
    seconds, steps = check_budget(seconds, steps, default_seconds=900.0)
    teacher = _teacher(work)
    torch.manual_seed(0)
    device = train_device()
    teacher.to(device)
    tiny = build_tiny_vae().to(device)
    optimizer = torch.optim.AdamW(tiny.parameters(), lr=LR, weight_decay=0.0)
    shapes = ShapeBatches("tiny_vae", BATCH - PHOTO_SHARE)
    photos = PhotoCrops(seed=OFFSETS["tiny_vae"])
    noise = torch.Generator().manual_seed(1)

    def step_fn(step: int) -> dict:
        pixels, mask = mixed_batch(shapes, photos, step, PHOTO_SHARE, device)
        loss, metrics = tiny_vae_loss(tiny, teacher, pixels, mask, noise)
        optimizer_step(optimizer, loss, tiny.parameters())
        return metrics

    result = train_loop("tiny-vae", {"tiny_vae": tiny}, optimizer, step_fn, work / "checkpoints" / "tiny_vae.pt",
                        seconds, steps, resume, LR, progress)
    tiny.eval()
    tiny.save_pretrained(work / "tiny_vae")
    metrics = evaluate_tiny_vae(tiny.cpu(), teacher.cpu(), eval_images, max(eval_images // 4, 1))
    return {"steps": result.steps, "seconds": round(result.seconds, 1), **metrics}


@torch.no_grad()
def evaluate_tiny_vae(tiny, teacher, n: int = 256, photos: int = 64) -> dict:
    """Held-out PSNR (dB, images in [0, 1]) of the tiny decoder on the full encoder's latents (what a stream
    decodes), of the tiny autoencoder on its own, and of the full autoencoder for comparison; and the tiny
    encoder's latent error relative to the latents' spread."""
    shapes = ShapeBatches("eval", n, split="eval")(step=0)["pixels"]
    sf = teacher.config.scaling_factor

    def psnr(recon, pixels) -> float:
        mse = ((recon.clamp(-1, 1) - pixels) / 2.0).square().flatten(1).mean(1)
        return round(float(torch.tensor([psnr_from_mse(float(m)) for m in mse]).mean()), 2)

    out = {}
    for name, pixels in (("", shapes), ("_photos", PhotoCrops(seed=12345)(0, photos))):
        full = teacher.encode(pixels).latent_dist.mean * sf
        own = tiny.encode(pixels).latents
        out[f"tiny_decoder_psnr{name}_db"] = psnr(tiny.decode(full).sample, pixels)
        out[f"tiny_vae_psnr{name}_db"] = psnr(tiny.decode(own).sample, pixels)
        out[f"full_vae_psnr{name}_db"] = psnr(teacher.decode(full / sf).sample, pixels)
        out[f"tiny_encoder_rel_error{name}"] = round(float((own - full).square().mean().sqrt() / full.std()), 4)
    return out
