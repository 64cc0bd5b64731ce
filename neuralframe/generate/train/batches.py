"""Seeded batches for the tiny-shapes stages: batch `step` of a stage is the same in every run, so a
resumed run continues the same data stream."""

from __future__ import annotations

import numpy as np
import torch

from neuralframe.generate.data import ShapesConfig, ShapesGenerator
from neuralframe.generate.data.backgrounds import PhotoBank
from neuralframe.generate.data.vocab import PHOTOS

# The world the bundled tiny-shapes model covers: every shape, colour and position, large, solid, over
# plain and gradient backgrounds. The generator draws more (small and medium shapes, textures, noise and
# photo backgrounds); at 64x64 pixels and 8x8x4 latents those need an autoencoder and a UNet larger than a
# 2-core CPU trains in a session. Measured with the scorer: the first, full-world autoencoder reconstructed
# only 28% of held-out images well enough to name their shape and colour; the medium-and-large teacher
# (5,757 steps) drew 76% of its large shapes right but 45% of its medium ones (squares came out as discs,
# the autoencoder itself keeps 84% of medium shapes against 91% of large ones). The autoencoder still sees
# photographs (PhotoCrops); every stage and the evaluation draw their shapes from this world.
WORLD = ShapesConfig(size=64, sizes=("large",), textures=("solid",), backgrounds=("plain", "gradient"))

# seed offsets per stage, so stages do not share a data stream
OFFSETS = {"vae": 0, "classifier": 50_000_000, "latents": 100_000_000, "eval": 150_000_000, "tiny_vae": 200_000_000}


def to_model_range(pixels_uint8: np.ndarray) -> torch.Tensor:
    """uint8 [B, H, W, 3] -> float32 [B, 3, H, W] in [-1, 1] (the diffusers image convention)."""
    return torch.from_numpy(np.ascontiguousarray(pixels_uint8)).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """float [B, 3, H, W] in [-1, 1] -> uint8 [B, H, W, 3]."""
    x = ((images.detach().float().clamp(-1, 1) + 1.0) * 127.5 + 0.5).to(torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous().numpy()


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
    return {
        "pixels": to_model_range(np.stack([s.pixels for s in samples])),
        "mask": torch.from_numpy(np.stack([s.mask for s in samples]))[:, None],
        "captions": [s.caption for s in samples],
        "shape": torch.tensor([s.attributes.labels()["shape"] for s in samples]),
        "colour": torch.tensor([s.attributes.labels()["colour"] for s in samples]),
    }


def mixed_batch(shapes: "ShapeBatches", photos: "PhotoCrops", step: int, n_photos: int,
                device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The autoencoders' batch `step`: procedural images then `n_photos` photo crops (pixels in [-1, 1]) and
    the shape masks (zero over the photos), on `device`."""
    b = shapes(step)
    pixels = torch.cat([b["pixels"], photos(step, n_photos)]).to(device)
    mask = torch.cat([b["mask"], torch.zeros(n_photos, 1, *b["mask"].shape[-2:])]).to(device)
    return pixels, mask


class PhotoCrops:
    """Random crops of scikit-image's photographs (the real-photo part of the autoencoder's data)."""

    def __init__(self, size: int = 64, seed: int = 0):
        self.bank, self.size, self.seed = PhotoBank(tuple(PHOTOS)), size, seed

    def __call__(self, step: int, n: int) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, step])
        names = list(PHOTOS)
        crops = [self.bank.crop(rng, names[int(rng.integers(len(names)))], self.size) for _ in range(n)]
        return to_model_range((np.stack(crops) * 255.0 + 0.5).astype(np.uint8))
