"""Training: a short run learns the scene, writes a checkpoint that loads and renders, and resumes."""

import json

import pytest
import torch
from safetensors import safe_open

from neuralframe.errors import InputError
from neuralframe.render.nerf import io as nerf_io
from neuralframe.render.nerf import render
from neuralframe.render.nerf.data import load_dataset, make_synthetic
from neuralframe.render.nerf.field import FieldConfig, grid_for
from neuralframe.render.nerf.train import TrainConfig, train

SMALL = TrainConfig(field=FieldConfig(grid=grid_for(128, n_levels=8, log2_hashmap_size=14), occupancy_resolution=32),
                    target_samples=1 << 13, warmup_steps=32, validate_every=1e9, checkpoint_every=1e9)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    data = make_synthetic(root / "data", size=32, n_train=12, n_val=2, n_test=1)
    seen = []
    metrics = train(data, root / "scene.safetensors", steps=150, progress=seen.append, config=SMALL)
    return root, data, metrics, seen


def test_short_training_learns(trained):
    root, data, metrics, seen = trained
    assert metrics["steps"] == 150 and len(seen) == 150
    assert seen[-1]["loss"] < seen[0]["loss"] / 3
    assert metrics["val_psnr"] > 14.0  # 32x32 views, 6 seconds: the object's shape and colours are there
    assert 0.0 < metrics["occupied"] < 0.5  # the occupancy grid has carved out empty space


def test_checkpoint_round_trip(trained):
    root, data, metrics, _ = trained
    path = root / "scene.safetensors"
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    assert meta["format"] == "neuralframe.nerf"
    assert json.loads(meta["config"])["grid"]["log2_hashmap_size"] == 14
    assert json.loads(meta["train"])["step"] == 150
    field = nerf_io.load_field(path)
    val = load_dataset(data, "val")
    a = render(field, val.camera(0), background=(1.0, 1.0, 1.0))
    copy = root / "copy.safetensors"
    nerf_io.save(copy, field)
    b = render(nerf_io.load_field(copy), val.camera(0), background=(1.0, 1.0, 1.0))
    assert torch.equal(a.rgb, b.rgb) and float(a.alpha.max()) > 0.9
    (root / "junk.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="junk.safetensors"):
        nerf_io.load_field(root / "junk.safetensors")


def test_resume_continues(trained, tmp_path):
    root, data, _, _ = trained
    path = tmp_path / "scene.safetensors"
    path.write_bytes((root / "scene.safetensors").read_bytes())
    seen = []
    metrics = train(data, path, steps=160, resume=True, progress=seen.append, config=SMALL)
    assert metrics["steps"] == 160 and [p["step"] for p in seen] == list(range(151, 161))
    _, optim, state = nerf_io.load(path)
    assert state["step"] == 160 and "encoding.params.exp_avg" in optim


def test_render_on_the_exported_field(trained, tmp_path, monkeypatch):
    """The NeRF scene on its ONNX export in onnxruntime renders what torch renders; `render --backend`
    exports once and caches; a splat scene says the option is for NeRF scenes."""
    from cli_helpers import nf, one_clear_line

    from neuralframe.apps.render import use_backend
    from neuralframe.render.scene import open_scene

    root, data, _, _ = trained
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    camera = load_dataset(data, "val").camera(0)
    scene = open_scene(root / "scene.safetensors")
    a = scene.render(camera, background=(1.0, 1.0, 1.0))
    use_backend(scene, "onnxruntime")
    b = scene.render(camera, background=(1.0, 1.0, 1.0))
    assert float(a.alpha.max()) > 0.9
    mse = float((a.rgb - b.rgb).square().mean())
    assert -10 * torch.log10(torch.tensor(max(mse, 1e-12))) > 45  # PSNR between the two renders, dB
    assert len(list((tmp_path / "cache" / "neuralframe" / "onnx").iterdir())) == 1
    out = tmp_path / "orbit"
    result = nf("render", str(root / "scene.safetensors"), "-o", str(out), "--frames", "2", "--size", "32x24",
                "--backend", "onnxruntime", "--json")
    assert result.returncode == 0, result.stderr
    assert len(list(out.glob("*.png"))) == 2
    from neuralframe.render.scene import default_scene_path

    one_clear_line(nf("render", str(default_scene_path()), "-o", str(tmp_path / "m"), "--backend", "onnxruntime"),
                   "applies to NeRF scenes")
