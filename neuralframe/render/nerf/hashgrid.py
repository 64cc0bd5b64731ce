"""Multi-resolution hash encoding (Instant-NGP), laid out exactly as tiny-cuda-nn's "HashGrid".

A table trained by tiny-cuda-nn or instant-ngp (its flat parameter vector, viewed as
[total_entries, n_features_per_level]) gives the same features here:

- level l has scale `base_resolution * per_level_scale**l - 1` (float32, as `exp2f(l * log2(s))`),
  resolution `ceil(scale) + 1`, and `min(next_multiple_of_8(resolution**3), 2**log2_hashmap_size)`
  entries; levels are concatenated in order, `level_offsets[l]` is where level l starts;
- a point x in [0, 1]^3 sits at `x * scale + 0.5`, split into a cell corner (floor) and a fraction;
- the 8 corners are interpolated trilinearly; a corner's entry is its dense index
  `x + y * res + z * res**2` while `res**3` fits the level's table, otherwise the XOR hash
  `x * 1 ^ y * 2654435761 ^ z * 805459861` (uint32), in both cases modulo the level's size.

The kernels (`hashgrid_ref.py`, `hashgrid_cpu.py`) share one signature and are picked by `impl`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from neuralframe.backend import dispatch
from neuralframe.backend.checks import check_shape
from neuralframe.errors import InputError

PRIMES = (1, 2654435761, 805459861)

FORWARD = dispatch.op("nerf.hashgrid")
FORWARD.register("reference", "neuralframe.render.nerf.hashgrid_ref:hashgrid_forward")
FORWARD.register("cpu", "neuralframe.render.nerf.hashgrid_cpu:hashgrid_forward", requires=("numba",), device="cpu")
BACKWARD = dispatch.op("nerf.hashgrid_backward")
BACKWARD.register("reference", "neuralframe.render.nerf.hashgrid_ref:hashgrid_backward")
BACKWARD.register("cpu", "neuralframe.render.nerf.hashgrid_cpu:hashgrid_backward", requires=("numba",), device="cpu")


@dataclass(frozen=True)
class HashGridConfig:
    n_levels: int = 16
    n_features_per_level: int = 2
    log2_hashmap_size: int = 19
    base_resolution: int = 16
    per_level_scale: float = 2.0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Layout:
    """Per-level constants, computed once (float32 scales as the CUDA kernel computes them)."""

    offsets: np.ndarray  # [L + 1] int64, in table entries
    scales: np.ndarray  # [L] float32
    resolutions: np.ndarray  # [L] int64

    @property
    def total_entries(self) -> int:
        return int(self.offsets[-1])


def next_multiple(value: int, multiple: int) -> int:
    return (value + multiple - 1) // multiple * multiple


def layout(config: HashGridConfig) -> Layout:
    """Level offsets, scales and resolutions of a hash grid, as tiny-cuda-nn computes them."""
    if config.n_levels < 1 or config.n_features_per_level < 1:
        raise InputError("a hash grid needs at least one level and one feature per level")
    if not 3 <= config.log2_hashmap_size <= 30:
        raise InputError(f"log2_hashmap_size must be in [3, 30], got {config.log2_hashmap_size}")
    if config.base_resolution < 1 or config.per_level_scale < 1.0:
        raise InputError("base_resolution must be >= 1 and per_level_scale >= 1")
    log2_scale = np.log2(np.float32(config.per_level_scale), dtype=np.float32)
    max_params = (2**32 - 1) // 2
    offsets, scales, resolutions = [0], [], []
    for level in range(config.n_levels):
        scale = np.float32(np.exp2(np.float32(level) * log2_scale, dtype=np.float32)) * np.float32(
            config.base_resolution
        ) - np.float32(1.0)
        resolution = int(math.ceil(float(scale))) + 1
        dense = resolution**3
        entries = max_params if float(resolution) ** 3 > max_params else dense
        entries = min(next_multiple(entries, 8), 2**config.log2_hashmap_size)
        scales.append(np.float32(scale))
        resolutions.append(resolution)
        offsets.append(offsets[-1] + entries)
    return Layout(
        np.asarray(offsets, dtype=np.int64),
        np.asarray(scales, dtype=np.float32),
        np.asarray(resolutions, dtype=np.int64),
    )


def check_points(x: torch.Tensor, name: str = "x") -> None:
    check_shape(x, ["N", 3], name, dtype=torch.float32)


class _HashGridFunction(torch.autograd.Function):
    """Forward and backward through the kernels of one implementation."""

    @staticmethod
    def forward(ctx, x, params, offsets, scales, resolutions, impl):  # x [N, 3], params [T, F]
        forward = FORWARD.resolve(impl, x.device)
        ctx.save_for_backward(x, params, offsets, scales, resolutions)
        ctx.impl = impl
        return forward(x, params, offsets, scales, resolutions)

    @staticmethod
    def backward(ctx, v_features):  # [N, L * F]
        x, params, offsets, scales, resolutions = ctx.saved_tensors
        backward = BACKWARD.resolve(ctx.impl, x.device)
        v_x, v_params = backward(
            x, params, offsets, scales, resolutions, v_features.contiguous(), ctx.needs_input_grad[0]
        )
        return v_x, v_params, None, None, None, None


def hashgrid_encode(
    x: torch.Tensor,  # [N, 3] in [0, 1]
    params: torch.Tensor,  # [T, F]
    offsets: torch.Tensor,  # [L + 1] int64
    scales: torch.Tensor,  # [L] float32
    resolutions: torch.Tensor,  # [L] int64
    impl: str = "auto",
) -> torch.Tensor:  # [N, L * F]
    """Encode points with a flat table; differentiable in `params` (and `x`) for every impl."""
    dispatch.check_impl(impl)
    name = FORWARD.name_for(impl, x.device)
    return _HashGridFunction.apply(x.contiguous(), params, offsets, scales, resolutions, name)


class HashGrid(nn.Module):
    """Instant-NGP multi-resolution hash encoding of points in [0, 1]^3.

    Args:
        n_levels, n_features_per_level, log2_hashmap_size, base_resolution, per_level_scale:
            as in tiny-cuda-nn's "HashGrid" encoding.
        impl: "auto", "reference" or "cpu" (see `neuralframe.backend.dispatch`).
    """

    def __init__(
        self,
        n_levels: int = 16,
        n_features_per_level: int = 2,
        log2_hashmap_size: int = 19,
        base_resolution: int = 16,
        per_level_scale: float = 2.0,
        impl: str = "auto",
    ):
        super().__init__()
        self.config = HashGridConfig(
            n_levels, n_features_per_level, log2_hashmap_size, base_resolution, float(per_level_scale)
        )
        self.impl = dispatch.check_impl(impl)
        lay = layout(self.config)
        self.layout = lay
        # instant-ngp initialises the table uniformly in [-1e-4, 1e-4]
        self.params = nn.Parameter(torch.empty(lay.total_entries, n_features_per_level).uniform_(-1e-4, 1e-4))
        self.register_buffer("level_offsets", torch.from_numpy(lay.offsets.copy()), persistent=False)
        self.register_buffer("level_scales", torch.from_numpy(lay.scales.copy()), persistent=False)
        self.register_buffer("level_resolutions", torch.from_numpy(lay.resolutions.copy()), persistent=False)

    @classmethod
    def from_config(cls, config: HashGridConfig, impl: str = "auto") -> "HashGrid":
        return cls(**config.to_dict(), impl=impl)

    @property
    def n_output_dims(self) -> int:
        return self.config.n_levels * self.config.n_features_per_level

    def forward(self, x: torch.Tensor, impl: str | None = None) -> torch.Tensor:  # [N, 3] -> [N, L * F]
        check_points(x)
        return hashgrid_encode(
            x, self.params, self.level_offsets, self.level_scales, self.level_resolutions, impl or self.impl
        )

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"levels={c.n_levels}, features={c.n_features_per_level}, log2_T={c.log2_hashmap_size}, "
            f"base={c.base_resolution}, scale={c.per_level_scale:.4f}, entries={self.layout.total_entries}"
        )
