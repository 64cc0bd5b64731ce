"""Training a NeRF field from posed images (Instant-NGP's recipe, sized for a CPU).

Each step draws random pixels from random training views (with random background colours under
their alpha), marches their rays through the occupancy grid, finds with a density-only pass where
each ray's transmittance drops below 1e-4, and backpropagates through the samples in front of that.
The number of rays per step adapts so that a step has about `target_samples` samples. The occupancy
grid is refreshed every 16 steps. The learning rate decays over the second half of the budget.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field as dc_field, replace
from pathlib import Path
from typing import Callable

import torch

from neuralframe.backend.budget import budget_fraction, check_budget
from neuralframe.errors import InputError
from neuralframe.render.nerf import io as nerf_io
from neuralframe.render.nerf import march as marching
from neuralframe.render.nerf.data import NerfDataset, load_dataset
from neuralframe.render.nerf.field import FieldConfig, NerfField
from neuralframe.render.nerf.renderer import T_STOP, chunked, render


@dataclass(frozen=True)
class TrainConfig:
    """Settings of a training run.

    Args:
        field: the field's architecture (its `aabb` is replaced by the dataset's scene box).
        target_samples: samples per step that get gradients (instant-ngp: 2**18 on a GPU).
        lr: Adam learning rate (betas 0.9, 0.99, eps 1e-15, as instant-ngp).
        occupancy_every, warmup_steps: occupancy-grid refresh period, and steps that refresh all cells.
        validate_every: seconds between validation renders (one view), `checkpoint_every` likewise.
        seed: seeds ray sampling and initialisation.
    """

    field: FieldConfig = dc_field(default_factory=FieldConfig)
    target_samples: int = 1 << 15
    initial_rays: int = 1024
    max_rays: int = 1 << 14
    lr: float = 1e-2
    lr_final: float = 1e-3
    occupancy_every: int = 16
    warmup_steps: int = 256
    validate_every: float = 60.0
    checkpoint_every: float = 60.0
    seed: int = 0


def psnr(pred: torch.Tensor, target: torch.Tensor) -> float:
    mse = float(((pred.clamp(0, 1) - target) ** 2).mean())
    return float("inf") if mse == 0 else -10.0 * math.log10(mse)


def composite_on(images: torch.Tensor, background: torch.Tensor) -> torch.Tensor:  # [..., 4] -> [..., 3]
    return images[..., :3] * images[..., 3:] + background * (1.0 - images[..., 3:])


def validate(field: NerfField, data: NerfDataset, views: list[int] | None = None, impl: str = "auto") -> float:
    """Mean PSNR (dB) of renders on a white background against the views composited on white."""
    white = torch.ones(3)
    scores = []
    for i in views if views is not None else range(len(data)):
        out = render(field, data.camera(i), impl=impl, background=white)
        scores.append(psnr(out.rgb, composite_on(data.images[i], white)))
    return sum(scores) / len(scores)


class RaySampler:
    """Random training rays: pixel positions jittered inside the pixel, the pixel's RGBA as target."""

    def __init__(self, data: NerfDataset, generator: torch.Generator):
        self.data = data
        self.g = generator
        self.rot = data.c2w[:, :3, :3].contiguous()
        self.origin = data.c2w[:, :3, 3].contiguous()
        self.pixels = data.images.view(len(data), -1, 4)

    def __call__(self, n: int):
        d = self.data
        img = torch.randint(len(d), (n,), generator=self.g)
        px = torch.randint(d.width, (n,), generator=self.g)
        py = torch.randint(d.height, (n,), generator=self.g)
        jitter = torch.rand(n, 2, generator=self.g)
        K = d.K
        # OpenGL camera axes: x right, y up, looking down -z
        dirs = torch.stack([(px + jitter[:, 0] - K[0, 2]) / K[0, 0], -(py + jitter[:, 1] - K[1, 2]) / K[1, 1],
                            -torch.ones(n)], -1)
        dirs = torch.einsum("nij,nj->ni", self.rot[img], dirs)
        dirs = dirs / torch.linalg.norm(dirs, dim=-1, keepdim=True)
        rgba = self.pixels[img, py * d.width + px]
        return self.origin[img], dirs.contiguous(), rgba


