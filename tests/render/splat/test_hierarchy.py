"""The level-of-detail hierarchy (`neuralframe.render.splat.hierarchy`): merged nodes that summarise their
leaves, cuts that are the whole scene when nothing limits them, budgets kept, the view frustum culled, and
pictures that get closer to the full render as the budget grows."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from neuralframe.render import interrupt
from neuralframe.render.camera import Camera, intrinsics
from neuralframe.render.splat import Gaussians, rasterize
from neuralframe.render.splat.hierarchy import build
from neuralframe.render.splat.hierarchy_build import CULL_SIGMAS, FILLED_INK, MAX_OPACITY
from neuralframe.render.splat.lod import _rotation
from neuralframe.render.splat.procedural import bench_camera, front_camera, random_scene, surface_scene


def _covariances(means_quats_scales) -> torch.Tensor:
    quats, scales = means_quats_scales
    R = _rotation(torch.as_tensor(quats).double())
    return R @ torch.diag_embed(torch.exp(2 * torch.as_tensor(scales).double())) @ R.transpose(1, 2)


def _weights(g: Gaussians) -> torch.Tensor:
    """opacity x the product of the two largest standard deviations (the merge's weights)."""
    s = torch.exp(g.scales.double()).sort(1, descending=True).values
    return torch.sigmoid(g.opacities.double()) * s[:, 0] * s[:, 1]


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / ((a - b) ** 2).mean()))


@pytest.fixture(scope="module")
def surface():
    g = surface_scene(20000, seed=1, sh_degree=3)
    return g, build(g)


def test_two_gaussians_merge_into_their_moments():
    """The root of two Gaussians: the weighted mean and covariance (their covariances plus the spread of the
    centres), computed here directly; opacity = weight / sigma_1 sigma_2 of the merged covariance; SH the
    weighted mean."""
    means = torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.2, -0.1]])
    quats = torch.tensor([[0.9, 0.1, -0.3, 0.2], [0.3, -0.5, 0.4, 0.7]])
    scales = torch.log(torch.tensor([[0.05, 0.02, 0.01], [0.08, 0.03, 0.02]]))
    g = Gaussians(means, quats, scales, torch.logit(torch.tensor([0.3, 0.6])), torch.randn(2, 16, 3))
    tree = build(g)
    assert tree.n_merged == 1 and len(tree.nodes) == 3 and tree.nodes[0]["count"] == 2
    w = _weights(g)
    t = w / w.sum()
    mean = (t[:, None] * means.double()).sum(0)
    d = means.double() - mean
    cov = (t[:, None, None] * (_covariances((quats, scales)) + d[:, :, None] * d[:, None, :])).sum(0)
    assert float(tree.mass[0]) == pytest.approx(float(w.sum()), rel=1e-6)
    assert np.allclose(tree.means[0], mean.numpy(), atol=1e-6)
    got = _covariances((tree.quats, tree.scales))[0]
    assert torch.allclose(got, cov, rtol=1e-4, atol=1e-9)
    values = torch.linalg.eigvalsh(cov)
    expected = float(w.sum() / torch.sqrt(values[2] * values[1]))
    assert expected < MAX_OPACITY  # small and apart: no growth
    assert float(torch.sigmoid(torch.tensor(tree.opacities[0]))) == pytest.approx(expected, rel=1e-4)
    assert np.allclose(tree.sh[0], (t[:, None, None] * g.sh.double()).sum(0).numpy(), atol=1e-5)
    # the bounding sphere holds both culling spheres; the size is the largest standard deviation below
    center = torch.tensor([tree.nodes[0][a] for a in ("cx", "cy", "cz")], dtype=torch.float64)
    reach = (means.double() - center).norm(dim=1) + CULL_SIGMAS * torch.exp(scales.double()).max(1).values
    assert float(tree.nodes[0]["radius"]) >= float(reach.max()) * (1 - 1e-6)
    assert float(tree.nodes[0]["size"]) == pytest.approx(float(torch.sqrt(values[2])), rel=1e-5)


