"""Procedural, seeded, captioned images and short videos: the small world the bundled models learn.

One shape (circle, square, triangle, star, ring, cross, heart) in one of twelve named colours, three
sizes, nine positions and four textures (solid, striped, dotted, checkered), over a plain colour, a
gradient, smooth noise or a crop of a photograph that scikit-image ships; in videos it moves (left,
right, up, down, rotate, grow, bounce). Captions are sentences built from those attributes:

    >>> from neuralframe.generate.data import ShapesGenerator
    >>> s = ShapesGenerator().image(seed=0)
    >>> s.caption, s.pixels.shape
    ('a medium pink striped cross in the top right over a plain red background', (64, 64, 3))
    >>> s.attributes.labels()["shape"]     # class indices for a classifier: shape, colour, size, ...
    5

The same seed gives the same pixels and caption in any process. "eval" samples are combinations of
attributes that "train" never produces (`HoldOut`), i.e. prompts unseen in training. Shapes and
textures are anti-aliased analytically from signed distances (one evaluation per pixel).

Speed, one process on one thread: `neuralframe bench data --json`, recorded in benchmarks/data.json (images
per second at 64x64 and 128x128, eight-frame videos per second). A DataLoader worker or two keeps up with
any CPU training step.

This package is numpy only; torch comes in with the modules that hand tensors to models: `dataset` (the
`Dataset` wrappers), `batches` (seeded training and evaluation batches), `pixels` (uint8 <-> the models'
[-1, 1] range) and `panning`. `worlds` holds the bundled models' worlds, `clips` the prompt-switching clips.
"""

from neuralframe.generate.data.attributes import Attributes, caption
from neuralframe.generate.data.generator import Sample, ShapesConfig, ShapesGenerator
from neuralframe.generate.data.splits import HoldOut
from neuralframe.generate.data.vocab import BACKGROUNDS, COLOURS, MOTIONS, PHOTOS, POSITIONS, SHAPES, SIZES, TEXTURES

__all__ = [
    "Attributes",
    "BACKGROUNDS",
    "COLOURS",
    "HoldOut",
    "MOTIONS",
    "PHOTOS",
    "POSITIONS",
    "SHAPES",
    "SIZES",
    "Sample",
    "ShapesConfig",
    "ShapesGenerator",
    "TEXTURES",
    "caption",
]
