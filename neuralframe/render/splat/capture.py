"""A capture-sized test scene: millions of Gaussians spread like a trained 3DGS capture of an unbounded
scene (a Mip-NeRF 360 garden or bicycle), for benchmarks and load tests that need one.

The bundled motorcycle (a real stereo capture, `stereo.py`) is the dense central object, densified: each
new Gaussian sits on the surface of a parent, flat along its normal, with the parent's colour plus detail.
Procedural parts surround it: a ground plane whose Gaussians grow and thin out with distance, clumps of
bushes and rocks, a sparse background shell tens of metres away (horizon and sky), and floaters near the
cameras. Per part, sizes are log-normal (over about three orders of magnitude in all), many Gaussians are
needle-like, opacities are bimodal (most near 0 or near 1), and the higher SH bands carry view-dependent
colour whose strength falls with the band, as in trained scenes.

World coordinates are the motorcycle's: OpenCV axes (y down), metres. Everything is vectorised over blocks
of Gaussians; each block draws from its own generator keyed by (seed, part, block), so a scene depends only
on its count, SH degree and seed.

    g = capture_scene(2_000_000, sh_degree=3, seed=0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from neuralframe.render.splat.gaussians import SH_C0, Gaussians, sh_coeffs

BLOCK = 1 << 17  # Gaussians made at a time (and the step of the progress callback)
# The parts and their shares of the Gaussians, in the order they are made.
PARTS = (("object", 0.50), ("ground", 0.22), ("clutter", 0.12), ("background", 0.15), ("floaters", 0.01))
BAND_STD = (0.07, 0.04, 0.025)  # spread of the SH coefficients of bands 1, 2 and 3 (before a part's gain)


@dataclass(frozen=True)
class World:
    """What the parts are placed by: the central object's Gaussians (as numpy arrays) and its extent."""

    means: np.ndarray  # [P, 3]
    rotations: np.ndarray  # [P, 3, 3] columns: the parent's axes, the third along its normal
    quats: np.ndarray  # [P, 4] normalised (w, x, y, z)
    sizes: np.ndarray  # [P, 3] standard deviations along the axes
    rgb: np.ndarray  # [P, 3]
    cdf: np.ndarray  # [P] cumulative surface area: parents are picked in proportion to it
    center: np.ndarray  # [3] the object's middle
    radius: float  # most of the object lies within this distance of `center`
    ground_y: float  # the ground's height under the object (y points down)
    children: float = 1.0  # the object's new Gaussians per parent

    @staticmethod
    def around(base: Gaussians, n_object: int = 0) -> "World":
        means = base.means.detach().double().numpy()
        quats = base.quats.detach().double().numpy()
        quats = quats / np.linalg.norm(quats, axis=1, keepdims=True)
        sizes = np.exp(base.scales.detach().double().numpy())
        center = np.median(means, 0)
        radius = float(np.quantile(np.linalg.norm(means - center, axis=1), 0.95))
        return World(means, quat_to_rotmat(quats), quats, sizes, base.sh[:, 0].detach().double().numpy() * SH_C0 + 0.5,
                     np.cumsum(sizes[:, 0] * sizes[:, 1]), center, max(radius, 1e-3),
                     float(np.quantile(means[:, 1], 0.99)), max(n_object / len(means), 1.0))


def part_counts(n: int) -> dict[str, int]:
    """How many of `n` Gaussians each part gets (the object takes the rounding)."""
    counts = {name: int(n * share) for name, share in PARTS[1:]}
    return {"object": n - sum(counts.values()), **counts}


def capture_scene(n: int, sh_degree: int = 3, seed: int = 0, base: Gaussians | None = None,
                  progress: Callable[[int, int], None] | None = None) -> Gaussians:
    """`n` Gaussians of SH degree `sh_degree` laid out like a capture around `base` (default: the bundled
    motorcycle), in a seeded random order. `progress(done, n)` is called after each block."""
    if base is None:
        from neuralframe.assets import asset
        from neuralframe.render.splat.formats import load

        base = load(asset("scenes", "motorcycle.ply"))
    counts = part_counts(n)
    world = World.around(base, counts["object"])
    k = sh_coeffs(sh_degree)
    means, quats, scales = (np.empty((n, c), np.float32) for c in (3, 4, 3))
    logits, sh = np.empty(n, np.float32), np.empty((n, k, 3), np.float32)
    order = np.random.default_rng([seed, 99]).permutation(n)  # trained scenes are stored in no spatial order
    done = 0
    for index, (name, count) in enumerate(counts.items()):
        make, opacity_mix, sh_gain = _PARTS[name]
        for block, start in enumerate(range(0, count, BLOCK)):
            m = min(BLOCK, count - start)
            rng = np.random.default_rng([seed, index, block])
            layout = np.random.default_rng([seed, 100 + index])  # what every block of a part shares (clump sites)
            at = order[done:done + m]
            p, q, s, rgb = make(rng, m, world, layout)
            means[at], quats[at], scales[at] = p, q, s
            logits[at] = bimodal_logits(rng, m, *opacity_mix)
            sh[at, 0] = (rgb - 0.5) / SH_C0
            if k > 1:
                sh[at, 1:] = sh_rest(rng, m, sh_degree, sh_gain)
            done += m
            if progress is not None:
                progress(done, n)
    t = torch.from_numpy
    return Gaussians(t(means), t(quats), t(scales), t(logits), t(sh))


