"""Stage 1: the latent autoencoder (diffusers AutoencoderKL, 64x64x3 <-> 8x8x4).

Trained on procedural frames (three quarters of each batch) and crops of real photographs (one quarter),
with an L1 + L2 reconstruction loss that weighs the shape's pixels 5x (its outline and texture are what
the classifier and the captions care about) and a small KL term that keeps the latent space smooth.
After training, `scaling_factor` is set so that scaled latents have unit spread, as diffusion expects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from neuralframe.backend.budget import check_budget
from neuralframe.generate.data.batches import OFFSETS, PhotoCrops, ShapeBatches, mixed_batch
from neuralframe.generate.evaluate import evaluate_vae, psnr_from_mse
from neuralframe.generate.models.architectures import build_vae
from neuralframe.generate.train.loop import optimizer_step, train_device, train_loop

BATCH = 32
PHOTO_SHARE = 8  # of each batch
LR = 2e-3
KL_WEIGHT = 1e-7
SHAPE_WEIGHT = 4.0


def vae_loss(vae, pixels: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, dict]:
    posterior = vae.encode(pixels).latent_dist
    # decode the posterior mean: the sampling noise of a fresh encoder (unit variance) would drown what the
    # latents carry early in training, and the small KL term keeps the means bounded either way
    recon = vae.decode(posterior.mode()).sample
    weight = 1.0 + SHAPE_WEIGHT * mask
    err = recon - pixels
    rec = (weight * err.abs()).mean() + (weight * err.square()).mean()
    kl = posterior.kl().mean()
    mse = err.detach().square().mean().item()
    return rec + KL_WEIGHT * kl, {"loss": rec.item(), "kl": kl.item(), "psnr": psnr_from_mse(mse / 4.0)}


def train_vae(work: Path, seconds: float | None = None, steps: int | None = None, resume: bool = False,
              progress: Callable[[dict], None] | None = None, eval_images: int = 256) -> dict:
    """Train and save `work/vae` (diffusers layout). Returns metrics (steps, seconds, held-out PSNR)."""
    seconds, steps = check_budget(seconds, steps, default_seconds=900.0)
    torch.manual_seed(0)
    device = train_device()
    vae = build_vae().to(device)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=LR, weight_decay=0.0)
    shapes = ShapeBatches("vae", BATCH - PHOTO_SHARE)
    photos = PhotoCrops(seed=OFFSETS["vae"])

    def step_fn(step: int) -> dict:
        pixels, mask = mixed_batch(shapes, photos, step, PHOTO_SHARE, device)
        loss, metrics = vae_loss(vae, pixels, mask)
        optimizer_step(optimizer, loss, vae.parameters())
        return metrics

    result = train_loop("vae", {"vae": vae}, optimizer, step_fn, work / "checkpoints" / "vae.pt",
                        seconds, steps, resume, LR, progress)
    vae.eval()
    scale = latent_scaling_factor(vae)
    vae.register_to_config(scaling_factor=scale)
    vae.save_pretrained(work / "vae")
    metrics = evaluate_vae(vae, eval_images, max(eval_images // 4, 1))
    return {"steps": result.steps, "seconds": round(result.seconds, 1), "scaling_factor": scale, **metrics}


@torch.no_grad()
def latent_scaling_factor(vae, n: int = 512) -> float:
    b = ShapeBatches("latents", n)(step=10_000)
    z = vae.encode(b["pixels"].to(vae.device)).latent_dist.mean
    return float(1.0 / z.std())