def _lr_factor(progress: float, final: float) -> float:
    # constant for the first half of the budget, then exponential decay down to `final`
    return 1.0 if progress < 0.5 else final ** ((progress - 0.5) / 0.5)


def train_step(field: NerfField, optimizer, rays_o, rays_d, rgba, generator, impl: str = "auto"):
    """One optimisation step on a batch of rays; returns (loss, samples marched, samples trained)."""
    n = rays_o.shape[0]
    background = torch.rand(n, 3, generator=generator)
    target = composite_on(rgba, background)
    t_near, t_far = marching.ray_box(rays_o, rays_d, field.aabb)
    t_near = t_near.clamp(min=0.0)
    u = torch.rand(n, generator=generator)
    ray_idx, ts, _, _ = marching.march(rays_o, rays_d, t_near, t_far, field.occupancy.mask, field.aabb,
                                       field.step, u, None, 1 << 20, impl=impl)
    marched = int(ts.numel())
    dts = torch.full_like(ts, field.step)
    pos = rays_o[ray_idx] + ts[:, None] * rays_d[ray_idx]
    if marched:
        # a density-only pass finds where each ray becomes opaque; only samples in front train
        with torch.no_grad():
            sigmas = chunked(lambda p: field.density(p, impl=impl), pos)
        _, t_before, _ = marching.sample_weights(sigmas, dts, ray_idx, torch.ones(n), impl=impl)
        keep = t_before > T_STOP
        ray_idx, ts, dts, pos = ray_idx[keep], ts[keep], dts[keep], pos[keep]
    trained = int(ts.numel())
    sigmas, rgbs = field(pos, rays_d[ray_idx], impl=impl)
    rgb, opacity, _ = marching.composite(sigmas, rgbs, ts, dts, ray_idx, n, impl=impl)
    pred = rgb + (1.0 - opacity)[:, None] * background
    loss = ((pred - target) ** 2).mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach()), marched, trained


def _optimizer(field: NerfField, lr: float) -> torch.optim.Adam:
    return torch.optim.Adam(field.parameters(), lr=lr, betas=(0.9, 0.99), eps=1e-15)


def _restore_optimizer(optimizer, field: NerfField, tensors: dict) -> None:
    for name, p in field.named_parameters():
        if f"{name}.exp_avg" in tensors:
            optimizer.state[p] = {
                "step": torch.tensor(float(tensors[f"{name}.step"][0])),
                "exp_avg": tensors[f"{name}.exp_avg"].clone(),
                "exp_avg_sq": tensors[f"{name}.exp_avg_sq"].clone(),
            }


