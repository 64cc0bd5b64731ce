"""Pinhole cameras in the OpenCV convention, shared by every renderer (splats, NeRF).

A `Camera` is a world-to-camera matrix `viewmat` [4, 4] and pinhole intrinsics `K` [3, 3] for an
image of `width` x `height` pixels. Camera space is OpenCV's: x right, y down, z forward (points in
front of the camera have z > 0), and pixel (u, v) = (fx * x / z + cx, fy * y / z + cy) with the centre
of the top-left pixel at (0.5, 0.5). These are exactly gsplat's `viewmats` / `Ks` and COLMAP's
conventions. NeRF/Blender `transform_matrix` camera-to-world matrices (OpenGL: x right, y up,
z backward) convert with `Camera.from_opengl`.

Cameras travel as JSON (`Camera.to_dict`, `Camera.from_dict`, `load_cameras`): the viewer's `--camera`,
`neuralframe render --path` and the cameras stored beside a scene all use that one format.

Matrices are stored as float64 torch tensors on the CPU: cameras are tiny, and renderers do their
projection in float64 so that every implementation rounds it the same way.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from neuralframe.backend.checks import check_shape
from neuralframe.errors import InputError

# OpenGL/Blender camera axes (x right, y up, z backward) to OpenCV ones (x right, y down, z forward).
_GL_TO_CV = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))


def _matrix(value, shape: tuple[int, int], name: str) -> torch.Tensor:
    tensor = torch.as_tensor(value, dtype=torch.float64).detach().cpu()
    check_shape(tensor, shape, f"camera {name}")
    if not torch.isfinite(tensor).all():
        raise InputError(f"camera {name} has NaN or infinite values")
    return tensor.clone()


@dataclass(frozen=True, eq=False)
class Camera:
    """A pinhole camera: world-to-camera `viewmat` [4, 4] (OpenCV axes), intrinsics `K` [3, 3].

    Args:
        viewmat: world-to-camera rigid transform [4, 4]; the last row is (0, 0, 0, 1).
        K: intrinsics [3, 3] ((fx, 0, cx), (0, fy, cy), (0, 0, 1)) in pixels.
        width, height: image size in pixels.
        near, far: camera-space depths outside (near, far) are not rendered.
    """

    viewmat: torch.Tensor  # [4, 4]
    K: torch.Tensor  # [3, 3]
    width: int
    height: int
    near: float = 0.01
    far: float = 1e10

    def __post_init__(self) -> None:
        object.__setattr__(self, "viewmat", _matrix(self.viewmat, (4, 4), "viewmat"))
        object.__setattr__(self, "K", _matrix(self.K, (3, 3), "K"))
        if int(self.width) != self.width or int(self.height) != self.height or self.width < 1 or self.height < 1:
            raise InputError(f"camera image size must be positive integers, got {self.width}x{self.height}")
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))
        if not (0.0 < self.near < self.far):
            raise InputError(f"camera needs 0 < near < far, got near={self.near}, far={self.far}")
        if self.fx <= 0 or self.fy <= 0:
            raise InputError(f"camera focal lengths must be positive, got fx={self.fx}, fy={self.fy}")

    # ---- intrinsics ----
    @property
    def fx(self) -> float:
        return float(self.K[0, 0])

    @property
    def fy(self) -> float:
        return float(self.K[1, 1])

    @property
    def cx(self) -> float:
        return float(self.K[0, 2])

    @property
    def cy(self) -> float:
        return float(self.K[1, 2])

    @property
    def fov_x(self) -> float:
        """Horizontal field of view in radians."""
        return 2.0 * math.atan(0.5 * self.width / self.fx)

    # ---- extrinsics ----
    @property
    def R(self) -> torch.Tensor:  # [3, 3]
        return self.viewmat[:3, :3]

    @property
    def t(self) -> torch.Tensor:  # [3]
        return self.viewmat[:3, 3]

    @property
    def c2w(self) -> torch.Tensor:  # [4, 4]
        """Camera-to-world matrix (OpenCV axes)."""
        return torch.linalg.inv(self.viewmat)

    @property
    def position(self) -> torch.Tensor:  # [3]
        """The camera centre in world coordinates."""
        return -self.R.T @ self.t

    def to_opengl(self) -> torch.Tensor:  # [4, 4]
        """The camera-to-world matrix with OpenGL/Blender axes (NeRF `transform_matrix`)."""
        return self.c2w @ _GL_TO_CV

    # ---- constructors ----
    @classmethod
    def from_c2w(cls, c2w, K, width: int, height: int, **kw) -> "Camera":
        """From an OpenCV camera-to-world matrix [4, 4] (or [3, 4])."""
        c2w = _as_4x4(c2w, "c2w")
        return cls(torch.linalg.inv(c2w), K, width, height, **kw)

    @classmethod
    def from_opengl(cls, c2w_gl, K, width: int, height: int, **kw) -> "Camera":
        """From an OpenGL/Blender camera-to-world matrix (a NeRF `transform_matrix`)."""
        c2w = _as_4x4(c2w_gl, "transform_matrix") @ _GL_TO_CV
        return cls(torch.linalg.inv(c2w), K, width, height, **kw)

    @classmethod
    def look_at(cls, eye, target, K, width: int, height: int, up=(0.0, -1.0, 0.0), **kw) -> "Camera":
        """A camera at `eye` looking at `target`; `up` is the world direction that appears upward.

        The default up (0, -1, 0) suits OpenCV/COLMAP-style worlds, where y points down.
        """
        return cls(look_at(eye, target, up), K, width, height, **kw)

    # ---- derived cameras ----
    def resized(self, width: int, height: int) -> "Camera":
        """The same view at another resolution (intrinsics scaled per axis)."""
        sx, sy = width / self.width, height / self.height
        K = self.K.clone()
        K[0] *= sx
        K[1] *= sy
        return Camera(self.viewmat, K, width, height, self.near, self.far)

    def scaled(self, factor: float) -> "Camera":
        """The same view with the image size multiplied by `factor` (rounded, at least 1 pixel)."""
        return self.resized(max(1, round(self.width * factor)), max(1, round(self.height * factor)))

    def moved(self, viewmat) -> "Camera":
        """The same intrinsics with another world-to-camera matrix."""
        return Camera(viewmat, self.K, self.width, self.height, self.near, self.far)

    # ---- JSON ----
    def to_dict(self) -> dict:
        """The camera as JSON-ready values: {"viewmat": 4x4, "K": 3x3, "width", "height", "near", "far"}."""
        return {"viewmat": self.viewmat.tolist(), "K": self.K.tolist(), "width": self.width, "height": self.height,
                "near": self.near, "far": self.far}

    @classmethod
    def from_dict(cls, item, where: str = "") -> "Camera":
        """A camera from `to_dict`'s object (near and far optional), or from an INRIA 3DGS `cameras.json`
        entry ({"position", "rotation" (camera-to-world), "fx", "fy", "width", "height"}); errors name
        the camera `where` it came from."""
        what = f"camera {where}" if where else "camera"
        if not isinstance(item, dict):
            raise InputError(f"{what} must be an object with viewmat, K, width and height")
        inria = "viewmat" not in item and "rotation" in item
        keys = ("position", "rotation", "fx", "fy", "width", "height") if inria else ("viewmat", "K", "width", "height")
        missing = [k for k in keys if k not in item]
        if missing:
            raise InputError(f"{what} is missing {', '.join(missing)}")
        try:
            if inria:
                return _from_inria(item)
            return cls(item["viewmat"], item["K"], int(item["width"]), int(item["height"]),
                       near=float(item.get("near", 0.01)), far=float(item.get("far", 1e10)))
        except InputError as error:
            raise InputError(f"{what}: {error}") from None
        except (TypeError, ValueError, IndexError, RuntimeError) as error:
            raise InputError(f"{what}: {error}") from None

    def __repr__(self) -> str:
        pos = ", ".join(f"{v:.3g}" for v in self.position.tolist())
        return (f"Camera({self.width}x{self.height}, fx={self.fx:.4g}, fy={self.fy:.4g}, "
                f"cx={self.cx:.4g}, cy={self.cy:.4g}, position=({pos}))")


def load_cameras(path: str | os.PathLike) -> list[Camera]:
    """The cameras of a JSON file: a list of `Camera.to_dict` objects, or one (or INRIA 3DGS entries)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"camera file '{p}' does not exist")
    try:
        data = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"camera file '{p}' is not valid JSON ({error})") from None
    items = data if isinstance(data, list) else [data]
    return [Camera.from_dict(item, f"{p.name}[{i}]") for i, item in enumerate(items)]