def test_an_opaque_patch_grows_to_keep_its_coverage():
    """Overlapping opaque Gaussians hold more coverage than 0.99 opacity draws: the merged node's two large
    axes grow by sqrt(q / 0.99), q = weight / sigma_1 sigma_2 capped at FILLED_INK; the thin axis keeps its size."""
    means = torch.tensor([[0.0, 0.0, 0.0], [0.02, 0.0, 0.0]])
    g = Gaussians.from_colors(means, torch.rand(2, 3), torch.tensor([[0.05, 0.05, 0.001]] * 2))
    tree = build(g)
    w = _weights(g)
    var = torch.tensor([0.05 ** 2 + 0.01 ** 2, 0.05 ** 2, 0.001 ** 2], dtype=torch.float64)
    q = min(float(w.sum() / torch.sqrt(var[0] * var[1])), FILLED_INK)
    assert q > MAX_OPACITY
    got = np.sort(np.exp(tree.scales[0].astype(np.float64)))[::-1]
    want = np.sqrt(var.numpy() * np.array([q / MAX_OPACITY, q / MAX_OPACITY, 1.0]))
    assert np.allclose(got, want, rtol=1e-4)
    assert float(torch.sigmoid(torch.tensor(tree.opacities[0]))) == pytest.approx(MAX_OPACITY, rel=1e-5)


