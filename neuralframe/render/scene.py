"""Scenes: what the viewer and `neuralframe render` draw, whatever the renderer behind them.

    scene = open_scene("bike.ply")              # .ply / .splat / .spz today; NeRF checkpoints register here too
    out = scene.render(camera)                  # RenderOutput(rgb, alpha, depth)
    cam = scene.initial_camera(1280, 720)       # frames the whole scene

A scene format registers an opener for its file extensions with `register_format`; the viewer never
branches on the kind of scene.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

from neuralframe.assets import asset
from neuralframe.errors import InputError
from neuralframe.render.orbit import DEFAULT_UP, framing_distance, orbit_eye

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from neuralframe.backend.runtime import Engine
    from neuralframe.render.camera import Camera
    from neuralframe.render.output import RenderOutput


@dataclass(frozen=True)
class Bounds:
    """A robust extent of a scene: its centre and a radius that holds most of it."""

    center: tuple[float, float, float]
    radius: float


class Scene(Protocol):
    name: str
    kind: str  # "splat", "nerf"
    up: tuple[float, float, float]

    def render(self, camera: "Camera", *, impl: str = "auto", background=None) -> "RenderOutput": ...

    def bounds(self) -> Bounds: ...

    def initial_camera(self, width: int, height: int, fov_x_deg: float = 60.0) -> "Camera": ...

    def describe(self) -> dict[str, Any]: ...

    def implementation(self, impl: str = "auto") -> str: ...


def frame_bounds(bounds: Bounds, width: int, height: int, fov_x_deg: float = 60.0, up=DEFAULT_UP,
                 azimuth_deg: float = 0.0, elevation_deg: float = 10.0) -> "Camera":
    """A camera looking at the centre from far enough away that the bounding sphere fits the view."""
    from neuralframe.render.camera import Camera, intrinsics

    K = intrinsics(width, height, fov_x_deg)
    distance = framing_distance(bounds.radius, width, height, fov_x_deg)
    eye = orbit_eye(bounds.center, distance, azimuth_deg, elevation_deg, up)
    near = max(1e-3, 0.01 * bounds.radius)
    return Camera.look_at(eye, bounds.center, K, width, height, up=up, near=near)


class SplatScene:
    """A Gaussian-splat scene file (.ply, .splat, .spz) rendered by `splat.rasterize`."""

    kind = "splat"

    def __init__(self, gaussians, name: str, up=DEFAULT_UP, cameras: list | None = None, path: Path | None = None):
        self.gaussians = gaussians
        self.name = name
        self.up = tuple(up)
        self.cameras = list(cameras or [])  # the capture's cameras, when the scene came with them
        self.path = path  # the scene file (its bytes key the level-of-detail cache), None for a scene made in memory
        self._bounds: Bounds | None = None
        self._levels = [gaussians]  # merged levels of detail, built on demand (`render.splat.lod`)
        self._levels_lock = threading.Lock()
        self._tree = None  # the level-of-detail hierarchy (`render.splat.hierarchy`), loaded or built on demand
        self._tree_lock = threading.Lock()

    @classmethod
    def load(cls, path: Path) -> "SplatScene":
        from neuralframe.render import splat

        return cls(splat.load(path), path.name, cameras=load_scene_cameras(path), path=path)

    def render(self, camera: "Camera", *, impl: str = "auto", background=None, level: int = 0) -> "RenderOutput":
        """Render from `camera`; `level` > 0 renders a merged level of detail (built first if it is not yet)."""
        from neuralframe.render import splat

        return splat.rasterize(self.detail(level), camera, background=background, impl=impl)

    def implementation(self, impl: str = "auto") -> str:
        from neuralframe.render import splat

        return splat.rasterize_op.name_for(impl, self.gaussians.device)

    def level_for(self, budget: int) -> int:
        """The coarsest level of detail needed to render at most `budget` Gaussians (0: all; no budget: 0)."""
        from neuralframe.render.splat.lod import level_for

        return level_for(self.gaussians.n, budget)

    def detail(self, level: int = 0):
        """The Gaussians of level `level` (0: the scene; each level merges the one before in pairs)."""
        if level < len(self._levels):
            return self._levels[level]
        from neuralframe.render.splat.lod import coarser

        with self._levels_lock:
            while len(self._levels) <= level:
                self._levels.append(coarser(self._levels[-1]).to(self.gaussians.device))
        return self._levels[level]

    def has_detail(self, level: int) -> bool:
        """Whether level `level` is built (rendering it now would not wait for `detail`)."""
        return level < len(self._levels)

    def hierarchy(self, progress: Callable[[float], None] | None = None, cache_dir: Path | None = None,
                  say: Callable[[str], None] | None = None):
        """The scene's level-of-detail hierarchy (`render.splat.hierarchy.Hierarchy`): loaded from the cache
        (`render.splat.hierarchy_cache`, keyed by the scene file's bytes) or built and cached, once; later
        calls return it at once. Thread-safe (one build at a time; others wait for it); interruptible
        (`render.interrupt`: a build stopped by `interruptible` raises `RenderInterrupted` and leaves nothing
        half-made: the next call starts again). `progress(fraction)` follows a build; `say(message)` hears
        about a damaged cache file or one that cannot be written."""
        if self._tree is not None:
            return self._tree
        from neuralframe.render.splat.hierarchy_cache import load_or_build

        with self._tree_lock:
            if self._tree is None:
                self._tree = load_or_build(self.gaussians, self.path, cache_dir, progress=progress, say=say)
        return self._tree

    def has_hierarchy(self) -> bool:
        """Whether `hierarchy()` would return at once (a cut would not wait for a load or a build)."""
        return self._tree is not None

    def cut(self, camera: "Camera", budget: int | None = None, error: float | None = None, *,
            sh_degree: int | None = None):
        """What to draw from `camera` under `budget` Gaussians (None: no limit) with merged nodes at most
        `error` pixels (None: `hierarchy.DEFAULT_ERROR`): a `hierarchy.Cut`. Loads or builds the hierarchy
        first if need be (see `hierarchy()`)."""
        from neuralframe.render.splat.hierarchy import DEFAULT_ERROR

        return self.hierarchy().cut(camera, budget, DEFAULT_ERROR if error is None else error, sh_degree=sh_degree,
                                    device=self.gaussians.device)

    def render_cut(self, camera: "Camera", budget: int | None = None, error: float | None = None, *,
                   impl: str = "auto", background=None, sh_degree: int | None = None):
        """Render the cut `cut(camera, budget, error)`: returns (RenderOutput, Cut). A cut of every leaf renders
        the scene itself, so it is the same picture as `render(camera)`."""
        from neuralframe.render import splat

        c = self.cut(camera, budget, error, sh_degree=sh_degree)
        g = self.gaussians if c.full else c.gaussians
        return splat.rasterize(g, camera, background=background, impl=impl, sh_degree=sh_degree), c

    def bounds(self) -> Bounds:
        if self._bounds is None:
            self._bounds = robust_bounds(self.gaussians.means)
        return self._bounds

    def initial_camera(self, width: int, height: int, fov_x_deg: float = 60.0) -> "Camera":
        """The first capture camera (fitted to the window) when the scene has cameras, else a framing view."""
        if self.cameras:
            return fit_camera(self.cameras[0], width, height)
        return frame_bounds(self.bounds(), width, height, fov_x_deg, self.up)

    def describe(self) -> dict[str, Any]:
        return {"kind": "splat", "name": self.name, "gaussians": self.gaussians.n,
                "sh_degree": self.gaussians.sh_degree}


def fit_camera(camera: "Camera", width: int, height: int) -> "Camera":
    """The same view in a `width` x `height` window: focal length scaled to keep the vertical field of
    view, principal point centred (wider windows see more at the sides, nothing is stretched)."""
    import torch

    from neuralframe.render.camera import Camera

    if (width, height) == (camera.width, camera.height):
        return camera
    s = height / camera.height
    K = torch.tensor([[camera.fx * s, 0.0, width / 2.0], [0.0, camera.fy * s, height / 2.0], [0.0, 0.0, 1.0]],
                     dtype=torch.float64)
    return Camera(camera.viewmat, K, width, height, camera.near, camera.far)


def load_scene_cameras(path: Path) -> list:
    """Cameras stored beside a scene: `NAME.cameras.json` (`Camera.to_dict` objects) or `cameras.json` in
    the INRIA 3DGS layout (`Camera.from_dict` reads both). A broken camera file is an error naming it;
    no file means no cameras."""
    from neuralframe.render.camera import load_cameras

    own = path.with_name(f"{path.stem}.cameras.json")
    inria = path.parent / "cameras.json"
    source = own if own.is_file() else inria if inria.is_file() else None
    return [] if source is None else load_cameras(source)


def robust_bounds(points: "torch.Tensor") -> Bounds:  # points [N, 3]
    """Centre = per-axis median; radius = the 95th percentile of distances (stray splats ignored)."""
    import torch

    if points.numel() == 0:
        raise InputError("the scene is empty: nothing to frame")
    pts = points.detach().float().cpu()
    if pts.shape[0] > 200_000:
        pts = pts[torch.randperm(pts.shape[0], generator=torch.Generator().manual_seed(0))[:200_000]]
    center = pts.median(dim=0).values
    dist = torch.linalg.norm(pts - center, dim=1)
    radius = float(torch.quantile(dist, 0.95)) if dist.numel() > 1 else 1.0
    return Bounds(tuple(float(v) for v in center), max(radius, 1e-3))


_FORMATS: dict[str, Callable[[Path], Any]] = {}


def register_format(extensions: tuple[str, ...], opener: Callable[[Path], Any]) -> None:
    """Let `open_scene` open files with these extensions (".ply", ...) through `opener(path)`."""
    for ext in extensions:
        _FORMATS[ext.lower()] = opener


def _register_splat_formats() -> None:
    """Every splat format's extensions (`render/splat/formats`), registered on first use: importing
    the format registry loads torch, and importing this module must not."""
    from neuralframe.render.splat.formats import suffixes

    register_format(suffixes(), SplatScene.load)


class NerfScene:
    """A hash-grid NeRF checkpoint (.safetensors from `neuralframe train nerf`) rendered by `nerf.render`.

    NeRF-synthetic worlds are z-up (Blender), so the viewer orbits around +z.
    """

    kind = "nerf"

    def __init__(self, field, name: str, up=(0.0, 0.0, 1.0), path: Path | None = None):
        self.field = field
        self.name = name
        self.up = tuple(up)
        self.cameras: list = []
        self.path = path
        self.engine = None  # the field's exported graph on onnxruntime/TensorRT (use_engine)
        self.backend = "torch"

    @classmethod
    def load(cls, path: Path) -> "NerfScene":
        from neuralframe.render.nerf import load_field

        return cls(load_field(path), path.name, path=path)

    def use_engine(self, engine: "Engine | None", backend: str = "torch") -> None:
        """Run the field's network on `engine` (its exported "nerf-field" graph, inputs x and d, outputs
        sigma and rgb), named `backend` ("onnxruntime", "tensorrt"); None: back on torch. The app builds
        the engine (`neuralframe.apps.render.use_backend`)."""
        self.engine = engine
        self.backend = backend if engine is not None else "torch"

    def render(self, camera: "Camera", *, impl: str = "auto", background=None) -> "RenderOutput":
        from neuralframe.render import nerf

        return nerf.render(self.field, camera, impl=impl, background=background, engine=self.engine)

    def implementation(self, impl: str = "auto") -> str:
        from neuralframe.backend import dispatch

        return dispatch.op("nerf.hashgrid").name_for(impl, "cpu")

    def bounds(self) -> Bounds:
        box = [float(v) for v in self.field.config.aabb]
        center = tuple((box[i] + box[i + 3]) / 2.0 for i in range(3))
        # the object fills the box's inscribed sphere more than its corners
        radius = 0.5 * min(box[i + 3] - box[i] for i in range(3))
        return Bounds(center, radius)

    def initial_camera(self, width: int, height: int, fov_x_deg: float = 40.0) -> "Camera":
        return frame_bounds(self.bounds(), width, height, fov_x_deg, self.up, elevation_deg=25.0)

    def describe(self) -> dict[str, Any]:
        return {"kind": "nerf", "name": self.name,
                "parameters": int(sum(p.numel() for p in self.field.parameters()))}


register_format((".safetensors",), NerfScene.load)


def open_scene(path: str | Path) -> Scene:
    """Open a scene file by its extension; a clear error for a missing file or an unknown format."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"scene '{p}' does not exist")
    _register_splat_formats()
    name = p.name.lower()
    # the longest registered ending wins (".compressed.ply" over ".ply", "meta.json" for a SOG folder)
    ending = max((e for e in _FORMATS if name.endswith(e)), key=len, default=None)
    if p.is_dir():
        folder_form = [e for e in _FORMATS if not e.startswith(".") and (p / e).is_file()]
        if not folder_form:
            raise InputError(f"scene '{p}' is a folder: give a scene file ({', '.join(sorted(_FORMATS))})")
        ending = folder_form[0]
    opener = _FORMATS.get(ending) if ending is not None else None
    if opener is None:
        known = ", ".join(sorted(_FORMATS))
        raise InputError(f"scene '{p}' has an unknown format '{p.suffix}': neuralframe opens {known}")
    return opener(p)


def default_scene_path() -> Path:
    """The bundled motorcycle scene."""
    return asset("scenes", "motorcycle.ply")
