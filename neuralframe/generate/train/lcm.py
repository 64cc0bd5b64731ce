"""Stage: latent consistency distillation with a guidance embedding (LCM, Luo et al. 2023).

The student is the teacher UNet plus a guidance-weight input (`time_cond_proj_dim`, zero-initialised,
so it starts as the teacher). Each step:

1. take a training latent x0, a DDIM step t_{n+k} -> t_n of a 50-step grid (k = 20 of 1000), a guidance
   weight w ~ U[W_MIN, W_MAX] (the guided prediction is cond + w (cond - uncond)), noise x0 to t_{n+k};
2. the frozen teacher makes one classifier-free-guided DDIM step to t_n (two evaluations: conditional
   and empty prompt, batched as one call);
3. the student at t_{n+k} and the EMA target network at t_n map their inputs to x0 through the
   consistency parameterisation c_skip(t) x_t + c_out(t) x0_pred (the boundary condition of diffusers'
   LCMScheduler, timestep_scaling 10, sigma_data 0.5);
4. pseudo-Huber loss between the two, then target <- EMA(student).

Sampling then needs one evaluation per step with guidance built in, against two per step for the
teacher's classifier-free guidance.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable

import torch

from neuralframe.backend.budget import check_budget
from neuralframe.generate.models.architectures import guidance_embedding, student_from_teacher
from neuralframe.generate.models.schedulers import noise_scheduler
from neuralframe.generate.tokenizer import load_clip_tokenizer
from neuralframe.generate.train.loop import optimizer_step, train_device, train_loop
from neuralframe.generate.train.t2i import N_LATENTS, cached_latents, tokenize

BATCH = 64
LR = 2e-4
DDIM_STEPS = 50
W_MIN, W_MAX = 1.0, 7.0
TARGET_EMA = 0.95
HUBER_C = 0.001
TIMESTEP_SCALING = 10.0
SIGMA_DATA = 0.5


def boundary_scalings(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """c_skip, c_out of the consistency parameterisation at integer timesteps t [B] (as LCMScheduler)."""
    s = t.float() * TIMESTEP_SCALING
    c_skip = SIGMA_DATA**2 / (s**2 + SIGMA_DATA**2)
    c_out = s / (s**2 + SIGMA_DATA**2) ** 0.5
    return c_skip, c_out


def _b(x: torch.Tensor) -> torch.Tensor:
    return x[:, None, None, None]


def x0_from_eps(xt, eps, ab):
    return (xt - (1 - _b(ab)).sqrt() * eps) / _b(ab).sqrt()


def train_lcm(work: Path, seconds: float | None = None, steps: int | None = None, resume: bool = False,
              progress: Callable[[dict], None] | None = None, n_latents: int = N_LATENTS) -> dict:
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel

    seconds, steps = check_budget(seconds, steps, default_seconds=1200.0)
    data = cached_latents(work, progress, n_latents)
    torch.manual_seed(0)
    device = train_device()
    teacher = UNet2DConditionModel.from_pretrained(work / "teacher").eval().requires_grad_(False)
    text = CLIPTextModel.from_pretrained(work / "text_encoder").eval().requires_grad_(False).to(device)
    student = student_from_teacher(teacher).to(device)
    teacher.to(device)
    target = copy.deepcopy(student).requires_grad_(False)
    optimizer = torch.optim.AdamW(student.parameters(), lr=LR, weight_decay=0.0)
    scheduler = noise_scheduler()
    alphas = scheduler.alphas_cumprod
    k = scheduler.config.num_train_timesteps // DDIM_STEPS
    grid = torch.arange(1, DDIM_STEPS + 1) * k - 1  # 19, 39, ..., 999
    with torch.no_grad():
        uncond = text(tokenize(load_clip_tokenizer(), [""]).to(device)).last_hidden_state  # [1, 77, D]
    n = len(data["latents"])

    def step_fn(step: int) -> dict:
        g = torch.Generator().manual_seed(7_000_003 * (step + 1))
        idx = torch.randint(0, n, (BATCH,), generator=g)
        x0 = data["latents"][idx]
        with torch.no_grad():
            cond = text(data["ids"][idx].long().to(device)).last_hidden_state
        t = grid[torch.randint(0, DDIM_STEPS, (BATCH,), generator=g)]
        t_prev = (t - k).clamp(min=0)
        w = W_MIN + (W_MAX - W_MIN) * torch.rand(BATCH, generator=g)
        noise = torch.randn(x0.shape, generator=g)
        ab_t, ab_prev = alphas[t], alphas[t_prev]
        xt = (_b(ab_t).sqrt() * x0 + (1 - _b(ab_t)).sqrt() * noise).to(device)
        w_emb, w = guidance_embedding(w).to(device), w.to(device)
        ab_t, ab_prev, t, t_prev = ab_t.to(device), ab_prev.to(device), t.to(device), t_prev.to(device)

        # student: consistency function at t
        c_skip, c_out = boundary_scalings(t)
        eps_s = student(xt, t, cond, timestep_cond=w_emb).sample
        pred = _b(c_skip) * xt + _b(c_out) * x0_from_eps(xt, eps_s, ab_t)

        with torch.no_grad():
            # teacher: one guided DDIM step t -> t_prev
            eps_both = teacher(torch.cat([xt, xt]), torch.cat([t, t]),
                               torch.cat([cond, uncond.expand(BATCH, -1, -1)])).sample
            eps_c, eps_u = eps_both.chunk(2)
            x0_c, x0_u = x0_from_eps(xt, eps_c, ab_t), x0_from_eps(xt, eps_u, ab_t)
            x0_g = x0_c + _b(w) * (x0_c - x0_u)
            eps_g = eps_c + _b(w) * (eps_c - eps_u)
            x_prev = _b(ab_prev).sqrt() * x0_g + (1 - _b(ab_prev)).sqrt() * eps_g
            # target network: consistency function at t_prev
            c_skip_p, c_out_p = boundary_scalings(t_prev)
            eps_t = target(x_prev, t_prev, cond, timestep_cond=w_emb).sample
            goal = _b(c_skip_p) * x_prev + _b(c_out_p) * x0_from_eps(x_prev, eps_t, ab_prev)

        loss = (torch.sqrt((pred - goal).square() + HUBER_C**2) - HUBER_C).mean()
        optimizer_step(optimizer, loss, student.parameters())
        with torch.no_grad():
            for p_t, p_s in zip(target.parameters(), student.parameters()):
                p_t.lerp_(p_s, 1 - TARGET_EMA)
        return {"loss": loss.item()}

    result = train_loop("lcm", {"student": student, "target": target}, optimizer, step_fn,
                        work / "checkpoints" / "lcm.pt", seconds, steps, resume, LR, progress, final_lr=0.2)
    # the target (EMA) network is the smoother of the two; LCM ships it
    target.cpu().save_pretrained(work / "unet")
    return {"steps": result.steps, "seconds": round(result.seconds, 1), "final_loss": round(
        result.metrics.get("loss", float("nan")), 5), "w_range": [W_MIN, W_MAX], "ddim_grid": DDIM_STEPS}
