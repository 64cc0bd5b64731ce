"""Orbit math: a camera on a sphere around a target, placed by azimuth, elevation and distance.

    state = OrbitState.from_camera(camera, center, radius, up)   # the orbit a camera sits on
    cam = replace(state, azimuth=state.azimuth + 10).camera(960, 540, up)
    path = orbit(center, 3.0, 120, K, 960, 540)                   # a full circle of cameras

Azimuth 0 is on the -z side of the target (in front of it for an OpenCV world whose cameras look along
+z), azimuth 90 a quarter turn around `up`; elevation is the angle above the plane orthogonal to `up`.
The viewer's controls, `neuralframe render`'s paths and the scenes' framing views all place cameras here.
Importing this module is cheap: torch and `Camera` load on first use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from neuralframe.render.camera import Camera

# World "up" for scenes in the OpenCV/COLMAP convention (y points down), which all bundled scenes use.
DEFAULT_UP = (0.0, -1.0, 0.0)


def orbit_basis(up=DEFAULT_UP) -> tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]:  # 3 x [3]
    """(up, a, b): unit `up` and an orthonormal basis (a, b) of the plane orthogonal to it, with b the
    direction of azimuth 0 (towards -z where possible) and a the direction of azimuth 90."""
    import torch

    u = torch.as_tensor(up, dtype=torch.float64)
    u = u / torch.linalg.norm(u)
    ref = torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64)
    if abs(float(ref @ u)) > 0.99:
        ref = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    b = ref - (ref @ u) * u
    b = b / torch.linalg.norm(b)
    return u, torch.linalg.cross(u, b), b


def orbit_eye(center, distance: float, azimuth_deg: float, elevation_deg: float,
              up=DEFAULT_UP) -> "torch.Tensor":  # [3]
    """The eye position at (azimuth, elevation, distance) around `center`."""
    import torch

    c = torch.as_tensor(center, dtype=torch.float64)
    u, a, b = orbit_basis(up)
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    direction = math.cos(el) * (math.cos(az) * b + math.sin(az) * a) + math.sin(el) * u
    return c + distance * direction


def framing_distance(radius: float, width: int, height: int, fov_x_deg: float) -> float:
    """How far from its centre a camera sees a sphere of `radius` whole (with a 10% margin), in the
    narrower of the two directions of a `width` x `height` view."""
    from neuralframe.render.camera import intrinsics

    K = intrinsics(width, height, fov_x_deg)
    fov_min = 2.0 * math.atan(0.5 * min(width, height) / float(K[0, 0]))
    return 1.1 * radius / math.sin(fov_min / 2.0)


@dataclass(frozen=True)
class OrbitState:
    """Where an orbiting camera is: around `target`, at `distance`, with a horizontal field of view."""

    target: tuple[float, float, float]
    azimuth: float  # degrees; 0 looks along +z
    elevation: float  # degrees, in [-89, 89]
    distance: float
    fov_x: float  # degrees

    @classmethod
    def framing(cls, center, radius: float, width: int, height: int, fov_x: float = 60.0,
                elevation: float = 10.0) -> "OrbitState":
        """The state at azimuth 0 whose view shows a sphere of `radius` around `center` whole."""
        return cls(center, 0.0, elevation, framing_distance(radius, width, height, fov_x), fov_x)

    @classmethod
    def from_camera(cls, camera: "Camera", center, radius: float, up=DEFAULT_UP) -> "OrbitState":
        """The orbit `camera` sits on: around the point it looks at, at the depth of `center` (at least
        a tenth of `radius` in front of it)."""
        import torch

        forward = camera.R[2]  # camera z axis in world coordinates
        eye = camera.position
        c = torch.as_tensor(center, dtype=torch.float64)
        depth = max(float((c - eye) @ forward), 0.1 * radius)
        target = eye + depth * forward
        u, a, b = orbit_basis(up)
        d = (eye - target) / depth
        elevation = math.degrees(math.asin(max(-1.0, min(1.0, float(d @ u)))))
        azimuth = math.degrees(math.atan2(float(d @ a), float(d @ b)))
        return cls(tuple(float(v) for v in target), azimuth, elevation, depth, math.degrees(camera.fov_x))

    def camera(self, width: int, height: int, up=DEFAULT_UP) -> "Camera":
        """The camera of this state for a `width` x `height` view, looking at the target."""
        from neuralframe.render.camera import Camera, intrinsics, look_at

        eye = orbit_eye(self.target, self.distance, self.azimuth, self.elevation, up)
        K = intrinsics(width, height, self.fov_x)
        near = max(1e-3, 1e-3 * self.distance)
        return Camera(look_at(eye, self.target, up), K, width, height, near=near)


def orbit(center, radius: float, n: int, K, width: int, height: int, *, elevation_deg: float = 15.0,
          start_deg: float = 0.0, sweep_deg: float = 360.0, up=DEFAULT_UP, **kw) -> list["Camera"]:
    """`n` cameras on a circle of `radius` around `center`, all looking at it.

    `sweep_deg` < 360 gives an arc from `start_deg`, e.g. a gentle wobble around a view.
    """
    import torch

    from neuralframe.render.camera import Camera

    center = torch.as_tensor(center, dtype=torch.float64)
    up_v, _, _ = orbit_basis(up)
    steps = n if sweep_deg >= 360.0 else max(n - 1, 1)
    return [Camera.look_at(orbit_eye(center, radius, start_deg + sweep_deg * i / steps, elevation_deg, up),
                           center, K, width, height, up=tuple(up_v.tolist()), **kw) for i in range(n)]
