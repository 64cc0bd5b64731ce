"""A panning clip over a tiny-shapes scene: the input of the stream benchmark and the demo's restyle part.

A large shape over a gradient is rendered larger than the frame; a window pans across it one pixel per
frame (right, then back), with Gaussian camera noise on every frame.
"""

from __future__ import annotations

import numpy as np
import torch

PROMPT_COLOUR = "blue"  # the prompt asks for this colour (red when the scene's shape or background is blue)
NOISE_SIGMA = 2.0  # camera noise, in 0-255 levels


def panning_clip(n: int, size: int, static: bool = False, seed: int = 3) -> tuple[list[torch.Tensor], str, dict]:
    """n uint8 [size, size, 3] frames panning 1 px per frame (or static) across a tiny-shapes scene, with
    camera noise; the prompt (the scene's caption with another colour) and its (shape, colour) labels."""
    from neuralframe.generate.data import ShapesConfig, ShapesGenerator
    from neuralframe.generate.data.vocab import COLOURS, SHAPES

    margin = 24
    gen = ShapesGenerator(ShapesConfig(size=size + margin, sizes=("large",), textures=("solid",),
                                       backgrounds=("gradient",)))
    while gen.attributes(seed, "eval").position != "centre":  # the whole shape stays in view while panning
        seed += 1
    sample = gen.image(seed, "eval")
    a = sample.attributes
    colour = next(c for c in (PROMPT_COLOUR, "red", "green") if c not in (a.colour, a.background_colour))
    prompt = sample.caption.replace(f" {a.colour} {a.shape}", f" {colour} {a.shape}")
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        x = 0 if static else min(i, 2 * margin - i) % (margin + 1)  # pan right, then back
        crop = sample.pixels[margin // 2: margin // 2 + size, x: x + size].astype(np.float32)
        crop += rng.normal(0, NOISE_SIGMA, crop.shape)
        frames.append(torch.from_numpy(np.clip(crop + 0.5, 0, 255).astype(np.uint8)))
    return frames, prompt, {"shape": list(SHAPES).index(a.shape), "colour": list(COLOURS).index(colour)}
