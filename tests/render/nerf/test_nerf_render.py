"""Rendering a field from a camera: an analytic sphere comes out where and how a user expects."""

import math

import pytest
import torch

from neuralframe.render.camera import Camera, intrinsics
from neuralframe.render.nerf import NerfField, render
from neuralframe.render.nerf.field import FieldConfig, grid_for, sh_encode, trunc_exp
from neuralframe.render.output import RenderOutput

pytestmark = pytest.mark.kernel("nerf.hashgrid")  # the hash grid's and the marching kernels, by name

RADIUS = 0.6


class SphereField(NerfField):
    """A solid orange ball of radius 0.6 at the origin, instead of the learned networks."""

    def geometry(self, x, impl=None):
        inside = x.norm(dim=-1) < RADIUS
        geo = torch.zeros(x.shape[0], self.config.geo_features)
        geo[:, 0] = torch.where(inside, torch.tensor(math.log(1e4)), torch.tensor(-20.0))
        return geo

    def color(self, geo, d):
        return torch.tensor([1.0, 0.5, 0.0]).expand(geo.shape[0], 3)


def _sphere_field():
    field = SphereField(FieldConfig(grid=grid_for(64, n_levels=2, log2_hashmap_size=10), occupancy_resolution=32))
    for _ in range(16):  # each update tests one random point per cell; the grid keeps the maximum
        field.occupancy.update(field.density, field.step, warmup=True)
    return field


def test_render_sphere(impl):
    field = _sphere_field()
    assert 0.02 < field.occupancy.occupied_fraction < 0.1  # the ball, not the whole box
    camera = Camera.look_at((0.0, 0.0, -3.0), (0.0, 0.0, 0.0), intrinsics(48, 40, 40.0), 48, 40)
    out = render(field, camera, impl=impl, background=(0.0, 0.0, 1.0))
    assert isinstance(out, RenderOutput) and out.rgb.shape == (40, 48, 3) and out.alpha.shape == (40, 48)
    centre, corner = (20, 24), (0, 0)
    assert out.alpha[centre] > 0.999 and out.alpha[corner] == 0.0
    torch.testing.assert_close(out.rgb[centre], torch.tensor([1.0, 0.5, 0.0]), atol=2e-3, rtol=0)
    torch.testing.assert_close(out.rgb[corner], torch.tensor([0.0, 0.0, 1.0]))
    # camera z of the front surface: 3 - 0.6, within a marching step
    assert abs(float(out.depth[centre]) - (3.0 - RADIUS)) < 0.02
    # the silhouette's area: the ball's projected disc
    f = camera.fx
    disc = math.pi * (f * RADIUS / math.sqrt(9 - RADIUS**2)) ** 2
    assert abs(float(out.alpha.sum()) - disc) / disc < 0.08


def test_render_matches_reference(impl):
    torch.manual_seed(0)
    field = NerfField(FieldConfig(grid=grid_for(64, n_levels=4, log2_hashmap_size=12), occupancy_resolution=16))
    with torch.no_grad():
        field.encoding.params.uniform_(-1, 1)
    camera = Camera.look_at((0.0, -3.0, 1.0), (0.0, 0.0, 0.0), intrinsics(24, 20, 50.0), 24, 20)
    a = render(field, camera, impl="reference")
    b = render(field, camera, impl=impl)
    for x, y in zip((a.rgb, a.alpha, a.depth), (b.rgb, b.alpha, b.depth)):
        torch.testing.assert_close(x, y, atol=2e-3, rtol=1e-3)
    assert float(a.alpha.max()) > 0.1


def test_sh_and_activation():
    d = torch.nn.functional.normalize(torch.randn(20000, 3), dim=-1)
    sh = sh_encode(d)
    # orthonormal over the sphere: E[Y_i Y_j] = delta_ij / (4 pi)
    gram = sh.T @ sh / d.shape[0] * 4 * math.pi
    torch.testing.assert_close(gram, torch.eye(16), atol=0.08, rtol=0)
    x = torch.tensor([0.0, 20.0], requires_grad=True)
    y = trunc_exp(x)
    y.sum().backward()
    # forward exp(x), gradient clamped at exp(15); float32 exp is within an ulp of the true value, and which
    # ulp depends on the CPU's vector exp (AVX-512 and AVX2 kernels differ), so compare to 1e-6
    torch.testing.assert_close(y.detach(), torch.tensor([1.0, math.exp(20.0)]), rtol=1e-6, atol=0)
    torch.testing.assert_close(x.grad, torch.tensor([1.0, math.exp(15.0)]), rtol=1e-6, atol=0)


def test_fused_geometry_matches_unfused():
    """The fused CPU inference kernel gives the density network's outputs (points outside the box
    clamp to its faces, as `normalize` does)."""
    from neuralframe.render.nerf import hashgrid_cpu as cpu

    torch.manual_seed(1)
    field = NerfField(FieldConfig(grid=grid_for(128, n_levels=6, log2_hashmap_size=12)))
    with torch.no_grad():
        field.encoding.params.uniform_(-1, 1)
    x = torch.rand(3000, 3) * 3.4 - 1.7  # the box is +-1.5
    with torch.no_grad():
        expected = field.geometry(x, impl="reference")
    got = cpu.geometry_forward(field, x)
    assert got.shape == expected.shape == (3000, field.config.geo_features)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    assert float(expected.abs().max()) > 0.1


def test_per_ray_colour_terms_and_occupied_box():
    """Rendering's shortcuts give what the plain definitions give: the colour from per-ray direction
    terms equals `color`, and the occupied box encloses the ball and little more."""
    torch.manual_seed(2)
    field = NerfField(FieldConfig(grid=grid_for(64, n_levels=4, log2_hashmap_size=12), occupancy_resolution=16))
    geo = torch.randn(500, field.config.geo_features)
    d = torch.nn.functional.normalize(torch.randn(500, 3), dim=-1)
    with torch.no_grad():
        torch.testing.assert_close(field.color_from_terms(geo, field.direction_terms(d)), field.color(geo, d))

    ball = _sphere_field()
    box = ball.occupancy.occupied_box()
    cell = 3.0 / ball.occupancy.resolution
    assert bool((box[:3] <= -RADIUS).all()) and bool((box[3:] >= RADIUS).all())
    assert bool((box[:3] >= -RADIUS - 2 * cell).all()) and bool((box[3:] <= RADIUS + 2 * cell).all())
    ball.occupancy.mask.zero_()
    empty = ball.occupancy.occupied_box()
    assert bool((empty[:3] > empty[3:]).all())  # nothing occupied: rays miss it