def test_the_root_summarises_the_scene(surface):
    g, tree = surface
    root = int(tree.nodes[0]["index"])
    w = _weights(g)
    assert float(tree.mass[root]) == pytest.approx(float(w.sum()), rel=1e-5)
    weighted_mean = (w[:, None] * g.means.double()).sum(0) / w.sum()
    assert np.allclose(tree.means[root], weighted_mean.numpy(), atol=1e-4)
    assert np.allclose(tree.means[root], g.means.double().mean(0).numpy(), atol=0.25)  # near the plain mean
    # every leaf once, every merged node bigger than its children and holding their spheres
    nodes = tree.nodes
    leaves = nodes["count"] == 0
    assert sorted(nodes["index"][leaves]) == list(range(g.n))
    inner = np.flatnonzero(~leaves)
    assert set(nodes["count"][inner]) <= set(range(2, 9))
    for p in inner[:: max(len(inner) // 300, 1)]:
        kids = np.arange(nodes["first"][p], nodes["first"][p] + nodes["count"][p])
        assert (nodes["size"][kids] <= nodes["size"][p]).all()
        c = np.array([nodes[a][p] for a in ("cx", "cy", "cz")], np.float64)
        kc = np.stack([nodes[a][kids] for a in ("cx", "cy", "cz")], 1).astype(np.float64)
        assert (np.linalg.norm(kc - c, axis=1) + nodes["radius"][kids] <= nodes["radius"][p] * (1 + 1e-5)).all()


def test_an_unlimited_cut_is_every_leaf_and_the_same_picture():
    """random_scene puts Gaussians behind the camera, across the near plane and outside the view: culling them
    must not change a pixel."""
    g = random_scene(3000, seed=4, sh_degree=2)
    tree = build(g)
    cam = front_camera(96, 72)
    plain = rasterize(g, cam)
    everything = tree.cut(cam, None, 0.0, cull=False)
    assert everything.full and everything.exact and everything.count == g.n and everything.error == 0.0
    assert all(torch.equal(a, b) for a, b in zip(everything.gaussians.tensors().values(), g.tensors().values()))
    assert torch.equal(rasterize(everything.gaussians, cam).rgb, plain.rgb)
    culled = tree.cut(cam, None, 0.0)
    assert culled.exact and not culled.full and culled.count < g.n and culled.merged == 0
    out = rasterize(culled.gaussians, cam)
    assert torch.equal(out.rgb, plain.rgb) and torch.equal(out.alpha, plain.alpha)


def test_a_threshold_cut_matches_a_plain_traversal(surface):
    """With no budget, the cut is every node whose parent projects larger than `error` and which does not
    itself (or is a leaf): the same set a plain recursive walk over the table finds."""
    g, tree = surface
    cam = bench_camera(160, 160)
    nodes = tree.nodes
    centre = np.stack([nodes[a] for a in ("cx", "cy", "cz")], 1).astype(np.float64)
    V = cam.viewmat.numpy()
    p = centre @ V[:3, :3].T + V[:3, 3]
    dist = np.maximum(np.linalg.norm(p, axis=1) - nodes["radius"], cam.near)
    size = np.where(nodes["count"] > 0, nodes["size"] * max(cam.fx, cam.fy) / dist, 0.0)
    for error in (2.0, 8.0):
        want, stack = [], [0]
        while stack:  # every node here is in view (cull=False); expand while larger than `error`
            t = stack.pop()
            if size[t] > error:
                stack += list(range(nodes["first"][t], nodes["first"][t] + nodes["count"][t]))
            else:
                want.append(t)
        c = tree.cut(cam, None, error, cull=False)
        assert c.count == len(want)
        merged = [t for t in want if nodes["count"][t] > 0]
        assert c.merged == len(merged)
        assert c.error == pytest.approx(max(size[merged]), rel=1e-6)
        expect = torch.cat([torch.from_numpy(tree.means[nodes["index"][merged]]),
                            g.means[nodes["index"][[t for t in want if nodes["count"][t] == 0]]]])
        assert torch.equal(c.gaussians.means.sort(0).values, expect.sort(0).values)


def test_the_budget_is_kept_and_the_error_falls_as_it_grows(surface):
    g, tree = surface
    cam = bench_camera(160, 160)
    errors = []
    for budget in (1, 8, 100, 1000, 5000):
        c = tree.cut(cam, budget, 0.0)
        assert c.count == c.gaussians.n <= budget
        assert c.count > budget - 8  # a band stops within one node's children of the budget
        assert all(t.is_contiguous() for t in c.gaussians.tensors().values())
        errors.append(c.error)
    assert errors == sorted(errors, reverse=True) and errors[-1] < errors[0]
    assert tree.cut(cam, 0, 0.0).count == 0


def test_culling_drops_what_is_behind_the_camera():
    gen = torch.Generator().manual_seed(0)
    front = torch.rand(500, 3, generator=gen) * torch.tensor([1.0, 1.0, 1.0]) + torch.tensor([-0.5, -0.5, 3.0])
    behind = front * torch.tensor([1.0, 1.0, -1.0])
    g = Gaussians.from_colors(torch.cat([front, behind]), torch.rand(1000, 3, generator=gen), torch.full((1000,), 0.01))
    tree = build(g)
    cam = front_camera(64, 64)
    c = tree.cut(cam, None, 0.0)
    assert c.exact and c.count == 500 and bool((c.gaussians.means[:, 2] > 0).all())
    coarse = tree.cut(cam, 10, 0.0)  # merged nodes too: none of them behind
    assert coarse.merged > 0 and bool((coarse.gaussians.means[:, 2] > 0).all())
    assert tree.cut(cam, None, 0.0, cull=False).count == 1000


def test_a_budget_cut_approaches_the_full_picture(surface):
    """PSNR against the full render rises with the budget; at a tenth of the Gaussians the picture is blurred
    but whole (about 26 dB), at a third close (about 31 dB)."""
    g, tree = surface
    cam = bench_camera(192, 192)
    full = rasterize(g, cam).rgb
    scores = [_psnr(rasterize(tree.cut(cam, b, 0.0).gaussians, cam).rgb, full) for b in (200, 600, 2000, 6000)]
    assert scores == sorted(scores) and scores[0] + 5 < scores[-1]
    assert scores[2] > 24.0 and scores[3] > 29.0
    # a small allowed error costs almost nothing
    near = tree.cut(cam, None, 0.5)
    assert near.count < g.n and _psnr(rasterize(near.gaussians, cam).rgb, full) > 40.0


def test_a_lower_sh_degree_cut():
    g = random_scene(500, seed=2, sh_degree=3)
    tree = build(g)
    cam = front_camera(48, 48)
    c = tree.cut(cam, 50, 0.0, sh_degree=1)
    assert c.gaussians.sh.shape == (c.count, 4, 3) and c.gaussians.sh.is_contiguous()
    full = tree.cut(cam, None, 0.0, cull=False, sh_degree=0)
    assert full.full and torch.equal(full.gaussians.sh, g.sh[:, :1])


def test_tiny_scenes_and_bad_arguments():
    one = random_scene(1, seed=0)
    tree = build(one)
    assert tree.n_merged == 0 and len(tree.nodes) == 1
    assert tree.cut(front_camera(), None, 0.0, cull=False).full
    empty = build(random_scene(0))
    c = empty.cut(front_camera(), 10)
    assert c.count == 0 and c.gaussians.n == 0
    with pytest.raises(Exception, match="budget"):
        tree.cut(front_camera(), -1)
    with pytest.raises(Exception, match="error"):
        tree.cut(front_camera(), 10, math.nan)


def test_a_build_stops_when_interrupted():
    g = random_scene(2000, seed=1)
    with interrupt.interruptible(lambda: True), pytest.raises(interrupt.RenderInterrupted):
        build(g)
    seen = []
    build(g, progress=seen.append)
    assert seen[-1] == 1.0 and seen == sorted(seen)


def test_a_camera_inside_the_scene():
    """Nodes around the camera project huge (their distance is clamped at `near`): they open first."""
    g = surface_scene(5000, seed=2, sh_degree=0)
    tree = build(g)
    cam = Camera.look_at((0.0, 0.5, -1.2), (0.0, 0.5, 3.0), intrinsics(64, 64, 90.0), 64, 64)
    c = tree.cut(cam, 500, 0.0)
    assert 492 < c.count <= 500 and math.isfinite(c.error)


@pytest.mark.parametrize("hint", ["previous view", 1e6, 1e-6])
def test_a_hinted_cut_is_the_cut_by_buckets(surface, hint):
    """From the last cut's error the tree is explored depth first (faster); the cut is the one the buckets give,
    but for the order in which the last bucket fills: the same size within a node's children, the same error
    within a bucket. A hint far off (too high, too low) costs time, not the cut."""
    from neuralframe.render.splat.hierarchy_cut import BUCKETS, cut_refs, traverse, view_tuple

    g, tree = surface
    cam = bench_camera(160, 160)
    moved = Camera.look_at((0.1, -0.8, -3.3), (0.0, 0.1, 0.5), cam.K, 160, 160)
    budget = 3000
    before = tree.cut(cam, budget, 0.0)
    view = view_tuple(moved.viewmat.numpy(), moved.K.numpy(), 160, 160, moved.near, moved.far)
    by_buckets = np.empty(budget + 8, np.int64)
    n1, e1, m1, _ = traverse(tree.nodes, view, 0.0, budget, True, by_buckets, np.zeros(BUCKETS, np.int64))
    hinted = np.empty(budget + 8, np.int64)
    n2, e2, m2 = cut_refs(tree.nodes, view, 0.0, budget, True, hinted, before.error if hint == "previous view" else hint)
    assert budget - 8 < n1 <= budget and budget - 8 < n2 <= budget
    assert e2 == pytest.approx(e1, rel=0.1) and abs(m1 - m2) < 0.1 * m1
    common = np.intersect1d(by_buckets[:n1], hinted[:n2])
    assert len(common) > 0.9 * n1