def _from_inria(item: dict) -> Camera:
    c2w = torch.eye(4, dtype=torch.float64)
    c2w[:3, :3] = torch.tensor(item["rotation"], dtype=torch.float64)
    c2w[:3, 3] = torch.tensor(item["position"], dtype=torch.float64)
    w, h = int(item["width"]), int(item["height"])
    K = [[float(item["fx"]), 0.0, w / 2.0], [0.0, float(item["fy"]), h / 2.0], [0.0, 0.0, 1.0]]
    return Camera.from_c2w(c2w, K, w, h)


def intrinsics(width: int, height: int, fov_x_deg: float = 60.0, cx: float | None = None,
               cy: float | None = None) -> torch.Tensor:  # [3, 3]
    """Pinhole intrinsics with square pixels for a horizontal field of view in degrees."""
    if not 0.0 < fov_x_deg < 180.0:
        raise InputError(f"field of view must be in (0, 180) degrees, got {fov_x_deg}")
    f = 0.5 * width / math.tan(math.radians(fov_x_deg) / 2.0)
    cx = width / 2.0 if cx is None else cx
    cy = height / 2.0 if cy is None else cy
    return torch.tensor([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]], dtype=torch.float64)


def look_at(eye, target, up=(0.0, -1.0, 0.0)) -> torch.Tensor:  # [4, 4]
    """World-to-camera matrix (OpenCV axes) of a camera at `eye` looking at `target`."""
    eye = torch.as_tensor(eye, dtype=torch.float64)
    target = torch.as_tensor(target, dtype=torch.float64)
    up = torch.as_tensor(up, dtype=torch.float64)
    z = target - eye
    if torch.linalg.norm(z) < 1e-12:
        raise InputError("look_at: eye and target are the same point")
    z = z / torch.linalg.norm(z)
    # Image y points down, so camera y is the opposite of the world's up, made orthogonal to z.
    y = -(up - (up @ z) * z)
    if torch.linalg.norm(y) < 1e-9:
        raise InputError("look_at: the up direction is parallel to the viewing direction")
    y = y / torch.linalg.norm(y)
    x = torch.linalg.cross(y, z)
    R = torch.stack([x, y, z])  # rows: camera axes in world coordinates
    viewmat = torch.eye(4, dtype=torch.float64)
    viewmat[:3, :3] = R
    viewmat[:3, 3] = -R @ eye
    return viewmat


