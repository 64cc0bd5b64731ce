"""Small procedural Gaussian scenes for tests and benchmarks (no files needed)."""

from __future__ import annotations

import math

import torch

from neuralframe.render.camera import Camera, intrinsics, rotmat_to_quat
from neuralframe.render.splat.gaussians import Gaussians, rgb_to_sh0, sh_coeffs


def random_quats(n: int, gen: torch.Generator) -> torch.Tensor:  # [n, 4]
    """Uniformly random rotations (unnormalised quaternions, as the rasterizer accepts them)."""
    return torch.randn(n, 4, generator=gen) * (0.5 + torch.rand(n, 1, generator=gen))


def random_scene(n: int, *, seed: int = 0, sh_degree: int = 0, log_scale_mean: float = -2.6,
                 log_scale_std: float = 0.6, box=((-2.0, 2.0), (-1.5, 1.5), (-0.5, 6.0))) -> Gaussians:
    """Random Gaussians in a box around a camera at the origin looking along +z.

    The default box puts some Gaussians behind the camera, some straddling the near plane and some
    outside the field of view; scales are anisotropic (log-normal per axis), opacities span the range
    from invisible to opaque, SH coefficients are random (colours may leave [0, 1] before clamping).
    """
    gen = torch.Generator().manual_seed(seed)
    lo = torch.tensor([b[0] for b in box])
    hi = torch.tensor([b[1] for b in box])
    means = lo + (hi - lo) * torch.rand(n, 3, generator=gen)
    scales = log_scale_mean + log_scale_std * torch.randn(n, 3, generator=gen)
    opacities = 2.0 * torch.randn(n, generator=gen)
    sh = torch.zeros(n, sh_coeffs(sh_degree), 3)
    sh[:, 0] = rgb_to_sh0(torch.rand(n, 3, generator=gen))
    if sh_degree > 0:
        sh[:, 1:] = 0.3 * torch.randn(n, sh_coeffs(sh_degree) - 1, 3, generator=gen)
    return Gaussians(means, random_quats(n, gen), scales, opacities, sh)


def front_camera(width: int = 64, height: int = 48, fov_x_deg: float = 60.0, near: float = 0.01) -> Camera:
    """A camera at the origin looking along +z (identity world-to-camera)."""
    return Camera(torch.eye(4), intrinsics(width, height, fov_x_deg), width, height, near=near)


def surface_scene(n: int, *, seed: int = 0, sh_degree: int = 3, overlap: float = 6.0) -> Gaussians:
    """A scene shaped like a trained 3DGS capture: flat Gaussians on surfaces, seen by `bench_camera`.

    A unit sphere stands on a ground plane in front of a back wall (OpenCV world: y down). Gaussians
    are flat (thin along the surface normal), log-normally sized around a median chosen so that each
    surface point is covered by about `overlap` Gaussians (at 2 standard deviations) whatever `n` is;
    opacities are mostly high with a tail of faint ones; colours vary smoothly with small
    view-dependent SH terms. These are the statistics that make real scenes cost what they cost:
    footprints of a few pixels, a few layers per surface, early termination behind opaque surfaces.
    """
    gen = torch.Generator().manual_seed(seed)
    n_sphere, n_ground = int(0.4 * n), int(0.3 * n)
    n_wall = n - n_sphere - n_ground
    # Sphere of radius 1 at the origin.
    d = torch.randn(n_sphere, 3, generator=gen)
    normals_s = d / d.norm(dim=1, keepdim=True)
    pts_s = normals_s.clone()
    # Ground y = 1, x in [-3, 3], z in [-2, 3]; back wall z = 3, x in [-3, 3], y in [-2.5, 1].
    u = torch.rand(n_ground, 2, generator=gen)
    pts_g = torch.stack([-3 + 6 * u[:, 0], torch.ones(n_ground), -2 + 5 * u[:, 1]], 1)
    normals_g = torch.tensor([0.0, -1.0, 0.0]).expand(n_ground, 3)
    u = torch.rand(n_wall, 2, generator=gen)
    pts_w = torch.stack([-3 + 6 * u[:, 0], -2.5 + 3.5 * u[:, 1], torch.full((n_wall,), 3.0)], 1)
    normals_w = torch.tensor([0.0, 0.0, -1.0]).expand(n_wall, 3)
    means = torch.cat([pts_s, pts_g, pts_w])
    normals = torch.cat([normals_s, normals_g, normals_w])

    area = 4 * math.pi + 6 * 5 + 6 * 3.5
    sigma = math.sqrt(overlap * area / n / (4 * math.pi))  # n * pi * (2 sigma)^2 = overlap * area
    log_s = math.log(sigma) + 0.5 * torch.randn(n, 1, generator=gen)
    aniso = 0.3 * torch.randn(n, 2, generator=gen)
    scales = torch.cat([log_s + aniso, log_s + math.log(0.1)], 1)  # thin along the normal
    quats = _quats_with_z_along(normals, gen)
    high = torch.rand(n, generator=gen) < 0.8
    opacities = torch.where(high, 2.5 + 1.0 * torch.randn(n, generator=gen), -1.5 + 1.0 * torch.randn(n, generator=gen))
    rgb = 0.5 + 0.35 * torch.sin(torch.stack([3 * means[:, 0] + 1, 2 * means[:, 1] + 2, 2.5 * means[:, 2]], 1))
    rgb = (rgb + 0.05 * torch.randn(n, 3, generator=gen)).clamp(0, 1)
    sh = torch.zeros(n, sh_coeffs(sh_degree), 3)
    sh[:, 0] = rgb_to_sh0(rgb)
    if sh_degree > 0:
        sh[:, 1:] = 0.05 * torch.randn(n, sh_coeffs(sh_degree) - 1, 3, generator=gen)
    return Gaussians(means, quats, scales, opacities, sh)


def bench_camera(width: int = 800, height: int = 800, fov_x_deg: float = 50.0) -> Camera:
    """The view of `surface_scene`: from the front, slightly above, looking at the sphere."""
    K = intrinsics(width, height, fov_x_deg)
    return Camera.look_at((0.0, -0.8, -3.4), (0.0, 0.1, 0.5), K, width, height)


def _quats_with_z_along(normals: torch.Tensor, gen: torch.Generator) -> torch.Tensor:  # [n, 4]
    """Rotations whose third axis is `normals`, with a random spin about it."""
    n = normals.shape[0]
    z = normals / normals.norm(dim=1, keepdim=True)
    ref = torch.where((z[:, :1].abs() < 0.9), torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]))
    x = ref - (ref * z).sum(1, keepdim=True) * z
    x = x / x.norm(dim=1, keepdim=True)
    y = torch.linalg.cross(z, x)
    angle = 2 * math.pi * torch.rand(n, 1, generator=gen)
    x, y = torch.cos(angle) * x + torch.sin(angle) * y, -torch.sin(angle) * x + torch.cos(angle) * y
    R = torch.stack([x, y, z], 2)  # columns are the Gaussian's axes
    return rotmat_to_quat(R)
