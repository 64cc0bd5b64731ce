"""Seeded batches of the tiny-shapes world for training stages and evaluation: batch `step` of a stream is
the same in every run, so a resumed run continues the same data stream and an evaluation sees the same
held-out images.

    b = ShapeBatches("eval", 8, split="eval")(step=0)    # pixels [8, 3, 64, 64] in [-1, 1], mask, captions, labels
"""

from __future__ import annotations

import numpy as np
import torch

from neuralframe.generate.data.backgrounds import PhotoBank
from neuralframe.generate.data.generator import ShapesConfig, ShapesGenerator
from neuralframe.generate.data.pixels import to_model_range
from neuralframe.generate.data.vocab import PHOTOS
from neuralframe.generate.data.worlds import WORLD

# seed offsets per stream, so stages (and the evaluation) do not share data
OFFSETS = {"vae": 0, "classifier": 50_000_000, "latents": 100_000_000, "eval": 150_000_000, "tiny_vae": 200_000_000}


class ShapeBatches:
    """Images, masks, captions and labels of seeds `offset + step * batch + i`."""

    def __init__(self, stage: str, batch: int, split: str = "train", config: ShapesConfig = WORLD):
        self.generator = ShapesGenerator(config)
        self.offset, self.batch, self.split = OFFSETS[stage], batch, split

    def seeds(self, step: int) -> range:
        first = self.offset + step * self.batch
        return range(first, first + self.batch)

    def __call__(self, step: int) -> dict:
        samples = [self.generator.image(s, self.split) for s in self.seeds(step)]
        return collate(samples)


def collate(samples) -> dict:
    """pixels float [B, 3, H, W] in [-1, 1], mask float [B, 1, H, W], captions, shape and colour labels [B]."""
    return {
        "pixels": to_model_range(np.stack([s.pixels for s in samples])),
        "mask": torch.from_numpy(np.stack([s.mask for s in samples]))[:, None],
        "captions": [s.caption for s in samples],
        "shape": torch.tensor([s.attributes.labels()["shape"] for s in samples]),
        "colour": torch.tensor([s.attributes.labels()["colour"] for s in samples]),
    }


def mixed_batch(shapes: ShapeBatches, photos: PhotoCrops, step: int, n_photos: int,
                device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The autoencoders' batch `step`: procedural images then `n_photos` photo crops (pixels [B, 3, H, W] in
    [-1, 1]) and the shape masks [B, 1, H, W] (zero over the photos), on `device`."""
    b = shapes(step)
    pixels = torch.cat([b["pixels"], photos(step, n_photos)]).to(device)
    mask = torch.cat([b["mask"], torch.zeros(n_photos, 1, *b["mask"].shape[-2:])]).to(device)
    return pixels, mask


class PhotoCrops:
    """Random crops of scikit-image's photographs (the real-photo part of the autoencoder's data)."""

    def __init__(self, size: int = 64, seed: int = 0):
        self.bank, self.size, self.seed = PhotoBank(tuple(PHOTOS)), size, seed

    def __call__(self, step: int, n: int) -> torch.Tensor:
        """n crops, float [n, 3, size, size] in [-1, 1]."""
        rng = np.random.default_rng([self.seed, step])
        names = list(PHOTOS)
        crops = [self.bank.crop(rng, names[int(rng.integers(len(names)))], self.size) for _ in range(n)]
        return to_model_range((np.stack(crops) * 255.0 + 0.5).astype(np.uint8))
