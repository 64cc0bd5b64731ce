"""Anti-aliased shapes and textures from signed distances (numpy).

Each shape is a signed distance function in pixels (negative inside), evaluated at pixel centres in the
shape's own frame (x right, y up, rotated with the shape). Coverage `clip(0.5 - d, 0, 1)` is the exact
area of a pixel under a straight edge crossing it along an axis and close to it otherwise: analytic
anti-aliasing at the cost of one evaluation per pixel (no supersampling). Textures use the same rule on
their own distance fields, so stripes, dots and checks are anti-aliased too. Distance formulas follow
Inigo Quilez's 2D distance functions (iquilezles.org/articles/distfunctions2d), written anew here.
"""

from __future__ import annotations

import numpy as np

_SQRT3 = np.float32(np.sqrt(3.0))
# unit vectors of the star's mirror lines (cos, sin of 36 degrees)
_K1 = np.array([0.809016994, -0.587785252], np.float32)
_K2 = np.array([-0.809016994, -0.587785252], np.float32)


def _length(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.sqrt(x * x + y * y)


def _circle(x, y, r):
    return _length(x, y) - r


def _ring(x, y, r):
    return np.abs(_length(x, y) - 0.72 * r) - 0.28 * r


def _square(x, y, r):
    b = 0.78 * r  # half side: the square's area is close to the circle's
    dx, dy = np.abs(x) - b, np.abs(y) - b
    outside = _length(np.maximum(dx, 0), np.maximum(dy, 0))
    return outside + np.minimum(np.maximum(dx, dy), 0)


def _triangle(x, y, r):
    # equilateral, apex up, centroid at the origin; circumradius 1.15 r so it looks as big as the others
    h = 1.15 * r * _SQRT3 / 2  # half side
    px = np.abs(x) - h
    py = y + h / _SQRT3
    fold = px + _SQRT3 * py > 0
    qx = np.where(fold, (px - _SQRT3 * py) / 2, px)
    qy = np.where(fold, (-_SQRT3 * px - py) / 2, py)
    qx = qx - np.clip(qx, -2 * h, 0)
    return -_length(qx, qy) * np.sign(qy)


def _star(x, y, r, inner: float = 0.5):
    # five points, one up; mirror the plane into one tip's wedge, then measure to that tip's edge
    px = np.abs(x)
    py = y
    for k in (_K1, _K2):
        d = np.maximum(k[0] * px + k[1] * py, 0) * 2
        px, py = px - d * k[0], py - d * k[1]
    px = np.abs(px)
    py = py - r
    bax, bay = inner * -_K1[1], inner * _K1[0] - 1.0  # edge direction from the tip to the inner corner
    h = np.clip((px * bax + py * bay) / (bax * bax + bay * bay), 0, r)
    return _length(px - bax * h, py - bay * h) * np.sign(py * bax - px * bay)


def _cross(x, y, r):
    # a plus sign: two bars of half length 0.95 r and half width 0.32 r
    bx, by = 0.95 * r, 0.32 * r
    px, py = np.abs(x), np.abs(y)
    swap = py > px
    px, py = np.where(swap, py, px), np.where(swap, px, py)
    qx, qy = px - bx, py - by
    k = np.maximum(qx, qy)
    wx = np.where(k > 0, qx, by - px)
    wy = np.where(k > 0, qy, -k)
    return np.sign(k) * _length(np.maximum(wx, 0), np.maximum(wy, 0))


def _heart(x, y, r):
    # the unit heart spans y in [0, 1.1] (tip at 0) and x in [-0.6, 0.6]; scale it to about 2 r tall
    s = 1.7 * r
    px, py = np.abs(x) / s, y / s + 0.55
    lobe = _length(px - 0.25, py - 0.75) - np.sqrt(2.0) / 4
    t = np.maximum(px + py, 0) * 0.5
    body = np.sqrt(np.minimum(px * px + (py - 1) ** 2, (px - t) ** 2 + (py - t) ** 2)) * np.sign(px - py)
    return np.where(py + px > 1, lobe, body) * s


SDF = {
    "circle": _circle,
    "square": _square,
    "triangle": _triangle,
    "star": _star,
    "ring": _ring,
    "cross": _cross,
    "heart": _heart,
}


def coverage(d: np.ndarray) -> np.ndarray:
    """Pixel coverage of the inside (d < 0) of a distance field in pixels."""
    return np.clip(0.5 - d, 0.0, 1.0)


def _band(u: np.ndarray, period: float) -> np.ndarray:
    """Signed distance in pixels to the edges of bands of width period/2 (positive inside a band)."""
    return (np.abs(u / period - np.floor(u / period) - 0.5) - 0.25) * period


def texture_mask(texture: str, x: np.ndarray, y: np.ndarray, period: float) -> np.ndarray | None:
    """Where the texture's second colour shows, in [0, 1]; None for a solid fill.

    Args:
        x, y: pixel-centre coordinates in the shape's frame, in pixels.  # [H, W] each
        period: the pattern's period in pixels.
    """
    if texture == "solid":
        return None
    if texture == "striped":
        return np.clip(0.5 + _band(y, period), 0.0, 1.0)
    if texture == "dotted":
        cx = x - np.round(x / period) * period
        cy = y - np.round(y / period) * period
        return coverage(_length(cx, cy) - 0.28 * period)
    if texture == "checkered":
        sx = np.clip(_band(x, period), -0.5, 0.5)
        sy = np.clip(_band(y, period), -0.5, 0.5)
        return 0.5 - 2.0 * sx * sy
    raise ValueError(f"unknown texture '{texture}'")


def shape_layer(
    shape: str,
    texture: str,
    rgb: np.ndarray,  # [3] float, 0-1
    rgb2: np.ndarray,  # [3] float, 0-1: the texture's second colour
    xs: np.ndarray,  # [W] pixel-centre x
    ys: np.ndarray,  # [H] pixel-centre y (down)
    centre: tuple[float, float],
    radius: float,
    angle: float,
) -> tuple[np.ndarray, np.ndarray]:
    """One shape as (alpha [H, W], fill [H, W, 3]) in float32: its coverage and its textured colour."""
    dx = xs[None, :] - np.float32(centre[0])
    dy = np.float32(centre[1]) - ys[:, None]  # y up in the shape's frame
    c, s = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    lx = c * dx + s * dy
    ly = c * dy - s * dx
    alpha = coverage(SDF[shape](lx, ly, np.float32(radius))).astype(np.float32, copy=False)
    t = texture_mask(texture, lx, ly, max(0.55 * radius, 4.0))
    if t is None:
        fill = np.broadcast_to(rgb.astype(np.float32), alpha.shape + (3,))
    else:
        fill = rgb[None, None, :] + t[..., None].astype(np.float32) * (rgb2 - rgb)[None, None, :]
    return alpha, fill