def train(
    data_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    seconds: float | None = None,
    steps: int | None = None,
    resume: bool = False,
    progress: Callable[[dict], None] | None = None,
    config: TrainConfig | None = None,
    impl: str = "auto",
) -> dict:
    """Train a NeRF on a `transforms.json` dataset and write a safetensors checkpoint.

    Args:
        data_dir: dataset folder (see `neuralframe.render.nerf.data`).
        out_path: the checkpoint, written atomically every `checkpoint_every` seconds and at the end.
        seconds, steps: the budget, counted in total over resumed runs; training stops at whichever
            comes first (with neither: 300 seconds).
        resume: continue from `out_path` (field, optimiser, step count, time) when it exists.
        progress: called after every step with a dict: step, steps, elapsed, seconds, loss, psnr (of
            the batch), val_psnr (latest, or None), rays, samples_per_ray, occupied.
        config: a `TrainConfig`; impl: kernel implementation ("auto", "reference", "cpu").
    Returns metrics: steps, seconds, train_psnr, val_psnr (mean over the validation split),
    val_views, samples_per_ray, occupied, checkpoint.
    """
    config = config or TrainConfig()
    seconds, steps = check_budget(seconds, steps, default_seconds=300.0)
    train_data = load_dataset(data_dir, "train")
    val_data = load_dataset(data_dir, "val")
    out_path = Path(out_path)
    torch.manual_seed(config.seed)
    g = torch.Generator().manual_seed(config.seed)

    state = {"step": 0, "elapsed": 0.0}
    if resume and out_path.exists():
        field, optim_tensors, state = nerf_io.load(out_path, impl=impl)
        if tuple(field.config.aabb) != tuple(train_data.aabb):
            raise InputError(f"{out_path}: the checkpoint's scene box does not match the dataset's")
        optimizer = _optimizer(field, config.lr)
        _restore_optimizer(optimizer, field, optim_tensors)
        g.manual_seed(config.seed + int(state.get("step", 0)))
    else:
        field_config = replace(config.field, aabb=tuple(train_data.aabb))
        field = NerfField(field_config, impl=impl)
        optimizer = _optimizer(field, config.lr)
    field.train()
    sampler = RaySampler(train_data, g)
    step = int(state.get("step", 0))
    elapsed = float(state.get("elapsed", 0.0))
    rays = int(state.get("rays", config.initial_rays))
    val_psnr = state.get("val_psnr")
    loss_avg = None
    samples_avg = None
    last_val = last_ckpt = time.perf_counter()
    val_view = 0

    def budget_progress() -> float:
        return budget_fraction(elapsed, step, seconds, steps)

    def checkpoint() -> None:
        nerf_io.save(out_path, field, optimizer, {"step": step, "elapsed": elapsed, "rays": rays,
                                                   "val_psnr": val_psnr, "dataset": str(data_dir)})

    try:
        while budget_progress() < 1.0:
            start = time.perf_counter()
            if step % config.occupancy_every == 0:
                warm = step < config.warmup_steps
                cells = field.occupancy.density.numel()
                field.occupancy.update(lambda p: field.density(p, impl=impl), field.step, warm,
                                       n_samples=cells // 8 if warm else cells // 32, generator=g)
            for group in optimizer.param_groups:
                group["lr"] = config.lr * _lr_factor(budget_progress(), config.lr_final / config.lr)
            rays_o, rays_d, rgba = sampler(rays)
            loss, marched, trained = train_step(field, optimizer, rays_o, rays_d, rgba, g, impl)
            step += 1
            # adapt the batch to the target number of trained samples (and bound the density pass)
            per_ray_trained = max(trained / rays, 1.0)
            per_ray_marched = max(marched / rays, 1.0)
            want = min(config.target_samples / per_ray_trained, 4 * config.target_samples / per_ray_marched)
            rays = int(min(max(0.8 * rays + 0.2 * want, 128), config.max_rays))
            loss_avg = loss if loss_avg is None else 0.9 * loss_avg + 0.1 * loss
            samples_avg = per_ray_trained if samples_avg is None else 0.9 * samples_avg + 0.1 * per_ray_trained
            now = time.perf_counter()
            elapsed += now - start
            if now - last_val >= config.validate_every:
                field.eval()
                val_psnr = validate(field, val_data, [val_view % len(val_data)], impl)
                field.train()
                val_view += 1
                last_val = time.perf_counter()
                elapsed += last_val - now
            if now - last_ckpt >= config.checkpoint_every:
                checkpoint()
                last_ckpt = time.perf_counter()
            if progress is not None:
                progress({"step": step, "steps": steps, "elapsed": elapsed, "seconds": seconds, "loss": loss_avg,
                          "psnr": -10 * math.log10(max(loss_avg, 1e-10)), "val_psnr": val_psnr, "rays": rays,
                          "samples_per_ray": samples_avg, "occupied": field.occupancy.occupied_fraction})
    except KeyboardInterrupt:
        checkpoint()  # resumable from here with resume=True
        raise
    field.eval()
    val_psnr = validate(field, val_data, impl=impl)
    checkpoint()
    return {
        "steps": step,
        "seconds": round(elapsed, 2),
        "train_psnr": round(-10 * math.log10(max(loss_avg or 1.0, 1e-10)), 2),
        "val_psnr": round(val_psnr, 2),
        "val_views": len(val_data),
        "samples_per_ray": round(samples_avg or 0.0, 1),
        "occupied": round(field.occupancy.occupied_fraction, 4),
        "checkpoint": str(out_path),
    }
