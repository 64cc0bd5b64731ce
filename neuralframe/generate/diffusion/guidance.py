"""Guidance modes of the streaming diffusion engine: one small class per mode, behind one registry.

    guidance = make_guidance("self", unet, scale=1.4, delta=1.0)  # chosen once, when the engine is built
    guidance.prepare(slot_noise, unet)                             # per-stream constants, once
    text = guidance.text_batch(cond, uncond, S)                    # once per prompt
    x, t = guidance.batch(latents), guidance.batch(timesteps)      # the UNet's batch: negatives first
    eps = guidance.combine(unet(x, t, encoder_hidden_states=text, timestep_cond=guidance.timestep_cond))

A mode evaluates, per call of the engine (one frame, S denoising steps in one batch), the S conditional
predictions plus `negatives(S)` unconditional ones; the negative elements come first in the batch and
take the first `negatives(S)` slots' latents and timesteps with the negative prompt's embedding.

- `embedded`: the UNet takes the guidance weight as an input (`time_cond_proj_dim`, as LCM-distilled
  models do): guided in one evaluation per step, no negative branch (S evaluations per frame).
- `none`: the conditional prediction alone (S).
- `full`: classifier-free guidance, the negative branch evaluated for every slot (2 S).
- `self`: StreamDiffusion's residual CFG: the negative branch is never evaluated; each slot's negative
  prediction is the noise the engine put into that slot, times `delta` (S).
- `initialize`: residual CFG with the negative branch evaluated once per frame, on the freshly noised
  slot, and the residual noise on the others (S + 1).

Guided prediction, as StreamDiffusion writes it: `negative + scale * (conditional - negative)`.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from neuralframe.errors import InputError

GUIDANCE: dict[str, type[Guidance]] = {}


def register(cls: type[Guidance]) -> type[Guidance]:
    GUIDANCE[cls.name] = cls
    return cls


def guidance_class(name: str, what: str = "cfg mode") -> type[Guidance]:
    """The registered mode called `name`; an unknown name is an InputError listing the registry."""
    try:
        return GUIDANCE[name]
    except KeyError:
        raise InputError(f"unknown {what} '{name}': use one of {', '.join(GUIDANCE)}") from None


def default_mode(unet) -> str:
    """`embedded` for a UNet with a guidance embedding, else residual CFG `self`."""
    return "embedded" if unet.config.time_cond_proj_dim is not None else "self"


def make_guidance(name: str | None, unet, scale: float, delta: float = 1.0) -> Guidance:
    """The guidance object for `name` (None: `default_mode(unet)`), checked against the UNet."""
    guidance = guidance_class(name or default_mode(unet))(scale, delta)
    guidance.check(unet)
    return guidance


class Guidance:
    """One guidance mode (see the module docstring).

    Args:
        scale: the guidance weight (diffusers' convention: 1 is the conditional prediction alone).
        delta: residual CFG's scale of the residual noise (used by `self` and `initialize` only).
    """

    name: ClassVar[str]

    def __init__(self, scale: float, delta: float = 1.0):
        self.scale, self.delta = float(scale), float(delta)
        self.timestep_cond: torch.Tensor | None = None  # [S, D] the UNet's `timestep_cond`, or None

    @classmethod
    def negatives(cls, steps: int) -> int:
        """Unconditional (negative-prompt) elements evaluated per call, for S denoising steps."""
        return 0

    @classmethod
    def evaluations(cls, steps: int) -> int:
        """Network evaluations (UNet samples) per output frame for S denoising steps."""
        return steps + cls.negatives(steps)

    def check(self, unet) -> None:
        """Raise an InputError if the UNet cannot run this mode."""

    def prepare(self, slot_noise: torch.Tensor, unet) -> None:  # slot_noise [S, C, H, W]
        """Per-stream constants (the engine's fixed per-slot noise is known from here on)."""

    def batch(self, x: torch.Tensor) -> torch.Tensor:  # [S, ...] -> [negatives + S, ...]
        """The UNet's batch from the S slots' latents or timesteps: the negative elements first."""
        n = self.negatives(x.shape[0])
        return torch.cat([x[:n], x]) if n else x

    def text_batch(self, cond: torch.Tensor, uncond: torch.Tensor | None,  # [1, T, D] each
                   steps: int) -> torch.Tensor:  # -> [negatives + S, T, D]
        """The text embeddings of the UNet's batch (`uncond` is needed only when `negatives(S) > 0`)."""
        n = self.negatives(steps)
        if not n:
            return cond.expand(steps, -1, -1).contiguous()
        return torch.cat([uncond.expand(n, -1, -1), cond.expand(steps, -1, -1)])

    def combine(self, eps: torch.Tensor) -> torch.Tensor:  # [negatives + S, C, H, W] -> [S, C, H, W]
        """The guided noise prediction of every slot from the UNet's outputs."""
        return eps


@register
class NoGuidance(Guidance):
    name = "none"


@register
class EmbeddedGuidance(Guidance):
    name = "embedded"

    def check(self, unet) -> None:
        if unet.config.time_cond_proj_dim is None:
            raise InputError("cfg 'embedded' needs a UNet with a guidance embedding (unet.config.time_cond_proj_dim)")

    def prepare(self, slot_noise: torch.Tensor, unet) -> None:
        from neuralframe.generate.models.architectures import guidance_embedding

        w = torch.full((slot_noise.shape[0],), self.scale - 1.0)
        self.timestep_cond = guidance_embedding(w, unet.config.time_cond_proj_dim).to(slot_noise.device,
                                                                                      slot_noise.dtype)


@register
class FullGuidance(Guidance):
    name = "full"

    @classmethod
    def negatives(cls, steps: int) -> int:
        return steps

    def combine(self, eps: torch.Tensor) -> torch.Tensor:
        uncond, cond = eps.chunk(2)
        return uncond + self.scale * (cond - uncond)


@register
class SelfGuidance(Guidance):
    """Residual CFG: the negative prediction of each slot is `delta` times the noise put into it."""

    name = "self"

    def prepare(self, slot_noise: torch.Tensor, unet) -> None:
        self.residual = self.delta * slot_noise  # [S, C, H, W]

    def combine(self, eps: torch.Tensor) -> torch.Tensor:
        return self.residual + self.scale * (eps - self.residual)


@register
class InitializeGuidance(SelfGuidance):
    """Residual CFG whose freshly noised slot gets an evaluated negative prediction."""

    name = "initialize"

    @classmethod
    def negatives(cls, steps: int) -> int:
        return 1

    def combine(self, eps: torch.Tensor) -> torch.Tensor:
        negative = torch.cat([eps[:1], self.residual[1:]])
        return negative + self.scale * (eps[1:] - negative)
