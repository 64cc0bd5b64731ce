"""NeRF inputs judged against the memory available before they are read: a checkpoint whose config declares
a field far larger than its file, and a dataset whose images (by their headers) will not fit as float32."""

from __future__ import annotations

import json
import time

import pytest
import torch

from neuralframe.backend.memory import LIMIT_ENV
from neuralframe.errors import InputError
from neuralframe.render.nerf import io as nerf_io
from neuralframe.render.nerf.data import load_dataset
from neuralframe.render.nerf.field import FieldConfig

from backend.test_memory import png_header


def checkpoint(path, **config):
    from safetensors.torch import save_file

    d = {**FieldConfig().to_dict(), **config}
    save_file({"x": torch.zeros(1)}, str(path), metadata={"format": nerf_io.FORMAT, "version": nerf_io.VERSION,
                                                          "config": json.dumps(d), "train": "{}"})
    return path


def test_a_checkpoint_declaring_a_huge_field_is_refused_before_it_is_built(tmp_path):
    path = checkpoint(tmp_path / "huge.safetensors", occupancy_resolution=8192, hidden=1 << 20)
    start = time.perf_counter()
    with pytest.raises(InputError, match=r"huge.safetensors: the NeRF field its config declares: about .* TB of "
                                         r"memory needed, .* available; free some memory"):
        nerf_io.load_field(path)
    assert time.perf_counter() - start < 2.0


def test_the_estimate_matches_the_field_it_builds():
    from neuralframe.render.nerf.field import NerfField

    field = NerfField(FieldConfig())
    built = sum(t.numel() * t.element_size() for t in [*field.parameters(), *field.buffers()])
    assert built <= nerf_io.field_bytes(FieldConfig()) <= 1.1 * built


def test_a_config_with_an_empty_layer_is_one_line(tmp_path):
    with pytest.raises(InputError, match="declares a field with an empty layer or grid"):
        nerf_io.load_field(checkpoint(tmp_path / "empty.safetensors", hidden=0))


def test_a_dataset_too_large_for_memory_is_refused_from_the_first_images_header(tmp_path, monkeypatch):
    (tmp_path / "r_0.png").write_bytes(png_header(8000, 8000))
    frames = [{"file_path": "r_0", "transform_matrix": torch.eye(4).tolist()} for _ in range(50)]
    (tmp_path / "transforms_train.json").write_text(json.dumps({"camera_angle_x": 0.7, "frames": frames}))
    monkeypatch.setenv(LIMIT_ENV, "4G")
    with pytest.raises(InputError, match=r"transforms_train.json: 50 images like r_0.png: about 95.4 GB of memory "
                                         r"needed, 4.0 GB available; use fewer or smaller images"):
        load_dataset(tmp_path, "train")
