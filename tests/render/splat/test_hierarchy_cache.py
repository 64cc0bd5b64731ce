"""Hierarchies cached on disk (`neuralframe.render.splat.hierarchy_cache`) and the scene's level-of-detail API
(`SplatScene.hierarchy`, `cut`, `render_cut`): a cache that round-trips, is keyed by the scene's content,
rebuilds a damaged file, and a full-quality cut that renders the plain render's picture."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from neuralframe.render import interrupt
from neuralframe.render.scene import open_scene
from neuralframe.render.splat import hierarchy_cache, save
from neuralframe.render.splat.hierarchy_cache import cache_path, default_cache_dir, load_or_build
from neuralframe.render.splat.procedural import bench_camera, surface_scene


@pytest.fixture()
def scene_file(tmp_path):
    path = tmp_path / "thing.ply"
    save(surface_scene(3000, seed=5, sh_degree=1), path)
    return path


@pytest.fixture()
def builds(monkeypatch):
    """Counts the builds `load_or_build` makes."""
    made = []
    real = hierarchy_cache.build

    def counting(g, progress=None):
        made.append(g.n)
        return real(g, progress)

    monkeypatch.setattr(hierarchy_cache, "build", counting)
    return made


def _same(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a.arrays().values(), b.arrays().values()))


def test_the_cache_round_trips(tmp_path, scene_file, builds):
    g = open_scene(scene_file).gaussians
    first = load_or_build(g, scene_file, tmp_path / "cache")
    path = cache_path(g, scene_file, tmp_path / "cache")
    assert path.is_file() and path.name.startswith("thing-") and builds == [3000]
    again = load_or_build(g, scene_file, tmp_path / "cache")
    assert builds == [3000] and _same(first, again)  # loaded, not built
    cam = bench_camera(64, 64)
    a, b = first.cut(cam, 300, 0.0), again.cut(cam, 300, 0.0)
    assert all(torch.equal(x, y) for x, y in zip(a.gaussians.tensors().values(), b.gaussians.tensors().values()))
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind


def test_the_cache_is_keyed_by_the_file_content(tmp_path, scene_file, builds):
    g = open_scene(scene_file).gaussians
    load_or_build(g, scene_file, tmp_path)
    changed = g.clone()
    changed.means[0, 0] += 0.25
    save(changed, scene_file)  # same name, other bytes
    g2 = open_scene(scene_file).gaussians
    tree = load_or_build(g2, scene_file, tmp_path)
    assert builds == [3000, 3000]
    assert cache_path(g2, scene_file, tmp_path) != cache_path(g, None, tmp_path)
    assert len(list(tmp_path.glob("thing-*.npz"))) == 2
    # the new tree is over the new Gaussians: a cut of every leaf is them
    cut = tree.cut(bench_camera(32, 32), None, 0.0, cull=False)
    assert cut.full and torch.equal(cut.gaussians.means, g2.means)
    # a scene with no file is keyed by its arrays
    assert cache_path(g, None, tmp_path) != cache_path(changed, None, tmp_path)
    assert cache_path(g, None, tmp_path).name.startswith("scene-")


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty"])
def test_a_damaged_cache_is_rebuilt(tmp_path, scene_file, builds, damage):
    g = open_scene(scene_file).gaussians
    good = load_or_build(g, scene_file, tmp_path)
    path = cache_path(g, scene_file, tmp_path)
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":  # one byte inside the merged nodes' SH: only the CRC tells
        data[len(data) // 2] ^= 0x55
    elif damage == "garbage":
        data = bytearray(b"not a zip at all" * 100)
    else:
        data = bytearray()
    path.write_bytes(bytes(data))
    said = []
    tree = load_or_build(g, scene_file, tmp_path, say=said.append)
    assert builds == [3000, 3000] and _same(good, tree)
    assert len(said) == 1 and "damaged" in said[0]
    load_or_build(g, scene_file, tmp_path)
    assert builds == [3000, 3000]  # the rebuilt file is good again


def test_a_cache_folder_that_cannot_be_written(tmp_path, scene_file):
    blocked = tmp_path / "file"
    blocked.write_text("a file where the folder would be")
    said = []
    tree = load_or_build(open_scene(scene_file).gaussians, scene_file, blocked / "lod", say=said.append)
    assert tree.n_leaves == 3000 and len(said) == 1 and "cannot be cached" in said[0]


def test_the_default_folder_follows_xdg_cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "neuralframe" / "lod"


def test_a_scene_renders_its_cut(tmp_path, scene_file, monkeypatch, builds):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    scene = open_scene(scene_file)
    assert not scene.has_hierarchy()
    cam = bench_camera(96, 96)
    out, cut = scene.render_cut(cam)  # no budget, the default error: loads or builds first
    assert scene.has_hierarchy() and list((tmp_path / "xdg" / "neuralframe" / "lod").glob("thing-*.npz"))
    plain = scene.render(cam)
    full, exact = scene.render_cut(cam, None, 0.0)
    assert exact.exact and torch.equal(full.rgb, plain.rgb) and torch.equal(full.alpha, plain.alpha)
    small, c = scene.render_cut(cam, 400, 0.0)
    assert c.count <= 400 and c.merged > 0 and small.rgb.shape == plain.rgb.shape
    assert scene.cut(cam, 400, 0.0).count == c.count
    # a second scene object over the same file loads the cache
    assert open_scene(scene_file).hierarchy() is not None and builds == [3000]


def test_hierarchy_is_built_once_for_many_threads_and_again_after_an_interruption(tmp_path, scene_file, builds):
    scene = open_scene(scene_file)
    closed = []  # the window closes once the build has begun
    with interrupt.interruptible(lambda: bool(closed)), pytest.raises(interrupt.RenderInterrupted):
        scene.hierarchy(progress=closed.append, cache_dir=tmp_path)
    assert not scene.has_hierarchy() and builds == [3000] and not list(tmp_path.glob("*.npz"))
    trees = []
    threads = [threading.Thread(target=lambda: trees.append(scene.hierarchy(cache_dir=tmp_path))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert builds == [3000, 3000] and len(trees) == 4 and all(t is trees[0] for t in trees)
