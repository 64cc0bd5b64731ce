"""Rendering a NeRF field from a camera: rays, progressive marching, early termination.

Rays march in rounds: each live ray takes a few more samples in occupied cells (2, then 4, up to
64), the field's density decides their weights, colour is evaluated only where a sample's weight
matters, and a ray stops once its transmittance falls below 1e-4 or it leaves the scene box.
"""

from __future__ import annotations

import torch

from neuralframe.backend import dispatch
from neuralframe.render import interrupt
from neuralframe.render.camera import Camera
from neuralframe.render.nerf import march as marching
from neuralframe.render.nerf.field import NerfField, trunc_exp
from neuralframe.render.output import RenderOutput

T_STOP = 1e-4  # transmittance below which a ray is finished
W_MIN = 1e-3  # samples lighter than this get no colour evaluation (each would add less than W_MIN to its pixel)
CHUNK = 1 << 14  # samples per network call: large CPU tensors cost more in page faults than in arithmetic


def chunked(fn, *tensors: torch.Tensor, chunk: int = CHUNK) -> torch.Tensor:
    """fn over row chunks of the tensors, concatenated (keeps intermediates small and cache-resident)."""
    n = tensors[0].shape[0]
    if n <= chunk:
        return fn(*tensors)
    return torch.cat([fn(*(t[i : i + chunk] for t in tensors)) for i in range(0, n, chunk)])


def _engine_samples(engine, x: torch.Tensor, d: torch.Tensor) -> torch.Tensor:  # -> [N, 4]: sigma, rgb
    out = engine(x=x, d=d)
    return torch.cat([torch.as_tensor(out["sigma"]).float()[:, None], torch.as_tensor(out["rgb"]).float()], 1)


