"""`neuralframe render`: a camera path into a video, headless."""

import json
import subprocess
import sys

import pytest


@pytest.fixture(scope="module")
def ply(tmp_path_factory):
    from neuralframe.render.splat import procedural, save

    path = tmp_path_factory.mktemp("scene") / "scene.ply"
    save(procedural.surface_scene(3000, seed=2, sh_degree=0), path)
    return path


def test_render_orbit_writes_the_video(ply, tmp_path):
    out = tmp_path / "orbit.mp4"
    result = subprocess.run([sys.executable, "-m", "neuralframe.cli", "render", str(ply), "-o", str(out), "--frames",
                             "12", "--size", "160x120", "--json"], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["frames_out"] == 12
    from neuralframe.streaming.sources import VideoFileSource

    src = VideoFileSource(out)
    info = src.open()
    frames = []
    while (f := src.read()) is not None:
        frames.append(f.image.float())
    src.close()
    assert (info.width, info.height, len(frames)) == (160, 120, 12)
    assert frames[0].mean() > 3 and (frames[0] - frames[6]).abs().mean() > 1  # a visible scene that turns


def test_render_json_path(ply, tmp_path):
    from neuralframe.render.scene import open_scene

    scene = open_scene(ply)
    a = scene.initial_camera(96, 64)
    from neuralframe.render.orbit import orbit

    cams = orbit(scene.bounds().center, 3.0, 3, a.K, 96, 64)
    (tmp_path / "path.json").write_text(json.dumps([c.to_dict() for c in cams]))
    out = tmp_path / "frames"
    result = subprocess.run([sys.executable, "-m", "neuralframe.cli", "render", str(ply), "-o", str(out), "--path",
                             str(tmp_path / "path.json"), "--frames", "5"], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert len(list(out.glob("*.png"))) == 5


def test_render_bad_camera_file(ply, tmp_path):
    bad = tmp_path / "cams.json"
    bad.write_text(json.dumps([{"viewmat": [[1, 0], [0, 1]], "K": [[1, 0, 0], [0, 1, 0], [0, 0, 1]], "width": 4,
                                "height": 4}]))
    result = subprocess.run([sys.executable, "-m", "neuralframe.cli", "render", str(ply), "-o",
                             str(tmp_path / "x.mp4"), "--path", str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "viewmat must have shape [4, 4]" in result.stderr
    assert not (tmp_path / "x.mp4").exists()


def test_backend_is_for_nerf_scenes(ply):
    """`--backend`: torch leaves a scene as it is; a splat scene asked for another says it is for NeRF scenes
    (its renderer is picked with --impl), and an unknown backend names the choices."""
    from neuralframe.apps.render import use_backend
    from neuralframe.errors import InputError
    from neuralframe.render.scene import open_scene

    scene = open_scene(ply)
    use_backend(scene, "torch")
    with pytest.raises(InputError, match=r"--backend onnxruntime applies to NeRF scenes \(.safetensors\)"):
        use_backend(scene, "onnx")
    with pytest.raises(InputError, match="unknown backend 'vulkan': use one of torch, onnxruntime, tensorrt"):
        use_backend(scene, "vulkan")
