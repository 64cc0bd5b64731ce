"""The Numba CPU splat kernel's own parts: its float32 exp, the rows it visits, and agreement with the reference
on scenes that span many work tiles (the shared behaviour is in test_splat_rasterize.py)."""

import math

import numpy as np
import pytest
import torch

pytest.importorskip("numba")

from numba import njit  # noqa: E402

from neuralframe.render.splat import rasterize  # noqa: E402
from neuralframe.render.splat import rasterize_cpu as cpu  # noqa: E402
from neuralframe.render.splat import rasterize_cpu_blend as blend  # noqa: E402
from neuralframe.render.splat.procedural import bench_camera, front_camera, random_scene, surface_scene  # noqa: E402


@njit
def _exp_minus_all(s, out):
    for i in range(s.shape[0]):
        out[i] = blend.exp_minus(s[i])


def test_exp_minus_is_within_an_ulp_of_exp():
    s = np.concatenate([np.random.default_rng(0).uniform(0, 87, 200_000), np.linspace(0, 12, 100_001)])
    s = s.astype(np.float32)
    got = np.empty_like(s)
    _exp_minus_all(s, got)
    exact = np.exp(-s.astype(np.float64))
    ulp = np.abs(got - exact) / np.spacing(exact.astype(np.float32)).astype(np.float64)
    assert ulp.max() <= 1.02
    assert (got == exact.astype(np.float32)).mean() > 0.85  # mostly correctly rounded


@njit
def _missed_pixels(rec, width, height):
    """Pixels where a Gaussian's alpha (computed as the blending does) reaches 1/255 outside the rows
    `_column_rows` gives for their chunk column, with one tile covering the whole image."""
    missed = 0
    for g in range(rec.shape[0]):
        mx, my = np.float64(rec[g, blend.R_MX]), np.float64(rec[g, blend.R_MY])
        hx, hy = np.float64(rec[g, blend.R_HX]), np.float64(rec[g, blend.R_HY])
        r0 = max(0, int(math.ceil(my - hy - 0.5)))
        r1 = min(height - 1, int(math.floor(my + hy - 0.5)))
        c0 = max(0, int(math.ceil(mx - hx - 0.5)))
        c1 = min(width - 1, int(math.floor(mx + hx - 0.5)))
        for row in range(max(0, r0 - 3), min(height, r1 + 4)):
            for col in range(max(0, c0 - 3), min(width, c1 + 4)):
                dx = rec[g, blend.R_MX] - (np.float32(col) + np.float32(0.5))
                dy = rec[g, blend.R_MY] - (np.float32(row) + np.float32(0.5))
                sigma = np.float32(0.5) * (rec[g, blend.R_A] * dx * dx + rec[g, blend.R_C] * dy * dy) \
                    + rec[g, blend.R_B] * dx * dy
                alpha = rec[g, blend.R_O] * blend.exp_minus(sigma)
                if not (sigma >= 0 and alpha >= np.float32(1.0 / 255.0)):
                    continue
                inside = r0 <= row <= r1 and c0 <= col <= c1
                if inside:
                    c = col // blend.LANES
                    q0, q1 = blend._column_rows(rec, g, np.float32(c * blend.LANES - mx), np.float32(hx),
                                                np.float32(hy), np.float32(my), r0, r1)
                    inside = q0 <= row <= q1
                missed += not inside
    return missed


@pytest.mark.parametrize("seed, log_scale, antialiased", [(0, -3.0, False), (1, -2.0, False), (2, -1.5, True)])
def test_visited_rows_hold_every_pixel_a_gaussian_reaches(seed, log_scale, antialiased):
    # Anisotropic Gaussians at every angle, faint to opaque, small to larger than a tile.
    g = random_scene(4000, seed=seed, log_scale_mean=log_scale, log_scale_std=0.8)
    cam = front_camera(300, 200, near=0.05)
    s = cpu.prepare(g, cam, 0, antialiased)
    rec = np.ascontiguousarray(s["rec"][: len(s["order"])])
    assert len(rec) > 1000
    assert _missed_pixels(rec, cam.width, cam.height) == 0


def _errors(want, got):
    for name in ("rgb", "alpha", "depth"):
        a, b = getattr(want, name), getattr(got, name)
        if name == "depth":
            a, b = a / 6.0, b / 6.0
        err = (a - b).abs().reshape(a.shape[0], a.shape[1], -1)
        yield name, err.mean((0, 1)).max().item(), err.amax((0, 1)).max().item()


@pytest.mark.parametrize("n, size, degree, antialiased", [(20_000, (150, 110), 3, False), (8_000, (97, 161), 1, True)])
def test_matches_reference_across_many_work_tiles(n, size, degree, antialiased):
    # A capture-like scene over 5 x 4 work tiles, partial ones at the right and bottom edges, with a background.
    g = surface_scene(n, seed=5, sh_degree=degree)
    cam = bench_camera(*size)
    bg = torch.tensor([0.3, 0.1, 0.2])
    want = rasterize(g, cam, impl="reference", antialiased=antialiased, background=bg)
    got = rasterize(g, cam, impl="cpu", antialiased=antialiased, background=bg)
    assert want.alpha.mean() > 0.3
    for name, mean, largest in _errors(want, got):
        assert mean <= 1e-5 and largest <= 1e-3, name


def test_stats_count_the_work():
    g = surface_scene(5000, seed=2)
    _, stats = cpu.rasterize_with_stats(g, bench_camera(128, 96))
    assert 0 < stats["visible"] <= 5000
    assert stats["pairs"] >= stats["visible"]
    assert stats["evaluations"] % blend.LANES == 0 and stats["evaluations"] > 128 * 96


def test_parallel_packing_gives_the_same_image(monkeypatch):
    # Large scenes gather their records in parallel (rasterize_cpu_sort.PARALLEL_PACK); the image is the same.
    from neuralframe.render.splat import rasterize_cpu_sort

    g = surface_scene(6000, seed=3)
    cam = bench_camera(100, 70)
    serial = cpu.rasterize(g, cam)
    monkeypatch.setattr(rasterize_cpu_sort, "PARALLEL_PACK", 0)
    parallel = cpu.rasterize(g, cam)
    for name in ("rgb", "alpha", "depth"):
        assert torch.equal(getattr(serial, name), getattr(parallel, name)), name
