"""Ray marching and volume rendering: every implementation matches the reference exactly or closely."""

import pytest
import torch

from neuralframe.render.nerf import march as M

pytestmark = pytest.mark.kernel("nerf.march")

AABB = torch.tensor([-1.5, -1.5, -1.5, 1.5, 1.5, 1.5])


def _rays(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    o = torch.randn(n, 3, generator=g) * 0.3 + torch.tensor([0.0, 0.0, -4.0])
    d = torch.nn.functional.normalize(torch.randn(n, 3, generator=g) * 0.25 + torch.tensor([0.0, 0.0, 1.0]), dim=-1)
    t_near, t_far = M.ray_box(o, d, AABB)
    return o, d, t_near.clamp(min=0), t_far, g


def test_march_matches_reference(impl):
    o, d, t_near, t_far, g = _rays(400)
    occupancy = torch.zeros(32, 32, 32, dtype=torch.bool)
    occupancy[8:24, 8:24, 8:24] = torch.rand(16, 16, 16, generator=g) < 0.3  # empty blocks all around
    u = torch.rand(400, generator=g)
    for max_samples in (3, 1 << 20):
        k_start = torch.randint(0, 30, (400,), generator=g)
        expected = M.march(o, d, t_near, t_far, occupancy, AABB, 0.011, u, k_start, max_samples, impl="reference")
        got = M.march(o, d, t_near, t_far, occupancy, AABB, 0.011, u, k_start, max_samples, impl=impl)
        assert expected[0].numel() > 100
        for a, b in zip(expected, got):
            assert torch.equal(a, b)


def test_march_samples_only_occupied_cells(impl):
    # one occupied cell straight ahead: every sample lies in it, one step apart
    occupancy = torch.zeros(16, 16, 16, dtype=torch.bool)
    occupancy[8, 8, 8] = True
    cell = 3.0 / 16
    o = torch.tensor([[-1.5 + 8.5 * cell, -1.5 + 8.5 * cell, -4.0]])
    d = torch.tensor([[0.0, 0.0, 1.0]])
    t_near, t_far = M.ray_box(o, d, AABB)
    ray_idx, t, done, _ = M.march(o, d, t_near, t_far, occupancy, AABB, 0.01, impl=impl)
    z = o[0, 2] + t
    assert bool(done[0]) and ray_idx.tolist() == [0] * t.numel()
    assert t.numel() in (18, 19)  # cell / step
    assert bool(((z >= -1.5 + 8 * cell) & (z < -1.5 + 9 * cell)).all())
    assert torch.allclose(t[1:] - t[:-1], torch.tensor(0.01), atol=1e-5)


def test_composite_matches_reference(impl):
    o, d, t_near, t_far, g = _rays(200, seed=1)
    occupancy = torch.rand(16, 16, 16, generator=g) < 0.4
    ray_idx, ts, _, _ = M.march(o, d, t_near, t_far, occupancy, AABB, 0.02, impl="reference")
    s = ts.numel()
    sigmas = (torch.rand(s, generator=g) * 30).requires_grad_()
    rgbs = torch.rand(s, 3, generator=g).requires_grad_()
    dts = torch.full((s,), 0.02)
    v = [torch.randn(200, 3, generator=g), torch.randn(200, generator=g), torch.randn(200, generator=g)]
    results = []
    for name in ("reference", impl):
        out = M.composite(sigmas, rgbs, ts, dts, ray_idx, 200, impl=name)
        results.append(list(out) + list(torch.autograd.grad(out, [sigmas, rgbs], v)))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    transmittance = torch.rand(200, generator=g)
    for a, b in zip(M.sample_weights(sigmas, dts, ray_idx, transmittance, impl="reference"),
                    M.sample_weights(sigmas, dts, ray_idx, transmittance, impl=impl)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_composite_values(impl):
    # ray 0: an opaque red sample at t=2 behind a half-transparent blue one at t=1; ray 1: nothing
    sigmas = torch.tensor([10 * torch.log(torch.tensor(2.0)), 1e4])  # alpha 0.5 then 1
    rgbs = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    rgb, opacity, depth = M.composite(sigmas, rgbs, torch.tensor([1.0, 2.0]), torch.full((2,), 0.1),
                                      torch.tensor([0, 0]), 2, impl=impl)
    torch.testing.assert_close(rgb, torch.tensor([[0.5, 0.0, 0.5], [0.0, 0.0, 0.0]]))
    torch.testing.assert_close(opacity, torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(depth, torch.tensor([1.5, 0.0]))
