"""Render seeded captioned images and short videos of one shape over a background.

    gen = ShapesGenerator(ShapesConfig(size=64))
    s = gen.image(seed=3)                # Sample: pixels uint8 [64, 64, 3], caption, attributes, mask, ...
    v = gen.video(seed=3, split="eval")  # pixels uint8 [8, 64, 64, 3]; a combination never seen in "train"

A sample is a pure function of (seed, kind, split, config): the same arguments give identical pixels
and caption in any process. Attributes are drawn first (rejecting held-out or hard-to-see combinations),
then the geometry (jittered position, size, angle), the caption template and the background.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from neuralframe.errors import InputError
from neuralframe.generate.data.attributes import N_TEMPLATES, Attributes, caption, sample_attributes, shade
from neuralframe.generate.data.backgrounds import PhotoBank, gradient, noise, plain
from neuralframe.generate.data.raster import shape_layer
from neuralframe.generate.data.splits import HoldOut
from neuralframe.generate.data.vocab import (
    BACKGROUNDS,
    COLOURS,
    GRID,
    MOTIONS,
    PHOTOS,
    POSITIONS,
    SHAPES,
    SIZES,
    TEXTURES,
)

_KIND = {"image": 0, "video": 1}
_SPLIT = {"train": 0, "eval": 1, "all": 2}
STEP = GRID[1] - GRID[0]  # one grid step: how far left/right/up/down motions travel
MAX_TRIES = 10_000


@dataclass(frozen=True)
class ShapesConfig:
    """What the generator draws from. Narrow a vocabulary to train on a smaller world.

    Args:
        size: image side in pixels.
        frames: frames per video.
        shapes, colours, sizes, textures, backgrounds, photos, motions: the values used (subsets of vocab).
            Background colours come from `colours` too, among those that contrast with the shape's colour
            (from all colours if none of `colours` does).
        holdout: which combinations are kept for evaluation only.
    """

    size: int = 64
    frames: int = 8
    shapes: tuple[str, ...] = SHAPES
    colours: tuple[str, ...] = tuple(COLOURS)
    sizes: tuple[str, ...] = tuple(SIZES)
    textures: tuple[str, ...] = TEXTURES
    backgrounds: tuple[str, ...] = BACKGROUNDS
    photos: tuple[str, ...] = tuple(PHOTOS)
    motions: tuple[str, ...] = MOTIONS
    holdout: HoldOut = field(default_factory=HoldOut)

    def __post_init__(self):
        if self.size < 16 or self.frames < 2:
            raise InputError(f"size must be >= 16 and frames >= 2, got size={self.size}, frames={self.frames}")
        for name, values, vocab in (
            ("shapes", self.shapes, SHAPES),
            ("colours", self.colours, COLOURS),
            ("sizes", self.sizes, SIZES),
            ("textures", self.textures, TEXTURES),
            ("backgrounds", self.backgrounds, BACKGROUNDS),
            ("photos", self.photos, PHOTOS),
            ("motions", self.motions, MOTIONS),
        ):
            bad = [v for v in values if v not in vocab]
            if bad or not values:
                raise InputError(f"{name} must be a non-empty subset of {', '.join(vocab)}; got {values}")


@dataclass(frozen=True)
class Sample:
    """One generated image (T = 1) or video, with everything needed to train and to check it."""

    pixels: np.ndarray  # uint8 [H, W, 3] (image) or [T, H, W, 3] (video)
    mask: np.ndarray  # float32 [H, W] or [T, H, W]: the shape's coverage
    caption: str
    attributes: Attributes
    seed: int
    split: str
    centres: np.ndarray  # float32 [T, 2]: the shape's centre (x, y) in pixels, y down
    radii: np.ndarray  # float32 [T]: its radius in pixels
    angles: np.ndarray  # float32 [T]: its rotation in radians, counter-clockwise


class ShapesGenerator:
    """Seeded captioned images and videos. Holds only the config and a cache of decoded photographs."""

    def __init__(self, config: ShapesConfig | None = None):
        self.config = config or ShapesConfig()
        self.photos = PhotoBank(self.config.photos)
        n = self.config.size
        self._xs = np.arange(n, dtype=np.float32) + 0.5

    def attributes(self, seed: int, split: str = "train", video: bool = False) -> Attributes:
        """The attributes of sample `seed` alone (cheap: nothing is rendered)."""
        return self._draw(seed, split, video)[0]

    def _draw(self, seed: int, split: str, video: bool) -> tuple[Attributes, np.random.Generator]:
        """The attributes of sample `seed`, and the generator positioned to draw the rest of it."""
        if split not in _SPLIT:
            raise InputError(f"unknown split '{split}': use train, eval or all")
        if seed < 0:
            raise InputError(f"seeds are non-negative integers, got {seed}")
        cfg = self.config
        rng = np.random.default_rng([int(seed), _KIND["video" if video else "image"], _SPLIT[split]])
        for _ in range(MAX_TRIES):
            a = sample_attributes(
                rng,
                video=video,
                shapes=cfg.shapes,
                colours=cfg.colours,
                sizes=cfg.sizes,
                textures=cfg.textures,
                backgrounds=cfg.backgrounds,
                photos=cfg.photos,
                motions=cfg.motions,
            )
            if cfg.holdout.accepts(a, split):
                return a, rng
        raise InputError(f"no combination of this config falls in split '{split}' (held-out rule {cfg.holdout})")

    def image(self, seed: int, split: str = "train") -> Sample:
        return self._sample(seed, split, video=False)

    def video(self, seed: int, split: str = "train") -> Sample:
        return self._sample(seed, split, video=True)

    def video_variant(self, seed: int, split: str = "train", **changes) -> Sample:
        """Video `seed` with some attributes changed (say `shape=`, `colour=`) and everything else (track,
        background, caption wording) the same: the two sides of a prompt switch."""
        return self._sample(seed, split, video=True, changes=changes)

    def _background(self, rng: np.random.Generator, a: Attributes) -> np.ndarray:
        n = self.config.size
        if a.background == "photo":
            return self.photos.crop(rng, a.photo, n)
        rgb = np.asarray(COLOURS[a.background_colour], np.float32) / 255.0
        if a.background == "plain":
            return plain(rgb, n)
        if a.background == "gradient":
            rgb2 = shade(COLOURS[a.background_colour]) / 255.0
            ends = (rgb, rgb2) if rng.random() < 0.5 else (rgb2, rgb)
            return gradient(*ends, n, rng.uniform(0, 2 * np.pi))
        return noise(rng, rgb, n)

    def _track(self, rng: np.random.Generator, a: Attributes, frames: int) -> tuple[np.ndarray, ...]:
        """Centre [T, 2], radius [T] and angle [T] in pixels/radians over the frames."""
        n = self.config.size
        x, y, _ = POSITIONS[a.position]
        x0 = (x + rng.uniform(-0.03, 0.03)) * n
        y0 = (y + rng.uniform(-0.03, 0.03)) * n
        r0 = SIZES[a.size] * rng.uniform(0.92, 1.08) * n
        a0 = rng.uniform(-np.pi / 6, np.pi / 6)
        t = np.linspace(0.0, 1.0, frames, dtype=np.float32)  # [T]; [0] for a still image
        cx, cy = np.full_like(t, x0), np.full_like(t, y0)
        radius, angle = np.full_like(t, r0), np.full_like(t, a0)
        d = STEP * n * t
        if a.motion == "left":
            cx = x0 - d
        elif a.motion == "right":
            cx = x0 + d
        elif a.motion == "up":
            cy = y0 - d
        elif a.motion == "down":
            cy = y0 + d
        elif a.motion == "rotate":
            # 108 degrees: not a symmetry of any shape, so the last frame differs from the first too
            angle = a0 + np.sign(rng.uniform(-1, 1)) * (0.6 * np.pi) * t
        elif a.motion == "grow":
            radius = r0 * (0.65 + 0.7 * t)
        elif a.motion == "bounce":
            cy = y0 - 0.9 * STEP * n * np.abs(np.sin(2 * np.pi * t))
        return np.stack([cx, cy], -1).astype(np.float32), radius.astype(np.float32), angle.astype(np.float32)

    def _span(self, c: float, r: float) -> tuple[int, int]:
        n = self.config.size
        return max(0, int(np.floor(c - 1.2 * r - 1))), min(n, int(np.ceil(c + 1.2 * r + 1)))

    def _sample(self, seed: int, split: str, video: bool, changes: dict | None = None) -> Sample:
        cfg = self.config
        a, rng = self._draw(seed, split, video)
        if changes:
            a = replace(a, **changes)
        frames = cfg.frames if video else 1
        centres, radii, angles = self._track(rng, a, frames)
        text = caption(a, int(rng.integers(N_TEMPLATES)))
        background = self._background(rng, a)
        rgb = np.asarray(COLOURS[a.colour], np.float32) / 255.0
        rgb2 = shade(COLOURS[a.colour]) / 255.0
        pixels = np.empty((frames, cfg.size, cfg.size, 3), np.uint8)
        masks = np.zeros((frames, cfg.size, cfg.size), np.float32)
        base = (background * 255.0 + 0.5).astype(np.uint8)
        for f in range(frames):
            pixels[f] = base
            # draw only inside the shape's bounding square (every shape fits in 1.2 radii)
            (cx, cy), r = centres[f], float(radii[f])
            x0, x1 = self._span(cx, r)
            y0, y1 = self._span(cy, r)
            if x0 >= x1 or y0 >= y1:
                continue
            alpha, fill = shape_layer(
                a.shape, a.texture, rgb, rgb2, self._xs[x0:x1], self._xs[y0:y1], (cx, cy), r, float(angles[f])
            )
            under = background[y0:y1, x0:x1]
            pixels[f, y0:y1, x0:x1] = (255.0 * (under + alpha[..., None] * (fill - under)) + 0.5).astype(np.uint8)
            masks[f, y0:y1, x0:x1] = alpha
        if not video:
            pixels, masks = pixels[0], masks[0]
        return Sample(pixels, masks, text, a, int(seed), split, centres, radii, angles)
