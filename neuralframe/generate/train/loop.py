"""One training loop for every tiny-shapes stage: time/step budgets, warm-up + cosine learning rate,
periodic atomic checkpoints and resume.

    result = train_loop(
        "vae", {"vae": vae}, optimizer, step_fn, work / "checkpoints" / "vae.pt",
        seconds=900, steps=None, resume=True, lr=1e-3, progress=report,
    )

`step_fn(step)` runs one optimisation step and returns its scalar metrics (floats). It must draw its
batch from `step` alone (seeded data), so a resumed run continues the same data stream. Budgets count
in total across resumed runs. Ctrl-C writes a checkpoint before it propagates, so `--resume` continues
from where it stopped.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from neuralframe.backend.budget import budget_fraction


@dataclass
class LoopResult:
    steps: int
    seconds: float
    metrics: dict[str, float] = field(default_factory=dict)  # running averages at the end


def train_device() -> torch.device:
    """Where the stages train: the first CUDA GPU when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def lr_factor(progress: float, warmup: float = 0.03, final: float = 0.1) -> float:
    """Linear warm-up over the first `warmup` of the budget, then cosine down to `final`."""
    if progress < warmup:
        return max(progress / warmup, 0.01)
    t = min((progress - warmup) / max(1.0 - warmup, 1e-9), 1.0)
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * t))


def optimizer_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, params, max_norm: float = 1.0) -> None:
    """One update: gradients of `loss`, clipped to `max_norm` over `params`, applied."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, max_norm)
    optimizer.step()


def save_atomic(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train_loop(
    name: str,
    modules: dict[str, torch.nn.Module],
    optimizer: torch.optim.Optimizer,
    step_fn: Callable[[int], dict[str, float]],
    checkpoint: Path,
    seconds: float | None,
    steps: int | None,
    resume: bool,
    lr: float,
    progress: Callable[[dict], None] | None = None,
    checkpoint_every: float = 60.0,
    final_lr: float = 0.1,
) -> LoopResult:
    """Run `step_fn` until the budget is spent; see the module docstring."""
    checkpoint = Path(checkpoint)
    step, elapsed, averages = 0, 0.0, {}
    if resume and checkpoint.exists():
        from neuralframe.backend.weights import load_weights

        state = load_weights(checkpoint, f"checkpoint '{checkpoint}'")
        for key, module in modules.items():
            module.load_state_dict(state["modules"][key])
        optimizer.load_state_dict(state["optimizer"])
        step, elapsed, averages = state["step"], state["elapsed"], state.get("averages", {})

    def budget_progress() -> float:
        return budget_fraction(elapsed, step, seconds, steps)

    def save() -> None:
        save_atomic({"modules": {k: m.state_dict() for k, m in modules.items()}, "optimizer": optimizer.state_dict(),
                     "step": step, "elapsed": elapsed, "averages": averages, "stage": name}, checkpoint)

    for module in modules.values():
        module.train()
    last_save = time.perf_counter()
    try:
        while budget_progress() < 1.0:
            start = time.perf_counter()
            for group in optimizer.param_groups:
                group["lr"] = lr * lr_factor(budget_progress(), final=final_lr)
            metrics = step_fn(step)
            step += 1
            for k, v in metrics.items():
                averages[k] = v if k not in averages else 0.98 * averages[k] + 0.02 * v
            now = time.perf_counter()
            elapsed += now - start
            if now - last_save >= checkpoint_every:
                save()
                last_save = time.perf_counter()
            if progress is not None:
                progress({"stage": name, "step": step, "steps": steps, "elapsed": elapsed, "seconds": seconds,
                          "progress": min(budget_progress(), 1.0), **averages})
    except KeyboardInterrupt:
        save()
        raise
    save()
    for module in modules.values():
        module.eval()
    return LoopResult(step, elapsed, dict(averages))
