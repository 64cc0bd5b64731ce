"""What one sample shows (`Attributes`), how it is drawn from a seeded generator, and its caption."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from neuralframe.generate.data.vocab import (
    BACKGROUNDS,
    COLOURS,
    MOTIONS,
    PHOTOS,
    POSITIONS,
    ROUND,
    SHAPES,
    SIZES,
    TEXTURES,
    index,
)

# a shape keeps this RGB distance (0-255) from every colour of a plain, gradient or noise background
MIN_CONTRAST = 90.0

# where a motion may start so that it stays in the frame: left/right/up/down move by one grid step,
# bounce jumps up by about one step from where it is
_START = {
    "left": lambda c, r: c > 0,
    "right": lambda c, r: c < 2,
    "up": lambda c, r: r > 0,
    "down": lambda c, r: r < 2,
    "bounce": lambda c, r: r > 0,
}


@dataclass(frozen=True)
class Attributes:
    """Everything a caption says about a sample; `motion` is None for a still image."""

    shape: str
    colour: str
    size: str
    position: str  # for a video, where the motion starts
    texture: str
    background: str  # plain | gradient | noise | photo
    background_colour: str | None  # plain, gradient and noise
    photo: str | None  # photo
    motion: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return asdict(self)

    def labels(self) -> dict[str, int]:
        """Class indices into the vocabularies (stable across configs); -1 where a field is None."""
        return {
            "shape": index(SHAPES, self.shape),
            "colour": index(COLOURS, self.colour),
            "size": index(SIZES, self.size),
            "position": index(POSITIONS, self.position),
            "texture": index(TEXTURES, self.texture),
            "background": index(BACKGROUNDS, self.background),
            "background_colour": index(COLOURS, self.background_colour),
            "photo": index(PHOTOS, self.photo),
            "motion": index(MOTIONS, self.motion),
        }


def shade(rgb: np.ndarray) -> np.ndarray:
    """The second colour of a texture or gradient: darker, or lighter for near-black colours."""
    rgb = np.asarray(rgb, np.float32)
    if rgb.max() < 60:
        return rgb * 0.5 + 0.5 * 150.0
    return rgb * 0.5


def _contrasts(colour: str, background_colour: str) -> bool:
    c = np.asarray(COLOURS[colour], np.float32)
    b = np.asarray(COLOURS[background_colour], np.float32)
    # both ends of a gradient (and the dark end of noise) stay away from the shape's colour
    return min(np.linalg.norm(c - b), np.linalg.norm(c - shade(b))) >= MIN_CONTRAST


# shape colour -> the background colours it stands out on (a constant table)
CONTRASTING = {c: tuple(b for b in COLOURS if b != c and _contrasts(c, b)) for c in COLOURS}


def _pick(rng: np.random.Generator, values) -> str:
    values = list(values)
    return values[int(rng.integers(len(values)))]


def sample_attributes(
    rng: np.random.Generator,
    *,
    video: bool,
    shapes=SHAPES,
    colours=tuple(COLOURS),
    sizes=tuple(SIZES),
    textures=TEXTURES,
    backgrounds=BACKGROUNDS,
    photos=tuple(PHOTOS),
    motions=MOTIONS,
) -> Attributes:
    """Draw one combination, uniformly per attribute, keeping only combinations that render clearly."""
    shape, colour, size, texture = _pick(rng, shapes), _pick(rng, colours), _pick(rng, sizes), _pick(rng, textures)
    motion = None
    positions = list(POSITIONS)
    if video:
        choices = [m for m in motions if not (m == "rotate" and shape in ROUND and texture == "solid")]
        motion = _pick(rng, choices or motions)
        if motion in _START:
            grid = list(POSITIONS)
            positions = [p for i, p in enumerate(grid) if _START[motion](i % 3, i // 3)]
    position = _pick(rng, positions)
    background = _pick(rng, backgrounds)
    background_colour = photo = None
    if background == "photo":
        photo = _pick(rng, photos)
    else:
        options = [b for b in CONTRASTING[colour] if b in colours]
        background_colour = _pick(rng, options or CONTRASTING[colour])
    return Attributes(shape, colour, size, position, texture, background, background_colour, photo, motion)


def _background_phrase(a: Attributes) -> str:
    if a.background == "photo":
        return f"a photo of {PHOTOS[a.photo]}"
    if a.background == "plain":
        return f"a plain {a.background_colour} background"
    if a.background == "gradient":
        article = "an" if a.background_colour[0] in "aeiou" else "a"
        return f"{article} {a.background_colour} gradient"
    return f"{a.background_colour} noise"


def _motion_phrase(a: Attributes) -> str:
    at = POSITIONS[a.position][2]
    if a.motion in ("left", "right", "up", "down"):
        return f"moving {a.motion} from the {a.position}"
    verb = {"rotate": "rotating", "grow": "growing", "bounce": "bouncing"}[a.motion]
    return f"{verb} {at}"


N_TEMPLATES = 3


def caption(a: Attributes, template: int = 0) -> str:
    """A sentence that names every attribute: "a small red striped star in the top left over a blue gradient".

    `template` (0..N_TEMPLATES-1) varies the wording only; the attributes named are the same.
    """
    texture = "" if a.texture == "solid" else f"{a.texture} "
    thing = f"a {a.size} {a.colour} {texture}{a.shape}"
    where = POSITIONS[a.position][2] if a.motion is None else _motion_phrase(a)
    background = _background_phrase(a)
    template %= N_TEMPLATES
    if template == 0:
        return f"{thing} {where} over {background}"
    if template == 1:
        return f"{thing} {where} on {background}"
    return f"{background} with {thing} {where}"

