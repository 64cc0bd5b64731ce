"""Datasets: the synthetic generator writes a standard dataset; bad datasets fail naming the frame."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from neuralframe.errors import InputError
from neuralframe.render.nerf.data import load_dataset, make_synthetic


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_synthetic(tmp_path_factory.mktemp("syn") / "data", size=32, n_train=6, n_val=2, n_test=1)


def test_synthetic_dataset_is_standard(tiny):
    for split, n in (("train", 6), ("val", 2), ("test", 1)):
        meta = json.loads((tiny / f"transforms_{split}.json").read_text())
        assert len(meta["frames"]) == n and "camera_angle_x" in meta
        assert (tiny / split / "r_0.png").is_file()
    data = load_dataset(tiny, "train")
    assert data.images.shape == (6, 32, 32, 4) and data.c2w.shape == (6, 4, 4)
    alpha = data.images[..., 3]
    assert 0.1 < float(alpha.mean()) < 0.7  # an object in the middle, background around it
    assert float(alpha[:, 0, 0].max()) == 0.0 and float(alpha[:, 16, 16].min()) == 1.0
    # cameras 4 units from the origin, looking at it (OpenGL: -z forward)
    positions = data.c2w[:, :3, 3]
    torch.testing.assert_close(positions.norm(dim=-1), torch.full((6,), 4.0))
    forward = -data.c2w[:, :3, 2]
    torch.testing.assert_close((forward * -positions / 4.0).sum(-1), torch.ones(6), atol=1e-5, rtol=0)
    assert data.K[0, 0] == pytest.approx(16 / np.tan(0.6911112070083618 / 2), rel=1e-5)


def test_view_dependent_colour(tiny):
    # the Blinn-Phong highlight: the same object looks different across views, beyond the geometry
    data = load_dataset(tiny, "train")
    rgb = data.images[..., :3]
    assert float(rgb.max()) > 0.9 and float(rgb[data.images[..., 3] > 0].std()) > 0.1


def _copy(tiny, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(tiny, dst)
    return dst


def test_errors_name_the_frame(tiny, tmp_path):
    bad = _copy(tiny, tmp_path)
    (bad / "train" / "r_3.png").unlink()
    with pytest.raises(InputError, match=r"frame 3 \('./train/r_3'\): image not found"):
        load_dataset(bad, "train")

    bad = _copy(tiny, tmp_path / "b")
    Image.new("RGBA", (20, 32)).save(bad / "train" / "r_2.png")
    with pytest.raises(InputError, match=r"frame 2 .*20x32, but the dataset is 32x32"):
        load_dataset(bad, "train")

    bad = _copy(tiny, tmp_path / "c")
    meta = json.loads((bad / "transforms_train.json").read_text())
    meta["frames"][4]["transform_matrix"][0][:3] = [0.0, 0.0, 0.0]
    (bad / "transforms_train.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match=r"frame 4 .*singular"):
        load_dataset(bad, "train")

    (bad / "transforms_val.json").write_text('{"frames": [')
    with pytest.raises(InputError, match=r"transforms_val.json: malformed JSON"):
        load_dataset(bad, "val")


def test_instant_ngp_layout(tiny, tmp_path):
    root = tmp_path / "ngp"
    (root / "images").mkdir(parents=True)
    meta = json.loads((tiny / "transforms_train.json").read_text())
    frames = []
    for i, frame in enumerate(meta["frames"]):
        shutil.copy(tiny / "train" / f"r_{i}.png", root / "images" / f"{i:03d}.png")
        frames.append({"file_path": f"images/{i:03d}.png", "transform_matrix": frame["transform_matrix"]})
    (root / "transforms.json").write_text(json.dumps(
        {"fl_x": 40.0, "fl_y": 41.0, "cx": 15.5, "cy": 16.5, "w": 32, "h": 32, "aabb_scale": 2, "frames": frames}))
    train, val = load_dataset(root, "train"), load_dataset(root, "val")
    assert len(train) == 5 and len(val) == 1  # every 8th frame is held out
    assert train.K.tolist() == [[40.0, 0.0, 15.5], [0.0, 41.0, 16.5], [0.0, 0.0, 1.0]]
    # instant-ngp's box: the unit cube of its space (scale 0.33, offset 0.5), grown by aabb_scale
    assert train.aabb == pytest.approx((-1.0 / 0.33,) * 3 + (1.0 / 0.33,) * 3)
