"""Real inputs for parity checks and int8 calibration, from what the project bundles or generates.

- `person_frames`: the bundled photos of people (assets/media) composited over moving procedural
  backgrounds with camera noise (`generate.matting.media.make_clip`), uint8 [H, W, 3];
- `shapes_images`: the procedural captioned-shapes images the generative models train on (no people:
  they calibrate the ranges a background-only frame produces);
- `to_model_input`: a frame as the segmenter sees it (area-resized, float [1, 3, h, w] in [0, 1]).

Calibration and evaluation use different seeds and motion, so an int8 accuracy figure is never
measured on the frames that calibrated it.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

PEOPLE = ("astronaut", "camera")


@functools.lru_cache(maxsize=8)
def person_frames(frames: int, size: tuple[int, int], seed: int, shift: int = 4) -> tuple[torch.Tensor, ...]:
    """`frames` frames per bundled person (people interleaved), each uint8 [H, W, 3]."""
    from neuralframe.matting.media import make_clip

    clips = [make_clip(frames, size, person=p, seed=seed, shift=shift).frames for p in PEOPLE]
    return tuple(f for group in zip(*clips) for f in group)


@functools.lru_cache(maxsize=4)
def shapes_images(n: int, size: int = 128, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """`n` procedural shapes images, uint8 [size, size, 3]."""
    from neuralframe.generate.data import ShapesConfig, ShapesGenerator

    generator = ShapesGenerator(ShapesConfig(size=size))
    return tuple(torch.from_numpy(generator.image(seed=seed + i).pixels.copy()) for i in range(n))


def to_model_input(frame: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:  # [H, W, 3] -> [1, 3, h, w]
    """uint8 [H, W, 3] -> float [1, 3, h, w] in [0, 1], area-resized to `size` (height, width)."""
    x = frame.permute(2, 0, 1)[None].float() / 255.0
    return F.interpolate(x, size=size, mode="area").contiguous()


def to_frame_tensor(frame: torch.Tensor) -> torch.Tensor:  # [H, W, 3] uint8 -> [1, 3, H, W] float
    return (frame.permute(2, 0, 1)[None].float() / 255.0).contiguous()
