"""Backgrounds: plain colour, linear gradient, smooth value noise, and crops of scikit-image's photographs.

All return float32 [H, W, 3] in [0, 1]. Photographs are read once per `PhotoBank` (a few ms each, from
files inside the scikit-image wheel: nothing is downloaded) and kept as an image pyramid, so a crop of
any size is resampled from the level at most twice its size: bilinear sampling there is close to an
area average and does not alias.
"""

from __future__ import annotations

import numpy as np

from neuralframe.errors import MissingDependencyError
from neuralframe.generate.data.vocab import PHOTOS


def plain(rgb: np.ndarray, size: int) -> np.ndarray:
    return np.broadcast_to(rgb.astype(np.float32), (size, size, 3)).copy()


def gradient(rgb: np.ndarray, rgb2: np.ndarray, size: int, angle: float) -> np.ndarray:
    """From `rgb` to `rgb2` along the direction `angle` (radians), across the whole image."""
    u = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
    c, s = np.cos(angle), np.sin(angle)
    t = (c * u[None, :] + s * u[:, None]) / (abs(c) + abs(s)) + 0.5  # [H, W] in [0, 1]
    return rgb.astype(np.float32) + t[..., None] * (rgb2 - rgb).astype(np.float32)


def _taps(start: float, length: float, n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray]:
    """Left sample index [n_out] and weight of the right one, for bilinear sampling at n_out centres."""
    pos = start + (np.arange(n_out, dtype=np.float32) + 0.5) * (length / n_out) - 0.5
    pos = np.clip(pos, 0, n_in - 1)
    i = np.minimum(pos.astype(np.int64), n_in - 2)
    return i, (pos - i).astype(np.float32)


def resample(img: np.ndarray, y0: float, x0: float, h: float, w: float, out_h: int, out_w: int) -> np.ndarray:
    """Bilinear samples of the box [y0, y0 + h) x [x0, x0 + w) of `img` [H, W, C] on an out_h x out_w grid."""
    yi, fy = _taps(y0, h, out_h, img.shape[0])
    xi, fx = _taps(x0, w, out_w, img.shape[1])
    # interpolate rows first, over only the columns the crop reads
    c0, c1 = int(xi[0]), int(xi[-1]) + 2
    band = img[:, c0:c1]
    rows = band[yi] + fy[:, None, None] * (band[yi + 1] - band[yi])  # [out_h, c1 - c0, C]
    xi = xi - c0
    left = rows[:, xi]
    return left + fx[None, :, None] * (rows[:, xi + 1] - left)


def _smooth(rng: np.random.Generator, cells: int, size: int) -> np.ndarray:
    """Bilinear value noise: a random (cells + 1)^2 lattice stretched over size x size, as matrix products."""
    grid = rng.random((cells + 1, cells + 1), dtype=np.float32)
    i, f = _taps(0.5, cells, size, cells + 1)
    m = np.zeros((size, cells + 1), np.float32)
    rows = np.arange(size)
    m[rows, i] = 1 - f
    m[rows, i + 1] = f
    return m @ grid @ m.T


def noise(rng: np.random.Generator, rgb: np.ndarray, size: int) -> np.ndarray:
    """Smooth value noise (two octaves) modulating the brightness of `rgb`, plus a fine grain."""
    field = 0.65 * _smooth(rng, 3, size) + 0.35 * _smooth(rng, 7, size)
    field += rng.normal(0, 0.04, (size, size)).astype(np.float32)
    brightness = 0.55 + 0.6 * field  # mean ~0.85, so the named colour dominates
    return np.clip(rgb.astype(np.float32)[None, None, :] * brightness[..., None], 0.0, 1.0)


class PhotoBank:
    """scikit-image's bundled photographs as float32 image pyramids, loaded on first use."""

    def __init__(self, names=tuple(PHOTOS)):
        self.names = tuple(names)
        self._pyramids: dict[str, list[np.ndarray]] = {}

    def pyramid(self, name: str) -> list[np.ndarray]:
        if name not in self._pyramids:
            try:
                import skimage.data
            except ImportError as e:  # pragma: no cover - scikit-image is a core dependency
                raise MissingDependencyError("photo backgrounds need scikit-image: pip install scikit-image") from e
            img = getattr(skimage.data, name)()[..., :3].astype(np.float32) / 255.0
            levels = [img]
            while min(levels[-1].shape[:2]) >= 64:
                a = levels[-1]
                h, w = a.shape[0] // 2 * 2, a.shape[1] // 2 * 2
                a = a[:h, :w]
                levels.append(0.25 * (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]))
            self._pyramids[name] = levels
        return self._pyramids[name]

    def crop(self, rng: np.random.Generator, name: str, size: int) -> np.ndarray:
        """A random square crop (35-100% of the short side), maybe mirrored, resampled to size x size."""
        levels = self.pyramid(name)
        h, w = levels[0].shape[:2]
        side = min(h, w) * rng.uniform(0.35, 1.0)
        y0 = rng.uniform(0, h - side)
        x0 = rng.uniform(0, w - side)
        flip = rng.random() < 0.5
        level = 0
        while level + 1 < len(levels) and side / 2 ** (level + 1) >= size:
            level += 1
        k = 2.0**level
        out = resample(levels[level], y0 / k, x0 / k, side / k, side / k, size, size)
        return out[:, ::-1] if flip else out
