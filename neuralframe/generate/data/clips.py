"""Clips that switch prompt: a video-world clip cross-fades from its own shape to another (same track and
background, another shape and colour). The video model trains on them and the evaluation scores prompt
switches with the same partners.

    pixels, before, after, a, b = switch_clip(ShapesGenerator(VIDEO_WORLD), seed=0, k=4)
"""

from __future__ import annotations

import numpy as np

from neuralframe.generate.data.attributes import CONTRASTING
from neuralframe.generate.data.generator import Sample, ShapesGenerator

FADE_FRAMES = 6  # a switching clip cross-fades over this many frames


def switch_partner(generator: ShapesGenerator, seed: int, split: str = "train") -> tuple[str, str]:
    """A shape and colour to switch clip `seed` to: both different from its own, the colour still
    visible on its background (seeded by the clip)."""
    a = generator.attributes(seed, split, video=True)
    rng = np.random.default_rng([seed, 77])
    shapes = [s for s in generator.config.shapes if s != a.shape]
    colours = [c for c in generator.config.colours
               if c != a.colour and (a.background_colour is None or a.background_colour in CONTRASTING[c])]
    if a.motion == "rotate":  # a round solid shape does not show rotation
        shapes = [s for s in shapes if s not in ("circle", "ring")]
    return shapes[int(rng.integers(len(shapes)))], colours[int(rng.integers(len(colours)))]


def switch_clip(generator: ShapesGenerator, seed: int, k: int, split: str = "train",
                fade: int = FADE_FRAMES) -> tuple[np.ndarray, str, str, Sample, Sample]:
    """Clip `seed` that switches at frame k to its partner (a cross-fade over `fade` frames).
    Returns (pixels uint8 [T, H, W, 3], caption before, caption after, the two samples)."""
    a = generator.video(seed, split)
    shape, colour = switch_partner(generator, seed, split)
    b = generator.video_variant(seed, split, shape=shape, colour=colour)
    pa, pb = a.pixels.astype(np.float32), b.pixels.astype(np.float32)
    w = np.clip((np.arange(len(pa)) - k + 1) / (fade + 1), 0.0, 1.0)[:, None, None, None]
    pixels = (pa + w * (pb - pa) + 0.5).astype(np.uint8)
    return pixels, a.caption, b.caption, a, b
