"""The hash grid matches tiny-cuda-nn's layout and indexing, and every kernel matches the reference."""

import numpy as np
import pytest
import torch

from neuralframe.errors import InputError
from neuralframe.render.nerf import HashGrid, HashGridConfig, layout
from neuralframe.render.nerf import hashgrid_ref as ref

pytestmark = pytest.mark.kernel("nerf.hashgrid")

PRIMES = (1, 2654435761, 805459861)


def test_layout_matches_tiny_cuda_nn():
    lay = layout(HashGridConfig(n_levels=6, log2_hashmap_size=19, base_resolution=16, per_level_scale=2.0))
    # resolutions ceil(16 * 2**l - 1) + 1; levels 0-2 fit densely (16**3, 32**3, 64**3 <= 2**19)
    assert lay.resolutions.tolist() == [16, 32, 64, 128, 256, 512]
    assert np.diff(lay.offsets).tolist() == [4096, 32768, 262144, 2**19, 2**19, 2**19]
    # non-integer scales: 16 * 1.5**3 - 1 = 53 -> 54; 24**3 = 13824 is a multiple of 8; 36**3 = 46656 too
    lay = layout(HashGridConfig(n_levels=4, log2_hashmap_size=14, base_resolution=16, per_level_scale=1.5))
    assert lay.resolutions.tolist() == [16, 24, 36, 54]
    assert np.diff(lay.offsets).tolist() == [4096, 13824, 2**14, 2**14]
    # the 8-alignment: 13**3 = 2197 -> 2200 entries
    lay = layout(HashGridConfig(n_levels=1, log2_hashmap_size=19, base_resolution=13))
    assert lay.offsets.tolist() == [0, 2200]


def test_module_exposes_flat_table():
    grid = HashGrid(n_levels=4, n_features_per_level=2, log2_hashmap_size=12, base_resolution=8, impl="reference")
    assert grid.params.shape == (int(grid.level_offsets[-1]), 2)
    assert grid.level_offsets.tolist() == layout(grid.config).offsets.tolist()
    assert float(grid.params.detach().abs().max()) <= 1e-4  # instant-ngp's initialisation
    assert grid(torch.rand(5, 3)).shape == (5, 8)
    with pytest.raises(InputError, match=r"\[N, 3\]"):
        grid(torch.rand(5, 2))


def _point_on_vertex(g, scale):
    # x * scale + 0.5 == g exactly (scale is a power of two), so the fraction is 0 and the corner's
    # entry comes out unblended
    return torch.tensor([[(c - 0.5) / scale for c in g]], dtype=torch.float32)


def test_dense_and_hashed_indexing(impl):
    # scale 16, resolution 17, 17**3 = 4913 <= 2**13: dense index x + y*17 + z*17**2
    dense = HashGrid(n_levels=1, log2_hashmap_size=13, base_resolution=17, impl=impl)
    g = (3, 5, 7)
    row = g[0] + g[1] * 17 + g[2] * 17 * 17
    with torch.no_grad():
        dense.params.zero_()
        dense.params[row] = torch.tensor([1.5, -2.0])
    assert dense(_point_on_vertex(g, 16.0)).tolist() == [[1.5, -2.0]]

    # scale 64, resolution 65, 65**3 > 2**12: XOR hash of the corner with tiny-cuda-nn's primes
    hashed = HashGrid(n_levels=1, log2_hashmap_size=12, base_resolution=65, impl=impl)
    g = (40, 9, 63)
    row = ((g[0] * PRIMES[0]) ^ (g[1] * PRIMES[1]) ^ (g[2] * PRIMES[2])) % 2**32 % 2**12
    with torch.no_grad():
        hashed.params.zero_()
        hashed.params[row] = torch.tensor([0.25, 4.0])
    assert hashed(_point_on_vertex(g, 64.0)).tolist() == [[0.25, 4.0]]


def test_trilinear_midpoint(impl):
    # halfway between two vertices along x: the mean of their entries
    grid = HashGrid(n_levels=1, n_features_per_level=1, log2_hashmap_size=13, base_resolution=17, impl=impl)
    with torch.no_grad():
        grid.params.zero_()
        grid.params[2 + 3 * 17 + 4 * 289] = 1.0
        grid.params[3 + 3 * 17 + 4 * 289] = 3.0
    x = torch.tensor([[2.0 / 16, 2.5 / 16, 3.5 / 16]])  # pos = (2.5, 3, 4)
    assert grid(x).item() == pytest.approx(2.0, abs=1e-6)


CONFIGS = [
    dict(n_levels=8, n_features_per_level=2, log2_hashmap_size=12, base_resolution=4, per_level_scale=1.7),
    dict(n_levels=3, n_features_per_level=4, log2_hashmap_size=10, base_resolution=6, per_level_scale=2.5),
    dict(n_levels=2, n_features_per_level=1, log2_hashmap_size=9, base_resolution=3, per_level_scale=4.0),
]


@pytest.mark.parametrize("config", CONFIGS, ids=["f2", "f4", "f1"])
def test_matches_reference_forward_and_backward(impl, config):
    torch.manual_seed(1)
    grid = HashGrid(**config, impl=impl)
    with torch.no_grad():
        grid.params.uniform_(-1, 1)
    x = torch.rand(3000, 3)
    x[:8] = torch.tensor([0.0, 1.0]).repeat(12)[:24].view(8, 3)  # the faces, where dense indices wrap
    x.requires_grad_(True)
    v = torch.randn(3000, grid.n_output_dims)

    features = grid(x)
    features.backward(v)
    expected = ref.hashgrid_forward(x, grid.params, grid.level_offsets, grid.level_scales, grid.level_resolutions)
    v_x, v_params = torch.autograd.grad(expected, [x, grid.params], v)

    torch.testing.assert_close(features, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grid.params.grad, v_params, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(x.grad, v_x, rtol=1e-3, atol=1e-3)
    assert grid.params.grad.abs().sum() > 0 and x.grad.abs().sum() > 0


def test_training_fits_a_function(impl):
    # a user-visible property: a few hundred Adam steps fit a smooth 3D function closely
    torch.manual_seed(0)
    grid = HashGrid(n_levels=4, n_features_per_level=2, log2_hashmap_size=12, base_resolution=8, impl=impl)
    head = torch.nn.Linear(8, 1)
    optim = torch.optim.Adam(list(grid.parameters()) + list(head.parameters()), lr=3e-2)
    target = lambda p: torch.sin(6 * p[:, :1]) * torch.cos(4 * p[:, 1:2]) + p[:, 2:]
    for _ in range(300):
        x = torch.rand(2048, 3)
        loss = ((head(grid(x)) - target(x)) ** 2).mean()
        optim.zero_grad()
        loss.backward()
        optim.step()
    x = torch.rand(4096, 3)
    with torch.no_grad():
        assert ((head(grid(x)) - target(x)) ** 2).mean() < 2e-3