def camera_rays(camera: Camera) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Ray origins [H*W, 3], unit directions [H*W, 3] and z per unit of t [H*W], row by row."""
    v, u = torch.meshgrid(torch.arange(camera.height, dtype=torch.float64),
                          torch.arange(camera.width, dtype=torch.float64), indexing="ij")
    d_cam = torch.stack([(u + 0.5 - camera.cx) / camera.fx, (v + 0.5 - camera.cy) / camera.fy,
                         torch.ones_like(u)], -1).reshape(-1, 3)
    norm = torch.linalg.norm(d_cam, dim=-1)
    d_world = (d_cam / norm[:, None]) @ camera.R  # rows of R are the camera axes in world coordinates
    origins = camera.position.expand(d_world.shape[0], 3)
    return origins.float().contiguous(), d_world.float().contiguous(), (1.0 / norm).float()


@torch.no_grad()
def render_rays(
    field: NerfField,
    rays_o: torch.Tensor,  # [R, 3]
    rays_d: torch.Tensor,  # [R, 3] unit
    t_near: torch.Tensor | None = None,  # [R]
    t_far: torch.Tensor | None = None,  # [R]
    impl: str = "auto",
    first_samples: int = 2,
    max_round: int = 64,
    engine=None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # rgb [R, 3] (no background), opacity [R], t [R]
    """Volume-render rays through `field`; returns the accumulated colour, opacity and sum of w * t.

    With `engine` (the field's exported graph on an engine: x, d -> sigma, rgb), the network runs there,
    density and colour of every sample in one call; the occupancy grid and marching stay the field's."""
    n = rays_o.shape[0]
    aabb = field.aabb
    box_near, box_far = marching.ray_box(rays_o, rays_d, aabb)
    t_min = box_near.clamp(min=0.0) if t_near is None else torch.maximum(box_near, t_near)
    t_max = box_far if t_far is None else torch.minimum(box_far, t_far)
    rgb = torch.zeros(n, 3)
    depth = torch.zeros(n)
    transmittance = torch.ones(n)
    u = torch.full((n,), 0.5)
    step = field.step
    mask = field.occupancy.mask
    # Rays start at the box around the occupied cells (on the same sample lattice t_min + (k + u) step,
    # one step early, so every sample the full march takes is still taken) and miss it entirely when
    # they miss that box: rays through empty space cost nothing.
    occ_near, occ_far = marching.ray_box(rays_o, rays_d, field.occupancy.occupied_box())
    k = ((occ_near - t_min) / step - u).floor().sub(1.0).clamp(min=0.0).long()
    t_max = torch.minimum(t_max, occ_far + step)
    active = torch.nonzero((t_min < t_max) & (occ_near < occ_far)).squeeze(1)
    # The view direction's share of the colour network, once per ray (computed when first needed);
    # a field that defines its own `color` is asked per sample instead.
    per_ray_terms = type(field).color is NerfField.color
    sh_terms = None
    per_ray = first_samples
    while active.numel():
        interrupt.check()
        ray_local, ts, done, k_end = marching.march(
            rays_o[active], rays_d[active], t_min[active], t_max[active], mask, aabb, step,
            u[active], k[active], per_ray, impl=impl)
        if ts.numel():
            rays = active[ray_local]
            pos = rays_o[rays] + ts[:, None] * rays_d[rays]
            if engine is not None:
                out = chunked(lambda p, d: _engine_samples(engine, p, d), pos, rays_d[rays])
                sigmas, rgb_all = out[:, 0].float(), out[:, 1:].float()
            else:
                geo = chunked(lambda p: field.geometry(p, impl=impl), pos)
                sigmas = trunc_exp(geo[:, 0])
            dts = torch.full_like(ts, step)
            weights, _, t_after = marching.sample_weights(sigmas, dts, ray_local, transmittance[active], impl=impl)
            keep = weights > W_MIN
            if bool(keep.any()):
                if engine is not None:
                    colour = rgb_all[keep]
                elif not per_ray_terms:
                    colour = chunked(field.color, geo[keep], rays_d[rays[keep]])
                else:
                    if sh_terms is None:
                        sh_terms = torch.zeros(n, field.config.hidden)
                        sh_terms[active] = field.direction_terms(rays_d[active])
                    colour = chunked(field.color_from_terms, geo[keep], sh_terms[rays[keep]])
                w = weights[keep]
                rgb.index_add_(0, rays[keep], w[:, None] * colour)
                depth.index_add_(0, rays[keep], w * ts[keep])
            transmittance[active] = t_after
        k[active] = k_end
        finished = done | (transmittance[active] < T_STOP)
        active = active[~finished]
        per_ray = min(per_ray * 2, max_round)
    return rgb, 1.0 - transmittance, depth


def render(field: NerfField, camera: Camera, impl: str = "auto", background=None, engine=None) -> RenderOutput:
    """Render `field` as seen by `camera`: rgb [H, W, 3], alpha [H, W], depth (camera z) [H, W].

    Args:
        field: a trained `NerfField` (its occupancy grid decides where samples are taken).
        camera: an OpenCV-convention `Camera`.
        impl: "auto", "reference" or "cpu" for the encoding, marching and compositing kernels.
        background: [3] colour composited under the scene (default black).
        engine: run the network on this engine (the field's exported graph) instead of in torch.
    """
    dispatch.check_impl(impl)
    rays_o, rays_d, z_per_t = camera_rays(camera)
    t_near = camera.near / z_per_t
    t_far = camera.far / z_per_t
    was_training = field.training
    field.eval()
    try:
        rgb, alpha, t_acc = render_rays(field, rays_o, rays_d, t_near, t_far, impl=impl, engine=engine)
    finally:
        field.train(was_training)
    if background is not None:
        bg = torch.as_tensor(background, dtype=torch.float32)
        rgb = rgb + (1.0 - alpha)[:, None] * bg
    depth = torch.where(alpha > 0, t_acc * z_per_t / alpha.clamp(min=1e-10), torch.zeros_like(alpha))
    h, w = camera.height, camera.width
    return RenderOutput(rgb.view(h, w, 3), alpha.view(h, w), depth.view(h, w))
