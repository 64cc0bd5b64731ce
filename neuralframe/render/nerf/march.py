"""Ray marching through the occupancy grid and volume rendering of packed samples.

Public entries pick an implementation by name ("reference": `march_ref.py`, "cpu": `march_cpu.py`):

    ray_indices, t, done, k_end = march(rays_o, rays_d, t_min, t_max, occupancy, aabb, step, u, k_start, n)
    weights, t_before, t_after = sample_weights(sigmas, dts, ray_indices, transmittance)
    rgb, opacity, depth = composite(sigmas, rgbs, ts, dts, ray_indices, n_rays)   # differentiable

Samples are "packed": one flat list sorted by ray, each tagged with its ray's index.
"""

from __future__ import annotations

import torch

from neuralframe.backend import dispatch
from neuralframe.backend.checks import check_shape

_OPS = {}
for _name in ("march", "sample_weights", "composite"):
    _op = dispatch.op(f"nerf.{_name}")
    _op.register("reference", f"neuralframe.render.nerf.march_ref:{_name}")
    _op.register("cpu", f"neuralframe.render.nerf.march_cpu:{_name}", requires=("numba",), device="cpu")
    _OPS[_name] = _op


def march(
    rays_o: torch.Tensor,  # [R, 3]
    rays_d: torch.Tensor,  # [R, 3] unit
    t_min: torch.Tensor,  # [R]
    t_max: torch.Tensor,  # [R]
    occupancy: torch.Tensor,  # [G, G, G] bool
    aabb: torch.Tensor,  # [6]
    step: float,
    u: torch.Tensor | None = None,  # [R] in [0, 1)
    k_start: torch.Tensor | None = None,  # [R] int64
    max_samples: int = 1 << 30,
    impl: str = "auto",
):
    """Samples t = t_min + (k + u) * step in occupied cells; see `march_ref.march` for the outputs."""
    sizes = check_shape(rays_o, ["R", 3], "rays_o")
    for name, x, dims in (("rays_d", rays_d, ["R", 3]), ("t_min", t_min, ["R"]), ("t_max", t_max, ["R"]),
                          ("occupancy", occupancy, ["G", "G", "G"]), ("aabb", aabb, [6]),
                          ("u", u, ["R"]), ("k_start", k_start, ["R"])):
        if x is not None:
            sizes = check_shape(x, dims, name, sizes)
    n = sizes["R"]
    u = torch.full((n,), 0.5) if u is None else u
    k_start = torch.zeros(n, dtype=torch.int64) if k_start is None else k_start
    fn = _OPS["march"].resolve(impl, rays_o.device)
    return fn(rays_o, rays_d, t_min, t_max, occupancy, aabb, float(step), u, k_start, int(max_samples))


def sample_weights(sigmas, dts, ray_indices, transmittance, impl: str = "auto"):
    """Weights [S], transmittance before each sample [S] and after each ray [R] (no gradients)."""
    fn = _OPS["sample_weights"].resolve(impl, sigmas.device)
    return fn(sigmas.detach(), dts, ray_indices, transmittance)


def composite(sigmas, rgbs, ts, dts, ray_indices, n_rays: int, impl: str = "auto"):
    """rgb [R, 3], opacity [R] and accumulated t [R] of packed samples; differentiable in sigmas, rgbs."""
    fn = _OPS["composite"].resolve(impl, sigmas.device)
    return fn(sigmas, rgbs, ts, dts, ray_indices, int(n_rays))


def ray_box(rays_o: torch.Tensor, rays_d: torch.Tensor, aabb: torch.Tensor):  # -> t_near [R], t_far [R]
    """Entry and exit distances of rays through the box (t_near >= t_far where a ray misses it)."""
    inv = 1.0 / torch.where(rays_d.abs() < 1e-12, torch.full_like(rays_d, 1e-12), rays_d)
    t0 = (aabb[:3] - rays_o) * inv
    t1 = (aabb[3:] - rays_o) * inv
    t_near = torch.minimum(t0, t1).amax(-1)
    t_far = torch.maximum(t0, t1).amin(-1)
    return t_near, t_far
