"""`neuralframe render --lod`: each frame drawn from the scene's level-of-detail tree under a splat budget,
the tree cached on the first run and loaded on the next, the same frames as a plain render when nothing
limits the cut, and its options' ranges checked before any work."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from cli_helpers import nf, one_clear_line


@pytest.fixture(scope="module")
def ply(tmp_path_factory):
    from neuralframe.render.splat import procedural, save

    path = tmp_path_factory.mktemp("scene") / "scene.ply"
    save(procedural.surface_scene(3000, seed=2, sh_degree=1), path)
    return path


def _frames(folder) -> list[np.ndarray]:
    return [np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))]


def test_lod_renders_under_a_budget_and_caches_the_tree(ply, tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    common = ["render", str(ply), "--frames", "3", "--size", "64x48"]
    plain = nf(*common, "-o", str(tmp_path / "plain"), env=env)
    assert plain.returncode == 0, plain.stderr
    same = nf(*common, "-o", str(tmp_path / "same"), "--lod", "--splat-budget", "5000", "--lod-error", "0", env=env)
    assert same.returncode == 0, same.stderr
    assert "level-of-detail tree of scene.ply" in same.stdout + same.stderr
    cached = list((tmp_path / "xdg" / "neuralframe" / "lod").glob("scene-*.npz"))
    assert len(cached) == 1
    # nothing limits the cut: every Gaussian in view, the same frames
    assert all(np.array_equal(a, b) for a, b in zip(_frames(tmp_path / "plain"), _frames(tmp_path / "same")))
    stamp = cached[0].stat().st_mtime_ns
    small = nf(*common, "-o", str(tmp_path / "small"), "--lod", "--splat-budget", "300", "--json", env=env)
    assert small.returncode == 0, small.stderr
    assert cached[0].stat().st_mtime_ns == stamp  # loaded, not built again
    frames, full = _frames(tmp_path / "small"), _frames(tmp_path / "plain")
    assert len(frames) == 3 and frames[0].mean() > 3
    assert not np.array_equal(frames[0], full[0])  # 300 of 3000 Gaussians: a coarser picture of the same scene
    assert np.abs(frames[0].astype(float) - full[0]).mean() < 20


@pytest.mark.parametrize("args, fragment", [
    (["--lod", "--splat-budget", "0"], "--splat-budget must be from 1 to 1,000,000,000"),
    (["--lod", "--lod-error", "-1"], "--lod-error must be from 0 to 1,000 pixels"),
    (["--lod", "--lod-error", "nan"], "--lod-error must be from 0 to 1,000 pixels"),
])
def test_lod_options_out_of_range(ply, tmp_path, args, fragment):
    one_clear_line(nf("render", str(ply), "-o", str(tmp_path / "o.mp4"), *args), fragment)
    assert not (tmp_path / "o.mp4").exists()


def test_lod_is_not_for_ray(ply, tmp_path):
    one_clear_line(nf("render", str(ply), "-o", str(tmp_path / "o.mp4"), "--lod", "--ray"), "--lod renders on this machine")


def test_lod_is_for_splat_scenes():
    from neuralframe.apps.render import prepare_lod
    from neuralframe.errors import InputError

    class Field:  # a scene with no level-of-detail tree, as a NeRF is
        name, kind = "lego.safetensors", "nerf"

    with pytest.raises(InputError, match="--lod applies to splat scenes; lego.safetensors is a nerf scene"):
        prepare_lod(Field())
