"""The scene interface: opening files, framing, and the capture cameras stored beside a scene."""

import json

import pytest
import torch

from neuralframe.errors import InputError
from neuralframe.render.camera import Camera, intrinsics, look_at
from neuralframe.render.scene import SplatScene, fit_camera, open_scene, robust_bounds


@pytest.fixture()
def ply(tmp_path):
    from neuralframe.render.splat import procedural, save

    path = tmp_path / "thing.ply"
    save(procedural.surface_scene(2000, seed=3, sh_degree=0), path)
    return path


def test_open_scene_errors(tmp_path, ply):
    with pytest.raises(InputError, match="does not exist"):
        open_scene(tmp_path / "none.ply")
    with pytest.raises(InputError, match="unknown format '.obj'"):
        (tmp_path / "mesh.obj").write_text("v 0 0 0")
        open_scene(tmp_path / "mesh.obj")
    scene = open_scene(ply)
    assert isinstance(scene, SplatScene) and scene.cameras == []
    assert scene.describe()["gaussians"] == 2000


def test_framing_camera_sees_the_scene(ply):
    scene = open_scene(ply)
    out = scene.render(scene.initial_camera(160, 120))
    assert out.alpha.mean() > 0.05  # something is in view
    assert out.alpha[0].max() < 0.5 and out.alpha[-1].max() < 0.5  # ... and it fits inside the frame


def test_robust_bounds_ignore_strays():
    pts = torch.randn(10000, 3) * 0.5
    pts[:50] = 1000.0
    b = robust_bounds(pts)
    assert max(abs(c) for c in b.center) < 0.05 and 0.5 < b.radius < 2.0


def test_inria_cameras_json_sets_the_start_view(ply):
    c2w = torch.linalg.inv(look_at((0.3, -0.2, -1.0), (0.0, 0.0, 3.0)))
    (ply.parent / "cameras.json").write_text(json.dumps([{
        "id": 0, "img_name": "00000", "width": 200, "height": 100, "position": c2w[:3, 3].tolist(),
        "rotation": c2w[:3, :3].tolist(), "fx": 150.0, "fy": 150.0}]))
    scene = open_scene(ply)
    assert len(scene.cameras) == 1
    cam = scene.initial_camera(200, 100)
    assert torch.allclose(cam.position, torch.tensor([0.3, -0.2, -1.0], dtype=torch.float64), atol=1e-9)
    wide = scene.initial_camera(400, 100)  # a wider window keeps the vertical field of view
    assert (wide.fy, wide.cx) == (150.0, 200.0)


def test_own_cameras_file_and_broken_one(ply):
    cam = Camera(look_at((0, 0, -2.0), (0, 0, 3.0)), intrinsics(64, 48, 50.0), 64, 48)
    own = ply.with_name("thing.cameras.json")
    own.write_text(json.dumps([{"viewmat": cam.viewmat.tolist(), "K": cam.K.tolist(), "width": 64, "height": 48}]))
    assert torch.equal(open_scene(ply).cameras[0].viewmat, cam.viewmat)
    own.write_text(json.dumps([{"viewmat": [[1, 0], [0, 1]], "K": cam.K.tolist(), "width": 64, "height": 48}]))
    with pytest.raises(InputError, match="thing.cameras.json"):
        open_scene(ply)


def test_fit_camera_keeps_vertical_fov():
    cam = Camera(torch.eye(4), intrinsics(100, 50, 60.0), 100, 50)
    fitted = fit_camera(cam, 300, 100)
    assert fitted.fy == pytest.approx(cam.fy * 2) and fitted.cx == 150.0


def test_nerf_checkpoint_opens_as_a_scene(tmp_path):
    from neuralframe.render.nerf import FieldConfig, NerfField
    from neuralframe.render.nerf.io import save

    torch.manual_seed(0)
    path = tmp_path / "field.safetensors"
    save(path, NerfField(FieldConfig()))
    scene = open_scene(path)
    assert scene.kind == "nerf" and scene.up == (0.0, 0.0, 1.0)
    cam = scene.initial_camera(24, 16)
    center = torch.tensor(scene.bounds().center, dtype=torch.float64)
    assert float(torch.linalg.norm(cam.position - center)) > scene.bounds().radius  # outside the box, looking in
    out = scene.render(cam)
    assert out.rgb.shape == (16, 24, 3) and torch.isfinite(out.rgb).all()
    assert scene.describe()["parameters"] > 0


def test_a_nerf_scene_runs_its_network_on_the_engine_handed_in(tmp_path):
    """`use_engine`: the field's network runs on the engine (here one whose density is zero everywhere, so
    the render is the background); None puts it back on torch."""
    from neuralframe.render.nerf import FieldConfig, NerfField
    from neuralframe.render.nerf.field import grid_for
    from neuralframe.render.nerf.io import save

    class EmptySpace:
        inputs, outputs, calls = (), (), 0

        def __call__(self, x, d):
            self.calls += 1
            return {"sigma": torch.zeros(x.shape[0]), "rgb": torch.zeros(x.shape[0], 3)}

    torch.manual_seed(0)
    field = NerfField(FieldConfig(grid=grid_for(64, n_levels=4, log2_hashmap_size=12), occupancy_resolution=32))
    with torch.no_grad():
        field.encoding.params.uniform_(-1, 1)
        field.density_net[2].weight[0].mul_(4.0)
    field.occupancy.update(field.density, field.step, warmup=True)
    path = tmp_path / "field.safetensors"
    save(path, field)
    scene = open_scene(path)
    cam = scene.initial_camera(24, 16)
    torch_render = scene.render(cam, background=(0.0, 0.0, 1.0))
    engine = EmptySpace()
    scene.use_engine(engine, "onnxruntime")
    assert scene.backend == "onnxruntime"
    out = scene.render(cam, background=(0.0, 0.0, 1.0))
    assert engine.calls > 0 and float(out.alpha.max()) == 0.0
    assert torch.equal(out.rgb, torch.tensor([0.0, 0.0, 1.0]).expand(16, 24, 3))
    scene.use_engine(None)
    assert scene.backend == "torch" and torch.equal(scene.render(cam, background=(0.0, 0.0, 1.0)).rgb, torch_render.rgb)
    assert float(torch_render.alpha.max()) > 0.0


@pytest.mark.parametrize("name", ["scene.ply", "scene.compressed.ply", "scene.splat", "scene.spz", "scene.sog",
                                  "scene.glb", "scene.gltf"])
def test_open_scene_opens_every_format_it_writes(tmp_path, name):
    """What the viewer, `render` and the Ray jobs call: every format opens as a splat scene and renders."""
    from neuralframe.render.splat import procedural, save

    g = procedural.surface_scene(600, seed=3, sh_degree=1)
    save(g, tmp_path / name)
    scene = open_scene(tmp_path / name)
    assert scene.describe()["gaussians"] == 600
    frame = scene.render(scene.initial_camera(48, 32))
    assert frame.rgb.shape == (32, 48, 3) and float(frame.alpha.max()) > 0.5
