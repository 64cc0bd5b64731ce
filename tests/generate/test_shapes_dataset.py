"""The torch wrappers batch the generator's samples with their labels, reproducibly and without repeats."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import torch
from torch.utils.data import DataLoader

from neuralframe.generate.data import COLOURS, SHAPES, ShapesConfig, ShapesGenerator
from neuralframe.generate.data.dataset import ShapesDataset, ShapesStream

CFG = ShapesConfig(size=32, frames=4)


def test_dataset_items_are_tensors_with_labels():
    ds = ShapesDataset(CFG, split="eval", length=10, start=100)
    item = ds[3]
    assert item["pixels"].shape == (3, 32, 32) and item["pixels"].dtype == torch.float32
    assert 0.0 <= item["pixels"].min() and item["pixels"].max() <= 1.0
    assert item["mask"].shape == (1, 32, 32)
    s = ShapesGenerator(CFG).image(103, "eval")
    assert item["seed"] == 103 and item["caption"] == s.caption
    assert SHAPES[item["shape"]] == s.attributes.shape and list(COLOURS)[item["colour"]] == s.attributes.colour
    assert item["motion"] == -1
    np.testing.assert_array_equal((item["pixels"] * 255).round().byte().permute(1, 2, 0).numpy(), s.pixels)
    assert len(ds) == 10 and ds[-1]["seed"] == 109


def test_dataloader_collates_a_batch():
    batch = next(iter(DataLoader(ShapesDataset(CFG, length=16), batch_size=8)))
    assert batch["pixels"].shape == (8, 3, 32, 32)
    assert batch["shape"].shape == (8,) and batch["shape"].dtype == torch.int64
    assert len(batch["caption"]) == 8 and all(isinstance(c, str) for c in batch["caption"])


def test_video_items_are_frames_first():
    item = ShapesDataset(CFG, length=2, video=True)[0]
    assert item["pixels"].shape == (4, 3, 32, 32) and item["mask"].shape == (4, 1, 32, 32)
    assert item["motion"] >= 0


def test_stream_shards_seeds_across_workers():
    stream = ShapesStream(CFG, split="train", start=50, length=12)
    alone = [item["seed"] for item in stream]
    assert alone == list(range(50, 62))
    loader = DataLoader(stream, batch_size=None, num_workers=2, multiprocessing_context="fork")
    seeds = [item["seed"] for item in loader]
    assert sorted(seeds) == alone  # every seed once, none repeated by the two workers


def test_importing_the_data_package_does_not_import_torch():
    code = "import sys, json, neuralframe.generate.data\nprint(json.dumps('torch' in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) is False
