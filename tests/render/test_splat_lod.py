"""Levels of detail of a splat scene (`neuralframe.render.splat.lod`): moment-matched pairs, and pictures
close to the full scene's at the resolutions the viewer renders them at while the camera moves."""

import numpy as np
import torch

from neuralframe.render.scene import SplatScene, default_scene_path, open_scene
from neuralframe.render.splat import Gaussians, rasterize
from neuralframe.render.splat.lod import _rotation, coarser, detail_levels, level_for


def _covariances(g: Gaussians) -> torch.Tensor:
    R = _rotation(g.quats.double())
    return R @ torch.diag_embed(torch.exp(2 * g.scales.double())) @ R.transpose(1, 2)


def test_a_pair_merges_into_its_mean_covariance_opacity_and_colour():
    means = torch.tensor([[0.0, 0.0, 0.0], [0.4, 0.0, 0.0]])
    g = Gaussians.from_colors(means, torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]), torch.full((2,), 0.1),
                              opacities=torch.tensor([0.5, 0.5]))
    m = coarser(g)
    assert m.n == 1
    assert torch.allclose(m.means[0], torch.tensor([0.2, 0.0, 0.0]), atol=1e-6)
    # the pair's covariance: each one's (0.01 I) plus the spread of the centres (0.04 along x)
    assert torch.allclose(_covariances(m)[0], torch.diag(torch.tensor([0.05, 0.01, 0.01], dtype=torch.float64)),
                          atol=1e-6)
    # opacity keeps the opacity-weighted cross-section: 2 * 0.5 * 0.01 / (0.05 * 0.01 * 0.01)^(1/3)
    expected = 2 * 0.5 * 0.01 / (0.05 * 1e-4) ** (1 / 3)
    assert abs(float(torch.sigmoid(m.opacities[0])) - expected) < 1e-5
    assert torch.allclose(m.sh[0, 0], 0.5 * (g.sh[0, 0] + g.sh[1, 0]), atol=1e-6)  # red and blue: purple


def test_each_level_halves_the_count_and_keeps_the_odd_one():
    torch.manual_seed(0)
    n = 101
    # a cloud of Gaussians that overlap their neighbours (every pair is near enough to merge)
    g = Gaussians(0.01 * torch.randn(n, 3), torch.randn(n, 4), 0.3 * torch.randn(n, 3) - 3, torch.randn(n),
                  torch.randn(n, 4, 3))
    levels = detail_levels(g, 3)
    assert [lv.n for lv in levels] == [101, 51, 26]
    for lv in levels[1:]:
        assert all(torch.isfinite(t).all() for t in lv.tensors().values())
        assert float(torch.sigmoid(lv.opacities).max()) <= 0.99 + 1e-6
    scene = SplatScene(g, "random")
    assert scene.detail(2).n == 26 and scene.has_detail(2) and not scene.has_detail(3)
    assert scene.detail(0) is g


def test_specks_far_apart_stay_as_they_are():
    g = Gaussians.from_colors(torch.tensor([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0]]), torch.rand(2, 3),
                              torch.full((2,), 0.1))
    far = coarser(g)
    assert far.n == 2 and torch.equal(far.means.sort(0).values, g.means.sort(0).values)  # no needle between them


def test_level_for_budgets():
    assert level_for(92_500, 50_000) == 1
    assert level_for(92_500, 0) == 0 and level_for(40_000, 50_000) == 0
    assert level_for(1_000_000, 50_000) == 5  # 1,000,000 / 2^5 = 31,250


def test_the_merged_motorcycle_looks_like_the_motorcycle_at_a_moving_resolution():
    scene = open_scene(default_scene_path())
    camera = scene.initial_camera(1280, 720).scaled(0.25)  # 320 x 180, what the viewer renders while moving
    full = scene.render(camera, impl="cpu").rgb.clamp(0, 1).numpy()
    half = scene.render(camera, impl="cpu", level=1).rgb.clamp(0, 1).numpy()
    psnr = 10 * np.log10(1.0 / np.mean((full - half) ** 2))
    assert psnr >= 25.0  # measured 27.0 dB; level 2 (a third of the Gaussians) measures ~23 dB
    assert scene.detail(1).n < 0.6 * scene.gaussians.n  # 50,725 of 92,500 (specks far apart stay)
    # the same picture from the reference renderer (the level is Gaussians like any other)
    ref = rasterize(scene.detail(1), camera.scaled(0.25), impl="reference").rgb
    cpu = rasterize(scene.detail(1), camera.scaled(0.25), impl="cpu").rgb
    assert float((ref - cpu).abs().max()) < 1e-3
