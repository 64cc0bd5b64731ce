"""The capture-sized test scene: seeded, the size asked for, a file every reader opens the same, and spread
like a trained capture (sizes over orders of magnitude, flat and needle-like Gaussians, bimodal opacities,
a dense object in a sparse far background, real higher-order SH), with cameras that frame the object."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from neuralframe.render.scene import load_scene_cameras
from neuralframe.render.splat import load
from neuralframe.render.splat.capture import World, capture_scene, part_counts, statistics, write_capture
from neuralframe.render.splat.formats import ply

N = 20_000


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    path = tmp_path_factory.mktemp("capture") / "scene.ply"
    steps = []
    card = write_capture(path, N, sh_degree=3, seed=0, progress=lambda done, total: steps.append((done, total)))
    return path, card, steps


def same(a, b) -> bool:
    return all(torch.equal(a.tensors()[k], b.tensors()[k]) for k in a.tensors())


def test_the_count_degree_and_order_depend_only_on_the_seed():
    a, b = capture_scene(N, sh_degree=3, seed=0), capture_scene(N, sh_degree=3, seed=0)
    assert a.n == N and a.sh_degree == 3 and same(a, b)
    assert not torch.equal(capture_scene(N, sh_degree=3, seed=1).means, a.means)
    for degree in (0, 1, 2):
        g = capture_scene(999, sh_degree=degree, seed=0)
        assert (g.n, g.sh_degree) == (999, degree)
        assert torch.equal(g.means, capture_scene(999, sh_degree=3, seed=0).means)  # SH draws come after


def test_the_file_round_trips_through_every_reader(written):
    path, card, steps = written
    g = capture_scene(N, sh_degree=3, seed=0)
    assert same(load(path), g) and same(ply.read_file(path, str(path)), g)
    assert path.stat().st_size == card["file_bytes"] == len(ply.encode(g, "x"))
    assert steps[-1] == (N, N) and [d for d, _ in steps] == sorted(d for d, _ in steps)
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]  # written, then renamed


def test_the_card_says_how_to_remake_it_and_what_it_holds(written):
    path, card, _ = written
    on_disk = json.loads(path.with_suffix(".json").read_text())
    assert on_disk == card
    assert card["command"].endswith(f"--gaussians {N} --sh-degree 3 --seed 0")
    assert sum(card["parts"].values()) == N == card["statistics"]["gaussians"]


def test_the_spread_is_a_captures():
    g = capture_scene(N, sh_degree=3, seed=0)
    world = World.around(load_motorcycle(), part_counts(N)["object"])
    s = statistics(g, world.center, world.radius)
    sizes = g.scales.exp().max(1).values
    assert s["size_orders"] >= 2.5 and float(sizes.quantile(0.99) / sizes.quantile(0.01)) >= 10 ** 2.5
    assert s["flat_share"] > 0.6 and s["needle_share"] > 0.15
    opacity = torch.sigmoid(g.opacities)
    low, high, middle = (float(m.float().mean()) for m in (opacity < 0.1, opacity > 0.9,
                                                             (opacity > 0.3) & (opacity < 0.7)))
    assert low > 0.2 and high > 0.4 and middle < 0.1  # bimodal: two heaps, a thin middle
    assert s["within_object"] > 0.4 and s["distance_radii"]["p99"] > 30  # dense object, far sparse shell
    rms = s["sh_rms_by_band"]
    assert len(rms) == 3 and rms[0] > rms[1] > rms[2] > 0.02  # every band used, weaker as it rises
    rest = g.sh[:, 1:]
    channels = torch.corrcoef(rest.permute(2, 0, 1).reshape(3, -1))
    assert float(channels[0, 1]) > 0.5  # view-dependent brightness more than hue, as in trained scenes


def test_surface_gaussians_lie_flat_on_their_surface():
    """The ground's Gaussians (those near its height, out from the object) have their thin axis vertical."""
    g = capture_scene(N, sh_degree=0, seed=0)
    world = World.around(load_motorcycle(), part_counts(N)["object"])
    q = torch.nn.functional.normalize(g.quats.double(), dim=1)
    w, x, y, z = q.T
    thin = g.scales.argmin(1)
    axes = torch.stack([torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y + w * z), 2 * (x * z - w * y)], 1),
                        torch.stack([2 * (x * y - w * z), 1 - 2 * (x * x + z * z), 2 * (y * z + w * x)], 1),
                        torch.stack([2 * (x * z + w * y), 2 * (y * z - w * x), 1 - 2 * (x * x + y * y)], 1)], 1)
    normal = axes[torch.arange(g.n), thin]  # [N, 3] the thin axis in world coordinates
    far = (g.means[:, [0, 2]] - torch.tensor(world.center[[0, 2]])).norm(dim=1) > 2 * world.radius
    ground = far & ((g.means[:, 1] - world.ground_y).abs() < 0.1 * world.radius)
    assert int(ground.sum()) > 0.1 * N
    assert float(normal[ground, 1].abs().median()) > 0.95


def test_the_cameras_frame_the_object(written):
    path, _, _ = written
    cameras = load_scene_cameras(path)
    world = World.around(load_motorcycle())
    assert len(cameras) == 8
    for cam in cameras:
        p = cam.viewmat.double() @ torch.tensor([*world.center, 1.0], dtype=torch.float64)
        u, v = (cam.K.double() @ (p[:3] / p[2]))[:2].tolist()
        assert p[2] > world.radius and abs(u - cam.width / 2) < 1 and abs(v - cam.height / 2) < 1
        # the object fills a good part of the view, not a speck
        assert cam.fx * world.radius / float(p[2]) > 0.3 * cam.width


def load_motorcycle():
    from neuralframe.assets import asset

    return load(asset("scenes", "motorcycle.ply"))


def test_the_part_counts_add_up():
    for n in (1, 7, 1000, 2_000_001):
        counts = part_counts(n)
        assert sum(counts.values()) == n and min(counts.values()) >= 0
    assert np.isclose(part_counts(1_000_000)["object"] / 1e6, 0.50)
