"""A contact sheet of generated samples, to look at the data: one row per sample, video frames across."""

from __future__ import annotations

import numpy as np

from neuralframe.generate.data.generator import Sample, ShapesGenerator


def contact_sheet(
    generator: ShapesGenerator, seeds, split: str = "train", video: bool = False, columns: int = 8
) -> tuple[np.ndarray, list[Sample]]:
    """uint8 [rows * S, columns * S, 3] grid (videos: one per row, frames across) and the samples shown."""
    make = generator.video if video else generator.image
    samples = [make(int(seed), split) for seed in seeds]
    if not samples:
        raise ValueError("no seeds given")
    n = generator.config.size
    if video:
        return np.concatenate([np.concatenate(list(s.pixels), axis=1) for s in samples], axis=0), samples
    rows = -(-len(samples) // columns)
    sheet = np.zeros((rows * n, columns * n, 3), np.uint8)
    for i, s in enumerate(samples):
        r, c = divmod(i, columns)
        sheet[r * n : (r + 1) * n, c * n : (c + 1) * n] = s.pixels
    return sheet, samples
