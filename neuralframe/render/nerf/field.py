"""The NeRF field of Instant-NGP: hash encoding -> density MLP -> colour MLP with SH view directions.

Like instant-ngp's `NerfNetwork`: the density MLP (one hidden layer of 64, no biases, as tiny-cuda-nn's
fully fused MLPs) maps the encoding to 16 values, the first of which through a truncated exponential
is the density; all 16, with a degree-4 spherical-harmonics encoding of the view direction, feed the
colour MLP (two hidden layers of 64, sigmoid output).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from neuralframe.errors import InputError
from neuralframe.render.nerf.hashgrid import HashGrid, HashGridConfig
from neuralframe.render.nerf.occupancy import OccupancyGrid


def grid_for(finest_resolution: int, n_levels: int = 16, log2_hashmap_size: int = 19,
             base_resolution: int = 16, n_features_per_level: int = 2) -> HashGridConfig:
    """A hash grid whose finest level has about `finest_resolution` cells per side (instant-ngp's rule)."""
    scale = math.exp(math.log(finest_resolution / base_resolution) / max(n_levels - 1, 1))
    return HashGridConfig(n_levels, n_features_per_level, log2_hashmap_size, base_resolution, scale)


@dataclass(frozen=True)
class FieldConfig:
    """Settings of a NeRF field; serialised into checkpoints.

    Args:
        grid: the hash-grid encoding.
        aabb: scene box (xmin, ymin, zmin, xmax, ymax, zmax) in world units; points are encoded at
            their position normalised to [0, 1]^3 in it.
        hidden: width of both MLPs.
        geo_features: outputs of the density MLP (the first is the density).
        occupancy_resolution: cells per side of the occupancy grid.
        steps_per_diagonal: marching step = box diagonal / this (instant-ngp: 1024 over the unit cube).
    """

    grid: HashGridConfig = field(default_factory=lambda: grid_for(512, log2_hashmap_size=17))
    aabb: tuple[float, ...] = (-1.5, -1.5, -1.5, 1.5, 1.5, 1.5)
    hidden: int = 64
    geo_features: int = 16
    occupancy_resolution: int = 128
    steps_per_diagonal: int = 512

    @property
    def step(self) -> float:
        lo, hi = self.aabb[:3], self.aabb[3:]
        return math.sqrt(sum((b - a) ** 2 for a, b in zip(lo, hi))) / self.steps_per_diagonal

    def to_dict(self) -> dict:
        d = asdict(self)
        d["aabb"] = list(self.aabb)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "FieldConfig":
        return cls(HashGridConfig(**d["grid"]), tuple(float(v) for v in d["aabb"]), int(d["hidden"]),
                   int(d["geo_features"]), int(d["occupancy_resolution"]), int(d["steps_per_diagonal"]))


class _TruncExp(torch.autograd.Function):
    """exp(x) whose gradient is clamped at exp(15): the usual density activation of instant-ngp ports."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.exp(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * torch.exp(x.clamp(-15.0, 15.0))


def trunc_exp(x: torch.Tensor) -> torch.Tensor:
    return _TruncExp.apply(x)


def sh_encode(d: torch.Tensor) -> torch.Tensor:  # [N, 3] unit vectors -> [N, 16]
    """Real spherical harmonics up to degree 4 (16 terms) in tiny-cuda-nn's order and signs."""
    x, y, z = d.unbind(-1)
    xx, yy, zz = x * x, y * y, z * z
    xy, yz, xz = x * y, y * z, x * z
    return torch.stack([
        torch.full_like(x, 0.28209479177387814),
        -0.48860251190291987 * y,
        0.48860251190291987 * z,
        -0.48860251190291987 * x,
        1.0925484305920792 * xy,
        -1.0925484305920792 * yz,
        0.94617469575755997 * zz - 0.31539156525251999,
        -1.0925484305920792 * xz,
        0.54627421529603959 * xx - 0.54627421529603959 * yy,
        0.59004358992664352 * y * (-3.0 * xx + yy),
        2.8906114426405538 * xy * z,
        0.45704579946446572 * y * (1.0 - 5.0 * zz),
        0.3731763325901154 * z * (5.0 * zz - 3.0),
        0.45704579946446572 * x * (1.0 - 5.0 * zz),
        1.4453057213202769 * z * (xx - yy),
        0.59004358992664352 * x * (-xx + 3.0 * yy),
    ], -1)


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1], bias=False))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class NerfField(nn.Module):
    """Density and view-dependent colour of a scene inside `config.aabb`."""

    def __init__(self, config: FieldConfig | None = None, impl: str = "auto"):
        super().__init__()
        self.config = config or FieldConfig()
        self.impl = impl
        self.encoding = HashGrid.from_config(self.config.grid, impl=impl)
        h = self.config.hidden
        self.density_net = _mlp([self.encoding.n_output_dims, h, self.config.geo_features])
        self.color_net = _mlp([self.config.geo_features + 16, h, h, 3])
        aabb = torch.tensor(self.config.aabb, dtype=torch.float32)
        if aabb.shape != (6,) or not bool((aabb[3:] > aabb[:3]).all()):
            raise InputError(f"the scene box must be (xmin, ymin, zmin, xmax, ymax, zmax), got {self.config.aabb}")
        self.register_buffer("aabb", aabb, persistent=False)
        self.occupancy = OccupancyGrid(aabb, self.config.occupancy_resolution)

    @property
    def step(self) -> float:
        return self.config.step

    def normalize(self, x: torch.Tensor) -> torch.Tensor:  # [N, 3] world -> [N, 3] in [0, 1]
        lo, hi = self.aabb[:3], self.aabb[3:]
        return ((x - lo) / (hi - lo)).clamp(0.0, 1.0)

    def geometry(self, x: torch.Tensor, impl: str | None = None) -> torch.Tensor:  # [N, 3] -> [N, G]
        """The density MLP's outputs; column 0 is the raw (pre-activation) density."""
        return self.density_net(self.encoding(self.normalize(x), impl=impl or self.impl))

    def density(self, x: torch.Tensor, impl: str | None = None) -> torch.Tensor:  # [N, 3] -> [N]
        return trunc_exp(self.geometry(x, impl)[:, 0])

    def color(self, geo: torch.Tensor, d: torch.Tensor) -> torch.Tensor:  # [N, G], [N, 3] -> [N, 3]
        return torch.sigmoid(self.color_net(torch.cat([geo, sh_encode(d)], -1)))

    def direction_terms(self, d: torch.Tensor) -> torch.Tensor:  # [R, 3] unit -> [R, H]
        """The view direction's share of the colour network's first layer, W_dir sh(d): computed once per
        ray when rendering, instead of once per sample (`color_from_terms`)."""
        w = self.color_net[0].weight
        return sh_encode(d) @ w[:, self.config.geo_features:].t()

    def color_from_terms(self, geo: torch.Tensor, terms: torch.Tensor) -> torch.Tensor:  # [N, G], [N, H] -> [N, 3]
        """`color(geo, d)` given `direction_terms(d)` of each sample's ray (same values up to rounding)."""
        w = self.color_net[0].weight
        h = torch.addmm(terms, geo, w[:, : self.config.geo_features].t()).relu_()
        return torch.sigmoid(self.color_net[2:](h))

    def forward(self, x: torch.Tensor, d: torch.Tensor, impl: str | None = None):
        """Density [N] and colour [N, 3] at world points x [N, 3] seen along unit directions d [N, 3]."""
        geo = self.geometry(x, impl)
        return trunc_exp(geo[:, 0]), self.color(geo, d)
