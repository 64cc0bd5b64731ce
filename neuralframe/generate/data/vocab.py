"""The small world of the procedural data: every attribute value, its caption words and its parameters.

Indices into these tuples are the class labels a classifier trains on, so values are only ever
appended, never reordered.
"""

from __future__ import annotations

SHAPES = ("circle", "square", "triangle", "star", "ring", "cross", "heart")

# sRGB 0-255; every pair is at least 95 apart in RGB, so a shape never hides in a background of another name
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (210, 35, 40),
    "orange": (245, 125, 20),
    "yellow": (245, 225, 45),
    "green": (45, 165, 65),
    "cyan": (40, 195, 215),
    "blue": (40, 75, 215),
    "purple": (140, 50, 190),
    "pink": (245, 125, 190),
    "brown": (120, 72, 30),
    "white": (245, 245, 245),
    "grey": (130, 130, 130),
    "black": (20, 20, 20),
}

# radius (centre to the farthest point of the shape) as a fraction of the image side
SIZES: dict[str, float] = {"small": 0.11, "medium": 0.17, "large": 0.25}

# the 3x3 grid of named positions: (x, y) as fractions of the image side, y down, and the caption phrase
GRID = (0.27, 0.5, 0.73)
POSITIONS: dict[str, tuple[float, float, str]] = {
    "top left": (GRID[0], GRID[0], "in the top left"),
    "top": (GRID[1], GRID[0], "at the top"),
    "top right": (GRID[2], GRID[0], "in the top right"),
    "left": (GRID[0], GRID[1], "on the left"),
    "centre": (GRID[1], GRID[1], "in the centre"),
    "right": (GRID[2], GRID[1], "on the right"),
    "bottom left": (GRID[0], GRID[2], "in the bottom left"),
    "bottom": (GRID[1], GRID[2], "at the bottom"),
    "bottom right": (GRID[2], GRID[2], "in the bottom right"),
}

# "solid" is implied in captions ("a red star"); the others are named ("a red striped star")
TEXTURES = ("solid", "striped", "dotted", "checkered")

BACKGROUNDS = ("plain", "gradient", "noise", "photo")

# photographs that scikit-image ships inside its wheel (no download): loader name -> caption subject
PHOTOS: dict[str, str] = {
    "astronaut": "an astronaut",
    "coffee": "a cup of coffee",
    "chelsea": "a cat",
    "rocket": "a rocket",
    "hubble_deep_field": "galaxies in deep space",
}

MOTIONS = ("left", "right", "up", "down", "rotate", "grow", "bounce")

# shapes that look the same at every angle: "rotate" is invisible on them unless they are textured
ROUND = ("circle", "ring")


def index(vocabulary, value: str | None) -> int:
    """The class label of `value` (its index in the vocabulary); -1 for None (a still image's motion)."""
    if value is None:
        return -1
    return list(vocabulary).index(value)