# ---- the parts: each returns means [m, 3], quats [m, 4], log scales [m, 3] and colours [m, 3] ----

def _object(rng, m: int, world: World, layout) -> tuple:
    """The central object densified: new Gaussians on the surfaces of parents picked by area."""
    parent = np.minimum(np.searchsorted(world.cdf, rng.random(m) * world.cdf[-1]), len(world.cdf) - 1)
    local = rng.normal(size=(m, 3)) * np.array([0.8, 0.8, 0.5])
    offset = np.einsum("mij,mj->mi", world.rotations[parent], local * world.sizes[parent])
    means = world.means[parent] + offset
    quats = quat_mul(world.quats[parent], spin(rng, m))
    shrink = min(1.0, 1.6 / math.sqrt(world.children))  # a parent's area shared by its children
    size = np.log(np.sqrt(world.sizes[parent, 0] * world.sizes[parent, 1]) * shrink) + rng.normal(0, 0.55, m)
    rgb = world.rgb[parent] * (1 + rng.normal(0, 0.08, (m, 1))) + rng.normal(0, 0.025, (m, 3))
    return means, quats, surface_scales(rng, size, thin=0.05), rgb.clip(-0.05, 1.05)


def _ground(rng, m: int, world: World, layout) -> tuple:
    """The ground around the object: denser near it, its Gaussians growing with the distance."""
    r = world.radius * np.exp(rng.uniform(math.log(0.3), math.log(40.0), m))
    angle = rng.uniform(0, 2 * math.pi, m)
    x, z = world.center[0] + r * np.cos(angle), world.center[2] + r * np.sin(angle)
    bumps = 0.03 * world.radius * (np.sin(1.3 * x) * np.cos(0.9 * z) + 0.5 * np.sin(3.1 * x + 2.3 * z))
    y = world.ground_y + bumps + rng.normal(0, 0.002, m) * r
    normals = np.stack([rng.normal(0, 0.15, m), -np.ones(m), rng.normal(0, 0.15, m)], 1)
    size = np.log(0.01 * r) + rng.normal(0, 0.6, m)
    texture = 0.5 + 0.5 * np.sin(2.1 * x + 0.3) * np.sin(1.7 * z + 1.1) * np.cos(0.37 * (x - z))
    grass, dirt = np.array([0.24, 0.38, 0.13]), np.array([0.46, 0.38, 0.28])
    rgb = grass + texture[:, None] * (dirt - grass) + rng.normal(0, 0.05, (m, 3))
    rgb *= 1 - 0.45 * np.exp(-((r / world.radius) ** 2))[:, None]  # the object's shadow
    return np.stack([x, y, z], 1), frame_quats(rng, normals), surface_scales(rng, size, thin=0.04), rgb


