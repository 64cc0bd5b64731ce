"""torch wrappers: a finite, indexable `ShapesDataset` and an endless, worker-sharded `ShapesStream`.

    ds = ShapesDataset(ShapesConfig(size=64), split="eval", length=256)   # item i is seed start + i
    loader = DataLoader(ShapesStream(ShapesConfig(size=64)), batch_size=64, num_workers=2)

Each item is a dict: "pixels" float32 [3, H, W] in [0, 1] (videos: [T, 3, H, W]), "mask" float32
[1, H, W] ([T, 1, H, W]), "caption" str, "seed" int, and one int class label per attribute (see
`Attributes.labels`, -1 where an attribute does not apply), so the default collate batches them.
"""

from __future__ import annotations

import itertools
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from neuralframe.errors import InputError
from neuralframe.generate.data.generator import Sample, ShapesConfig, ShapesGenerator


def to_item(sample: Sample) -> dict:
    """A Sample as tensors and labels, channels first, pixels in [0, 1]."""
    pixels = torch.from_numpy(np.ascontiguousarray(sample.pixels)).movedim(-1, -3).float().div_(255.0)
    return {
        "pixels": pixels,
        "mask": torch.from_numpy(sample.mask).unsqueeze(-3),
        "caption": sample.caption,
        "seed": sample.seed,
        **sample.attributes.labels(),
    }


class ShapesDataset(Dataset):
    """`length` samples of one split; item i is seed `start + i`, the same in every process."""

    def __init__(
        self,
        config: ShapesConfig | None = None,
        split: str = "train",
        length: int = 10_000,
        start: int = 0,
        video: bool = False,
    ):
        if length < 1:
            raise InputError(f"length must be >= 1, got {length}")
        self.generator = ShapesGenerator(config)
        self.split, self.length, self.start, self.video = split, length, start, video

    def __len__(self) -> int:
        return self.length

    def sample(self, i: int) -> Sample:
        if not -self.length <= i < self.length:
            raise IndexError(i)
        seed = self.start + (i % self.length)
        return self.generator.video(seed, self.split) if self.video else self.generator.image(seed, self.split)

    def __getitem__(self, i: int) -> dict:
        return to_item(self.sample(i))


class ShapesStream(IterableDataset):
    """An endless stream (or `length` items) of one split, seeds start, start + 1, ... shared among workers.

    Worker w of W takes seeds start + w, start + w + W, ...: no seed repeats across workers, and with
    one worker the order is exactly seed order.
    """

    def __init__(
        self,
        config: ShapesConfig | None = None,
        split: str = "train",
        start: int = 0,
        video: bool = False,
        length: int | None = None,
    ):
        self.config = config or ShapesConfig()
        self.split, self.start, self.video, self.length = split, start, video, length

    def seeds(self) -> Iterator[int]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        first = self.start + worker
        if self.length is None:
            return itertools.count(first, workers)
        return iter(range(first, self.start + self.length, workers))

    def __iter__(self) -> Iterator[dict]:
        gen = ShapesGenerator(self.config)
        make = gen.video if self.video else gen.image
        for seed in self.seeds():
            yield to_item(make(seed, self.split))