def interpolate(cameras: Sequence[Camera], n: int) -> list[Camera]:
    """`n` cameras along a path through `cameras` (positions linear, rotations slerped)."""
    if len(cameras) < 2:
        raise InputError("interpolate needs at least two cameras")
    out = []
    segments = len(cameras) - 1
    for i in range(n):
        s = i * segments / max(n - 1, 1)
        k = min(int(s), segments - 1)
        f = s - k
        c0, c1 = cameras[k], cameras[k + 1]
        R = _slerp_rot(c0.c2w[:3, :3], c1.c2w[:3, :3], f)
        p = (1 - f) * c0.position + f * c1.position
        c2w = torch.eye(4, dtype=torch.float64)
        c2w[:3, :3] = R
        c2w[:3, 3] = p
        out.append(Camera.from_c2w(c2w, (1 - f) * c0.K + f * c1.K, c0.width, c0.height,
                                   near=c0.near, far=c0.far))
    return out


def _slerp_rot(R0: torch.Tensor, R1: torch.Tensor, f: float) -> torch.Tensor:
    q0, q1 = rotmat_to_quat(R0), rotmat_to_quat(R1)
    dot = float(q0 @ q1)
    if dot < 0:
        q1, dot = -q1, -dot
    if dot > 0.9995:
        q = q0 + f * (q1 - q0)
    else:
        theta = math.acos(dot)
        q = (math.sin((1 - f) * theta) * q0 + math.sin(f * theta) * q1) / math.sin(theta)
    return quat_to_rotmat(q / torch.linalg.norm(q))


def quat_to_rotmat(q: torch.Tensor) -> torch.Tensor:  # [..., 4] (w, x, y, z) -> [..., 3, 3]
    """Rotation matrices of unit quaternions (w, x, y, z)."""
    w, x, y, z = q.unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]
    return torch.stack(rows, -1).reshape(q.shape[:-1] + (3, 3))


def rotmat_to_quat(R: torch.Tensor) -> torch.Tensor:  # [..., 3, 3] -> [..., 4] (w, x, y, z)
    """Unit quaternions (w, x, y, z) with w >= 0 of rotation matrices (Shepperd's method)."""
    m = R.reshape(-1, 3, 3)
    r00, r11, r22 = m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]
    # Four algebraically equal formulas; each is stable where its leading term is largest.
    cands = torch.stack([
        torch.stack([1 + r00 + r11 + r22, m[:, 2, 1] - m[:, 1, 2], m[:, 0, 2] - m[:, 2, 0], m[:, 1, 0] - m[:, 0, 1]], -1),
        torch.stack([m[:, 2, 1] - m[:, 1, 2], 1 + r00 - r11 - r22, m[:, 0, 1] + m[:, 1, 0], m[:, 0, 2] + m[:, 2, 0]], -1),
        torch.stack([m[:, 0, 2] - m[:, 2, 0], m[:, 0, 1] + m[:, 1, 0], 1 - r00 + r11 - r22, m[:, 1, 2] + m[:, 2, 1]], -1),
        torch.stack([m[:, 1, 0] - m[:, 0, 1], m[:, 0, 2] + m[:, 2, 0], m[:, 1, 2] + m[:, 2, 1], 1 - r00 - r11 + r22], -1),
    ], 1)  # [n, 4 candidates, 4]
    best = torch.stack([r00 + r11 + r22, r00, r11, r22], -1).argmax(-1)
    q = cands[torch.arange(m.shape[0]), best]
    q = q / q.norm(dim=-1, keepdim=True)
    q = torch.where(q[:, :1] < 0, -q, q)
    return q.reshape(R.shape[:-2] + (4,))


def _as_4x4(m, name: str) -> torch.Tensor:
    m = torch.as_tensor(m, dtype=torch.float64)
    if tuple(m.shape) == (3, 4):
        m = torch.cat([m, torch.tensor([[0.0, 0.0, 0.0, 1.0]], dtype=torch.float64)])
    check_shape(m, [[4, 4], [3, 4]], name)
    return m

