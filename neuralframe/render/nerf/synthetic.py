"""A procedural 3D object, sphere-traced by our own code, for the synthetic NeRF dataset.

The object sits inside radius 1.3 around the origin (z up, as Blender scenes): a bumpy, checkered
sphere, a tilted striped torus around it and a rounded pedestal with grid lines. Shading is ambient +
diffuse + a Blinn-Phong highlight, so colours change with the viewing direction. Each pixel averages
a 2x2 grid of rays, giving anti-aliased RGBA (straight colour, alpha = coverage) like Blender's.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

BOUND = 1.3  # radius of a sphere enclosing the object
_LIGHT = np.array([0.45, -0.35, 0.82]) / np.linalg.norm([0.45, -0.35, 0.82])
_TORUS_TILT = 0.45  # radians about the x axis


@njit(cache=True, inline="always")
def _sphere(x, y, z):
    r = math.sqrt(x * x + y * y + (z - 0.1) ** 2)
    bumps = 0.025 * math.sin(9.0 * x) * math.sin(9.0 * y) * math.sin(9.0 * z)
    return r - 0.62 + bumps


@njit(cache=True, inline="always")
def _torus(x, y, z):
    c, s = math.cos(_TORUS_TILT), math.sin(_TORUS_TILT)
    yy = c * y + s * (z - 0.1)
    zz = -s * y + c * (z - 0.1)
    q = math.sqrt(x * x + yy * yy) - 0.92
    return math.sqrt(q * q + zz * zz) - 0.13


@njit(cache=True, inline="always")
def _pedestal(x, y, z):
    qx = abs(x) - 0.55
    qy = abs(y) - 0.55
    qz = abs(z + 0.82) - 0.12
    ox, oy, oz = max(qx, 0.0), max(qy, 0.0), max(qz, 0.0)
    return math.sqrt(ox * ox + oy * oy + oz * oz) + min(max(qx, max(qy, qz)), 0.0) - 0.06


@njit(cache=True)
def _sdf(x, y, z):
    a = _sphere(x, y, z)
    b = _torus(x, y, z)
    c = _pedestal(x, y, z)
    if a <= b and a <= c:
        return a, 0
    if b <= c:
        return b, 1
    return c, 2


@njit(cache=True)
def _albedo(part, x, y, z):
    if part == 0:  # checkered sphere in spherical coordinates, with thin latitude lines
        theta = math.atan2(y, x)
        phi = math.acos(max(-1.0, min(1.0, (z - 0.1) / 0.62)))
        check = (int(math.floor(theta * 12.0 / math.pi)) + int(math.floor(phi * 8.0 / math.pi))) & 1
        if check:
            r, g, b = 0.85, 0.25, 0.15
        else:
            r, g, b = 0.95, 0.85, 0.35
        if abs(math.sin(phi * 24.0)) < 0.12:
            r, g, b = 0.15, 0.12, 0.3
        return r, g, b
    if part == 1:  # torus: hue around the ring, dark stripes across it
        angle = math.atan2(y, x)
        r = 0.5 + 0.45 * math.cos(angle)
        g = 0.5 + 0.45 * math.cos(angle - 2.094)
        b = 0.5 + 0.45 * math.cos(angle + 2.094)
        if math.sin(angle * 16.0) > 0.6:
            r, g, b = 0.1 * r, 0.1 * g, 0.1 * b
        return r, g, b
    # pedestal: grey-blue with a grid of lines on its top
    u = x * 5.0
    v = y * 5.0
    line = abs(u - math.floor(u + 0.5)) < 0.07 or abs(v - math.floor(v + 0.5)) < 0.07
    if line:
        return 0.9, 0.9, 0.95
    return 0.25, 0.35, 0.55


@njit(cache=True)
def _shade(ox, oy, oz, dx, dy, dz, light):
    """Sphere-trace one ray: returns (r, g, b, hit)."""
    # the enclosing sphere bounds the search
    bq = ox * dx + oy * dy + oz * dz
    cq = ox * ox + oy * oy + oz * oz - BOUND * BOUND
    disc = bq * bq - cq
    if disc <= 0.0:
        return 0.0, 0.0, 0.0, 0.0
    sq = math.sqrt(disc)
    t = max(-bq - sq, 0.0)
    t_end = -bq + sq
    for _ in range(160):
        x, y, z = ox + t * dx, oy + t * dy, oz + t * dz
        dist, part = _sdf(x, y, z)
        if dist < 2e-4:
            e = 1e-3
            nx = _sdf(x + e, y, z)[0] - _sdf(x - e, y, z)[0]
            ny = _sdf(x, y + e, z)[0] - _sdf(x, y - e, z)[0]
            nz = _sdf(x, y, z + e)[0] - _sdf(x, y, z - e)[0]
            nn = math.sqrt(nx * nx + ny * ny + nz * nz) + 1e-12
            nx, ny, nz = nx / nn, ny / nn, nz / nn
            ar, ag, ab = _albedo(part, x, y, z)
            diffuse = max(0.0, nx * light[0] + ny * light[1] + nz * light[2])
            # Blinn-Phong highlight: the view-dependent part of the colour
            hx, hy, hz = light[0] - dx, light[1] - dy, light[2] - dz
            hn = math.sqrt(hx * hx + hy * hy + hz * hz) + 1e-12
            spec = max(0.0, (nx * hx + ny * hy + nz * hz) / hn) ** 24
            shine = 0.1 if part == 2 else 0.45
            fill = 0.5 + 0.5 * nz  # soft sky light from above
            r = ar * (0.2 + 0.2 * fill + 0.65 * diffuse) + shine * spec
            g = ag * (0.2 + 0.2 * fill + 0.65 * diffuse) + shine * spec
            b = ab * (0.2 + 0.2 * fill + 0.65 * diffuse) + shine * spec
            return min(r, 1.0), min(g, 1.0), min(b, 1.0), 1.0
        t += 0.85 * dist  # the bumps make the distance only approximately Lipschitz
        if t > t_end:
            break
    return 0.0, 0.0, 0.0, 0.0


@njit(parallel=True, cache=True)
def _render(c2w, focal, cx, cy, width, height, light, out):
    # c2w: OpenGL camera-to-world (x right, y up, looking down -z)
    for row in prange(height):
        for col in range(width):
            r = g = b = a = 0.0
            for sub in range(4):
                u = col + 0.25 + 0.5 * (sub & 1)
                v = row + 0.25 + 0.5 * (sub >> 1)
                xc = (u - cx) / focal
                yc = -(v - cy) / focal
                zc = -1.0
                dx = c2w[0, 0] * xc + c2w[0, 1] * yc + c2w[0, 2] * zc
                dy = c2w[1, 0] * xc + c2w[1, 1] * yc + c2w[1, 2] * zc
                dz = c2w[2, 0] * xc + c2w[2, 1] * yc + c2w[2, 2] * zc
                n = math.sqrt(dx * dx + dy * dy + dz * dz)
                sr, sg, sb, sa = _shade(c2w[0, 3], c2w[1, 3], c2w[2, 3], dx / n, dy / n, dz / n, light)
                r += sr * sa
                g += sg * sa
                b += sb * sa
                a += sa
            if a > 0:
                out[row, col, 0] = r / a
                out[row, col, 1] = g / a
                out[row, col, 2] = b / a
            else:
                out[row, col, 0] = out[row, col, 1] = out[row, col, 2] = 0.0
            out[row, col, 3] = a / 4.0


def render_view(c2w_gl: np.ndarray, focal: float, width: int, height: int) -> np.ndarray:
    """RGBA float32 [H, W, 4] (straight colour) of the object from an OpenGL camera-to-world matrix."""
    out = np.empty((height, width, 4), np.float32)
    _render(np.ascontiguousarray(c2w_gl, np.float64), float(focal), width / 2.0, height / 2.0, width, height,
            _LIGHT.astype(np.float64), out)
    return out


def look_at_gl(eye: np.ndarray, target=(0.0, 0.0, 0.0), up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """OpenGL camera-to-world [4, 4] at `eye` looking at `target` with world `up` (z up)."""
    eye = np.asarray(eye, np.float64)
    back = eye - np.asarray(target, np.float64)
    back /= np.linalg.norm(back)
    right = np.cross(np.asarray(up, np.float64), back)
    if np.linalg.norm(right) < 1e-8:  # looking straight up or down
        right = np.array([1.0, 0.0, 0.0])
    right /= np.linalg.norm(right)
    true_up = np.cross(back, right)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, true_up, back, eye
    return c2w


def sphere_poses(n: int, radius: float, rng: np.random.Generator, lower: float = -0.35) -> list[np.ndarray]:
    """`n` cameras spread over the sphere (Fibonacci lattice, randomly rotated), looking at the origin.

    Elevations go from `lower` (sine of the lowest elevation: slightly below the horizon) to the top.
    """
    golden = math.pi * (3.0 - math.sqrt(5.0))
    offset = rng.uniform(0, 2 * math.pi)
    poses = []
    for i in range(n):
        z = 1.0 - (i + 0.5) / n * (1.0 - lower)
        r = math.sqrt(max(0.0, 1.0 - z * z))
        phi = offset + golden * i
        eye = radius * np.array([r * math.cos(phi), r * math.sin(phi), z])
        poses.append(look_at_gl(eye))
    return poses
