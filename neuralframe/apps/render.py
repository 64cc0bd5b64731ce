"""Offline rendering of camera paths through the frame pipeline (`neuralframe render`).

    scene = open_scene("scene.safetensors")
    use_backend(scene, "onnxruntime")            # a NeRF field on its exported graph (--backend)
    report = render_path(scene, PathSettings(path="orbit", frames=120), "orbit.mp4")
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import torch

from neuralframe.errors import InputError
from neuralframe.streaming.frame import Frame, StreamInfo
from neuralframe.streaming.pipeline import Source, Stage


@dataclass(frozen=True)
class PathSettings:
    """What `neuralframe render` renders.

    Args:
        path: "orbit" (all around the scene centre), "arc" (a sweep of +-`arc_deg` around the start view,
            there and back: for captured scenes only seen from one side), or a JSON file of cameras
            ({"viewmat", "K", "width", "height"} objects).
        frames: number of frames (for a JSON path with fewer cameras, the path is interpolated).
        width, height: output size for the orbit (a JSON path keeps its cameras' size).
        fps: frame rate of the video.
        fov_x: field of view of the orbit, degrees.
        elevation: orbit elevation, degrees.
        impl: renderer implementation.
        lod_budget: splat scenes: draw each frame as a cut of the scene's level-of-detail tree of at most this
            many Gaussians (`SplatScene.render_cut`); None: every Gaussian.
        lod_error: with `lod_budget`: the largest projected size in pixels of a merged Gaussian in the cut.
    """

    path: str = "orbit"
    frames: int = 120
    width: int = 960
    height: int = 540
    fps: float = 30.0
    fov_x: float = 60.0
    elevation: float = 15.0
    impl: str = "auto"
    arc_deg: float = 15.0
    lod_budget: int | None = None
    lod_error: float = 0.5


def use_backend(scene, backend: str, say: Callable[[str], None] | None = None) -> None:
    """Run a NeRF scene's field network on `backend` (`--backend`): "torch" leaves the scene as it is;
    "onnxruntime" and "tensorrt" run its exported graph, exported once with parity checks and cached
    (`neuralframe.export.engines`). A splat scene is an InputError: its renderer is chosen with --impl."""
    from neuralframe.backend.runtime import resolve_backend

    backend = resolve_backend(backend)
    if backend == "torch":
        return
    if not hasattr(scene, "use_engine"):
        raise InputError(f"--backend {backend} applies to NeRF scenes (.safetensors); splat scenes render with "
                         "--impl")
    from neuralframe.export.engines import exported_engines

    scene.use_engine(exported_engines("nerf-field", scene.path, backend, say=say)["nerf-field"], backend)


def path_cameras(scene, settings: PathSettings) -> list:
    """The cameras of a path: an orbit around the scene centre, or a JSON list (interpolated to `frames`)."""
    from neuralframe.render.camera import interpolate, load_cameras
    from neuralframe.render.orbit import orbit
    from neuralframe.render.scene import frame_bounds

    if settings.frames <= 0:
        raise InputError(f"--frames must be positive, got {settings.frames}")
    if settings.path == "arc":
        return _arc(scene, settings)
    if settings.path == "orbit":
        bounds = scene.bounds()
        start = frame_bounds(bounds, settings.width, settings.height, settings.fov_x, scene.up,
                             elevation_deg=settings.elevation)
        distance = float(torch.linalg.norm(start.position - torch.as_tensor(bounds.center, dtype=torch.float64)))
        return orbit(bounds.center, distance, settings.frames, start.K, settings.width, settings.height,
                     elevation_deg=settings.elevation, up=scene.up, near=start.near)
    cameras = load_cameras(settings.path)
    if len(cameras) == settings.frames:
        return cameras
    if len(cameras) == 1:
        return cameras * settings.frames
    return interpolate(cameras, settings.frames)


def _arc(scene, settings: PathSettings) -> list:
    """Cameras swinging +-arc_deg around the scene centre from the start view, and back."""
    import math

    from neuralframe.render.orbit import OrbitState

    start = scene.initial_camera(settings.width, settings.height, settings.fov_x)
    bounds = scene.bounds()
    state = OrbitState.from_camera(start, bounds.center, bounds.radius, scene.up)
    cams = []
    for i in range(settings.frames):
        phase = math.sin(2.0 * math.pi * i / settings.frames)
        swung = replace(state, azimuth=state.azimuth + settings.arc_deg * phase)
        cams.append(swung.camera(settings.width, settings.height, scene.up))
    return cams


class CameraPathSource(Source):
    """One frame per camera of a path; the frame carries the camera, the render stage draws it."""

    name = "path"

    def __init__(self, cameras: list, fps: float = 30.0):
        if not cameras:
            raise InputError("the camera path is empty")
        self.cameras = cameras
        self.fps = fps
        self._i = 0

    def open(self) -> StreamInfo:
        c = self.cameras[0]
        return StreamInfo(width=c.width, height=c.height, fps=self.fps, frames=len(self.cameras), name="camera path")

    def read(self) -> Frame | None:
        if self._i >= len(self.cameras):
            return None
        frame = Frame(torch.empty((0, 0, 3), dtype=torch.uint8), self._i, self._i / self.fps,
                      metadata={"camera": self.cameras[self._i]})
        self._i += 1
        return frame


class SceneRenderStage(Stage):
    """Renders the frame's camera into its image (uint8 RGB); with `lod_budget`, a cut of the scene's
    level-of-detail tree (the frame's metadata gets the cut's "splats" and "lod_error")."""

    name = "render"

    def __init__(self, scene, impl: str = "auto", lod_budget: int | None = None, lod_error: float = 0.5):
        self.scene = scene
        self.impl = impl
        self.lod_budget = lod_budget
        self.lod_error = lod_error

    def process(self, frame: Frame) -> Frame:
        t0 = time.perf_counter()
        extra = {}
        if self.lod_budget is None:
            out = self.scene.render(frame.metadata["camera"], impl=self.impl)
        else:
            out, cut = self.scene.render_cut(frame.metadata["camera"], self.lod_budget, self.lod_error, impl=self.impl)
            extra = {"splats": cut.count, "lod_error": cut.error}
        image = torch.from_numpy(out.to_uint8())
        return frame.replace(image=image, metadata={**frame.metadata, **extra,
                                                    "render_ms": 1000 * (time.perf_counter() - t0)})


def prepare_lod(scene, say: Callable[[str], None] | None = None) -> None:
    """Load or build `scene`'s level-of-detail tree before frames render (`--lod`); a scene without one (a NeRF)
    is an InputError."""
    if not hasattr(scene, "render_cut"):
        raise InputError(f"--lod applies to splat scenes; {scene.name} is a {scene.kind} scene")
    tell = say or (lambda message: None)
    if not scene.has_hierarchy():
        t0 = time.perf_counter()
        tree = scene.hierarchy(say=tell)
        tell(f"level-of-detail tree of {scene.name}: {tree.n_merged:,} merged Gaussians over {tree.n_leaves:,} "
             f"({time.perf_counter() - t0:.1f} s to load or build)")


def scene_stage(scene_path: str | Path, impl: str = "auto", backend: str = "torch") -> SceneRenderStage:
    """A render stage on its own copy of a scene file, a NeRF field on `backend`: what a Ray worker runs."""
    from neuralframe.render.scene import open_scene

    scene = open_scene(scene_path)
    use_backend(scene, backend)
    return SceneRenderStage(scene, impl)


def open_path(scene_path: str | Path, settings: PathSettings) -> tuple:
    """(the scene at `scene_path`, the cameras of its path): what a driver needs before workers start."""
    from neuralframe.render.scene import open_scene

    scene = open_scene(scene_path)
    return scene, path_cameras(scene, settings)


def render_path(scene, settings: PathSettings, out: str | Path, progress: bool = True,
                say: Callable[[str], None] | None = None):
    """Render a camera path of `scene` into a video file; returns the pipeline report. `say` hears how the
    level-of-detail tree was had (with `settings.lod_budget`)."""
    from neuralframe.console import run_with_progress
    from neuralframe.streaming import Pipeline
    from neuralframe.streaming.sinks import parse_sink

    cameras = path_cameras(scene, settings)
    if settings.lod_budget is not None:
        prepare_lod(scene, say)
    stage = SceneRenderStage(scene, settings.impl, settings.lod_budget, settings.lod_error)
    pipeline = Pipeline(CameraPathSource(cameras, settings.fps), [stage],
                        parse_sink(str(out), fps=settings.fps),
                        memory_advice="use a smaller --size (or cameras of a smaller size in the --path JSON)")
    return run_with_progress(pipeline, f"render {scene.name}", enabled=progress)