def _clutter(rng, m: int, world: World, layout) -> tuple:
    """Bushes and rocks on the ground around the cameras: the surfaces of 48 half-buried ellipsoids."""
    sites = 48
    dist = world.radius * np.exp(layout.uniform(math.log(4.0), math.log(20.0), sites))
    angle = layout.uniform(0, 2 * math.pi, sites)
    axes = (dist / 10)[:, None] * layout.uniform(0.5, 1.6, (sites, 3))
    centers = np.stack([world.center[0] + dist * np.cos(angle), world.ground_y - 0.3 * axes[:, 1],
                        world.center[2] + dist * np.sin(angle)], 1)
    rock = layout.random(sites) < 0.3
    tint = np.where(rock[:, None], layout.uniform(0.35, 0.6, (sites, 1)) * np.array([1.0, 0.97, 0.9]),
                    layout.uniform(0.6, 1.2, (sites, 1)) * np.array([0.17, 0.32, 0.12]))
    area = (axes[:, 0] * axes[:, 1] + axes[:, 1] * axes[:, 2] + axes[:, 0] * axes[:, 2])
    site = np.minimum(np.searchsorted(np.cumsum(area), rng.random(m) * area.sum()), sites - 1)
    d = rng.normal(size=(m, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    d[:, 1] = -np.abs(d[:, 1])  # the upper half (y down): the rest is under the ground
    depth = np.where(rock[site], 1.0, rng.uniform(0.8, 1.0, m))[:, None]  # foliage has some thickness
    means = centers[site] + axes[site] * d * depth
    normals = d / axes[site]
    size = np.log(0.006 * dist[site]) + rng.normal(0, 0.7, m)
    rgb = tint[site] * (1 + rng.normal(0, 0.2, (m, 1))) + rng.normal(0, 0.03, (m, 3))
    return means, frame_quats(rng, normals), surface_scales(rng, size, thin=np.where(rock[site], 0.05, 0.3)), rgb


def _background(rng, m: int, world: World, layout) -> tuple:
    """The distant shell, 35 to 110 object radii away: a horizon of trees and buildings, and the sky."""
    dist = world.radius * np.exp(rng.uniform(math.log(35.0), math.log(110.0), m))
    azimuth = rng.uniform(0, 2 * math.pi, m)
    sky = rng.random(m) < 0.4
    elevation = np.where(sky, np.radians(5 + 80 * rng.random(m) ** 2), np.radians(np.clip(rng.normal(3, 6, m), -4, 30)))
    direction = np.stack([np.cos(elevation) * np.cos(azimuth), -np.sin(elevation), np.cos(elevation) * np.sin(azimuth)], 1)
    means = world.center + dist[:, None] * direction
    size = np.log(0.008 * dist) + rng.normal(0, 0.5, m)
    high = np.sin(elevation)[:, None]
    sky_rgb = np.array([0.80, 0.86, 0.95]) + high * (np.array([0.45, 0.62, 0.90]) - np.array([0.80, 0.86, 0.95]))
    cloud = (rng.random(m) < 0.25)[:, None]
    sky_rgb = np.where(cloud, np.array([0.93, 0.93, 0.95]), sky_rgb)
    land_rgb = rng.uniform(0.5, 1.1, (m, 1)) * np.where(rng.random((m, 1)) < 0.6, [0.2, 0.3, 0.16], [0.45, 0.44, 0.42])
    rgb = np.where(sky[:, None], sky_rgb, land_rgb) + rng.normal(0, 0.03, (m, 3))
    return means, frame_quats(rng, -direction), surface_scales(rng, size, thin=np.where(sky, 0.4, 0.08)), rgb


def _floaters(rng, m: int, world: World, layout) -> tuple:
    """Floaters: faint, roundish Gaussians in the air around the object, short of the cameras (1.7 radii)."""
    d = rng.normal(size=(m, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    d[:, 1] = -np.abs(d[:, 1]) * 0.6
    r = world.radius * rng.uniform(0.9, 1.4, m)
    means = world.center + r[:, None] * d
    size = np.log(0.003 * r) + rng.normal(0, 0.7, m)
    rgb = rng.uniform(0.2, 0.8, (m, 1)) + rng.normal(0, 0.08, (m, 3))
    return means, frame_quats(rng, rng.normal(size=(m, 3))), surface_scales(rng, size, thin=0.5, needles=0.0), rgb


# name: (the part, its opacity mixture (share near 1, share near 0; the rest in between), SH gain)
_PARTS = {"object": (_object, (0.55, 0.30), 1.0), "ground": (_ground, (0.60, 0.28), 0.6),
          "clutter": (_clutter, (0.50, 0.30), 0.8), "background": (_background, (0.70, 0.18), 0.4),
          "floaters": (_floaters, (0.0, 0.92), 0.3)}


# ---- shared by the parts ----

def surface_scales(rng, log_size: np.ndarray, thin, needles: float = 0.25) -> np.ndarray:  # [m] -> [m, 3]
    """Log scales of flat Gaussians about `log_size`: stretched along the surface (a share `needles` of
    them 4 to 20 times longer than wide) and `thin` (a ratio, log-normal about it) along the normal."""
    m = len(log_size)
    stretch = np.abs(rng.normal(0, 0.45, m)) + np.where(rng.random(m) < needles, rng.uniform(1.4, 3.0, m), 0.0)
    sx, sy = log_size + 0.5 * stretch, log_size - 0.5 * stretch
    sz = np.minimum(sy + np.log(thin) + rng.normal(0, 0.7, m), sy)
    return np.stack([sx, sy, sz], 1)


def bimodal_logits(rng, m: int, high: float, low: float) -> np.ndarray:  # [m]
    """Opacity logits: a share `high` nearly opaque, `low` nearly transparent (above the 0.005 at which
    training prunes), the rest spread in between."""
    u = rng.random(m)
    return np.where(u < high, rng.normal(4.6, 1.3, m).clip(2.0, 9.0),
                    np.where(u < high + low, rng.normal(-4.0, 0.8, m).clip(-5.2, -2.2), rng.uniform(-2.5, 2.5, m)))


def sh_rest(rng, m: int, degree: int, gain: float) -> np.ndarray:  # [m, K - 1, 3]
    """SH coefficients of bands 1..`degree`: mostly the same in the three channels (view-dependent
    brightness, highlights), weaker in each higher band, and heavy-tailed: normal, with a log-normal
    strength per Gaussian (some Gaussians are much more view-dependent than others)."""
    std = np.concatenate([np.full(2 * band + 1, BAND_STD[band - 1]) for band in range(1, degree + 1)])
    amp = (gain * np.exp(rng.normal(0, 0.7, (m, 1, 1))) * std[None, :, None]).astype(np.float32)
    z = rng.standard_normal((m, len(std), 4), dtype=np.float32)
    return amp * (0.9 * z[..., :1] + 0.3 * z[..., 1:])


def spin(rng, m: int) -> np.ndarray:  # [m, 4]
    """Rotations about the local z axis by random angles."""
    half = rng.uniform(0, math.pi, m)
    return np.stack([np.cos(half), np.zeros(m), np.zeros(m), np.sin(half)], 1)


def frame_quats(rng, normals: np.ndarray) -> np.ndarray:  # normals [m, 3] -> [m, 4]
    """Rotations taking the local z axis to `normals` (need not be unit), with a random spin about it."""
    n = normals / np.linalg.norm(normals, axis=1, keepdims=True)
    # The shortest arc from z to n: (1 + z.n, z x n); at n = -z, half a turn about x.
    q = np.stack([1 + n[:, 2], -n[:, 1], n[:, 0], np.zeros(len(n))], 1)
    q[n[:, 2] < -1 + 1e-9] = (0.0, 1.0, 0.0, 0.0)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return quat_mul(q, spin(rng, len(n)))


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # [m, 4] x [m, 4] -> [m, 4] (w, x, y, z)
    aw, ax, ay, az = a.T
    bw, bx, by, bz = b.T
    return np.stack([aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw], 1)


def quat_to_rotmat(q: np.ndarray) -> np.ndarray:  # [m, 4] unit (w, x, y, z) -> [m, 3, 3]
    w, x, y, z = q.T
    return np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
                     2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                     2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], 1).reshape(-1, 3, 3)


# ---- what a capture scene comes with: its statistics, cameras and card, and the files ----

def statistics(g: Gaussians, center, radius: float, sample: int = 200_000) -> dict:
    """What makes `g` capture-like, measured on (at most `sample` of) its Gaussians: sizes (the largest
    standard deviation, metres), flat and needle-like shares, opacities, distances from `center` in units
    of the object's `radius`, and the RMS of each SH band."""
    n = g.n
    pick = torch.randperm(n, generator=torch.Generator().manual_seed(0))[:sample] if n > sample else slice(None)
    sizes = g.scales[pick].double().exp().sort(1).values  # [m, 3] ascending
    big = sizes[:, 2]
    p1, p50, p99 = (float(v) for v in torch.quantile(big, torch.tensor([0.01, 0.5, 0.99], dtype=torch.float64)))
    opacity = torch.sigmoid(g.opacities[pick].double())
    dist = (g.means[pick].double() - torch.as_tensor(center, dtype=torch.float64)).norm(dim=1) / radius
    q = torch.quantile(dist, torch.tensor([0.1, 0.5, 0.9, 0.99], dtype=torch.float64)).tolist()
    bands = [g.sh[pick, band * band:(band + 1) ** 2].double().pow(2).mean().sqrt().item()
             for band in range(1, g.sh_degree + 1)]
    r = lambda v: float(f"{v:.4g}")  # noqa: E731
    return {
        "gaussians": n, "sh_degree": g.sh_degree,
        "size_m": {"p1": r(p1), "p50": r(p50), "p99": r(p99)}, "size_orders": r(math.log10(p99 / p1)),
        "flat_share": r(float((sizes[:, 0] / big < 0.1).double().mean())),
        "needle_share": r(float((big / sizes[:, 1] > 4).double().mean())),
        "opacity": {"below_0.1": r(float((opacity < 0.1).double().mean())),
                    "above_0.9": r(float((opacity > 0.9).double().mean())), "median": r(float(opacity.median()))},
        "distance_radii": {"p10": r(q[0]), "p50": r(q[1]), "p90": r(q[2]), "p99": r(q[3])},
        "within_object": r(float((dist <= 1).double().mean())),
        "sh_rms_by_band": [r(b) for b in bands],
    }


def capture_cameras(world: World, width: int = 1280, height: int = 720, fov_x_deg: float = 60.0) -> list:
    """Eight cameras on an arc in front of the object (the side its capture saw), 15 degrees above it,
    all looking at its middle; the first straight from the front."""
    from neuralframe.render.camera import Camera, intrinsics

    K = intrinsics(width, height, fov_x_deg)
    d, up = 1.7 * world.radius, math.sin(math.radians(15))
    cams = []
    for azimuth in (0, -15, 15, -30, 30, -45, 45, 0):
        a = math.radians(azimuth)
        lift = up * (2.0 if len(cams) == 7 else 1.0)  # the last one from higher up
        eye = world.center + d * np.array([math.sin(a), -lift, -math.cos(a)])
        cams.append(Camera.look_at(eye.tolist(), world.center.tolist(), K, width, height))
    return cams


def capture_bytes(n: int, sh_degree: int) -> int:
    """The memory making and writing `n` Gaussians takes at its peak: the Gaussians, the file's bytes
    and a block's working arrays."""
    k = sh_coeffs(sh_degree)
    return n * 4 * ((11 + 3 * k) + (14 + 3 * k)) + BLOCK * 8 * 200


def check_capture_memory(n: int, sh_degree: int) -> None:
    """An InputError when making and writing `n` Gaussians will not fit in memory (`backend.memory`)."""
    from neuralframe.backend.memory import check_allocation

    check_allocation(capture_bytes(n, sh_degree), f"a capture scene of {n:,} Gaussians",
                     "make fewer Gaussians, or use a machine with more memory")


def write_capture(out, n: int, sh_degree: int = 3, seed: int = 0,
                  progress: Callable[[int, int], None] | None = None) -> dict:
    """Make a capture scene and write it as an INRIA 3DGS .ply at `out` (under a temporary name, then
    renamed), with its cameras (`NAME.cameras.json`, so viewers start on the object) and its card
    (`NAME.json`: the command, the parts, the statistics). Returns the card."""
    import json
    import time
    from pathlib import Path

    from neuralframe.assets import asset
    from neuralframe.render.splat.formats import load, ply
    from neuralframe.render.splat.formats.common import write_atomic

    path = Path(out)
    check_capture_memory(n, sh_degree)
    start = time.perf_counter()
    base = load(asset("scenes", "motorcycle.ply"))
    g = capture_scene(n, sh_degree, seed, base=base, progress=progress)
    write_atomic(path, ply.encode(g, str(path)))
    world = World.around(base, part_counts(n)["object"])
    cameras = path.with_name(f"{path.stem}.cameras.json")
    write_atomic(cameras, json.dumps([c.to_dict() for c in capture_cameras(world)], indent=1).encode())
    card = {
        "scene": path.name,
        "command": f"neuralframe data capture-scene --out {path.as_posix()} --gaussians {n} "
                   f"--sh-degree {sh_degree} --seed {seed}",
        "function": "neuralframe.render.splat.capture.capture_scene",
        "made_from": "assets/scenes/motorcycle.ply (card: assets/scenes/motorcycle.json), densified as the "
                     "central object, and procedural ground, clutter, background shell and floaters",
        "parts": part_counts(n),
        "coordinates": "the motorcycle's: OpenCV axes (x right, y down, z forward), metres",
        "cameras": cameras.name,
        "object": {"center": [round(float(v), 4) for v in world.center], "radius": round(world.radius, 4)},
        "seconds": round(time.perf_counter() - start, 1),
        "file_bytes": path.stat().st_size,
        "statistics": statistics(g, world.center, world.radius),
    }
    write_atomic(path.with_suffix(".json"), (json.dumps(card, indent=2) + "\n").encode())
    return card
