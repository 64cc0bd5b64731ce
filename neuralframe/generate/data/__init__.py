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

Speed, one process on one thread (`python -m neuralframe.bench.data`, this project's 2-core CPU while
other jobs loaded it, load average 2.7): ~2,000 images/s at 64x64, ~900-1,100 images/s at 128x128,
~560-670 eight-frame 64x64 videos/s. A DataLoader worker or two keeps up with any CPU training step.

numpy only (torch is imported by `neuralframe.generate.data.dataset`, the `Dataset` wrappers).
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
