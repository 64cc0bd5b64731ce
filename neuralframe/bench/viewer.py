"""`neuralframe bench viewer`: the real window through a scripted orbit, measured.

Left-drag events are dispatched to the window at 60 Hz for `seconds`; the viewer renders on its
pipeline thread with adaptive resolution and, for a splat scene larger than `--moving-gaussians`, a merged
level of detail while moving. Reported: frames displayed per second while moving, median render time,
scale and level of detail, and input latency (event to the first displayed frame that includes it), with
the issue's targets as `checks`; by default the same orbit again rendering every Gaussian while moving,
side by side in the same run ("without_levels_of_detail").
Needs a display; without one it re-runs itself under `xvfb-run` when that is installed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from typing import Any

from neuralframe.errors import MissingDependencyError


def run(scene_path: str | None = None, seconds: float = 5.0, size: tuple[int, int] = (720, 1280),
        target_fps: float = 30.0, impl: str = "auto", moving_gaussians: int | None = None,
        compare: bool = True) -> dict[str, Any]:
    """The orbit with the viewer's settings; with `compare` (and a scene that has levels of detail in use), the
    same orbit again rendering every Gaussian while moving, reported under "without_levels_of_detail"."""
    from neuralframe.backend.device import has_display

    if not has_display():
        return _under_xvfb(scene_path, seconds, size, target_fps, impl, moving_gaussians, compare)
    from neuralframe.render.scene import default_scene_path, open_scene
    from neuralframe.viewer.app import ViewerSettings

    scene = open_scene(scene_path or default_scene_path())
    settings = ViewerSettings(width=size[1], height=size[0], target_fps=target_fps, impl=impl,
                              max_seconds=seconds + 60.0)
    if moving_gaussians is not None:
        settings = replace(settings, moving_gaussians=int(moving_gaussians))
    result = _orbit(scene, settings, seconds)
    result["checks"] = {"fps_displayed_ge_24": bool(result["fps_displayed"] >= 24),
                        "input_latency_ms_p95_le_50": bool(result["input_latency_ms_p95"] is not None
                                                           and result["input_latency_ms_p95"] <= 50)}
    if compare and result["detail_level_median"]:
        other = _orbit(scene, replace(settings, moving_gaussians=0), seconds)
        result["without_levels_of_detail"] = {k: other[k] for k in (
            "fps_displayed", "render_ms_median", "scale_median", "input_latency_ms_p95", "input_latency_ms_median")}
    return result


def _orbit(scene, settings, seconds: float) -> dict[str, Any]:
    import time

    from neuralframe.viewer.app import ViewerApp

    marks: dict[str, Any] = {}

    def start(app):
        marks["t0"] = time.perf_counter()
        marks["frames0"] = app.stats.frames_shown
        marks["lat0"] = len(app.stats.input_latency_ms)
        marks["render0"] = len(app.stats.render_ms)

    def drag(app):
        app.window.dispatch_event("on_mouse_drag", 10, 10, 4, 0, 1, 0)

    def end(app):
        marks["t1"] = time.perf_counter()
        marks["frames1"] = app.stats.frames_shown
        app.close()

    warm = 1.0  # the first full frame and JIT warm-up are not part of the orbit
    script = [(warm, start)] + [(warm + i / 60.0, drag) for i in range(int(seconds * 60))] + [(warm + seconds, end)]
    app = ViewerApp(scene, settings, script=script)
    stats = app.run()
    import numpy as np

    moving_ms = stats.render_ms[marks["render0"]:]
    moving_scales = stats.scales[marks["render0"]:]
    moving_levels = stats.levels[marks["render0"]:]
    level = int(np.median(moving_levels)) if moving_levels else None
    lat = stats.input_latency_ms[marks["lat0"]:]
    elapsed = marks["t1"] - marks["t0"]
    return {
        "benchmark": "viewer",
        "scene": scene.name,
        "scene_info": scene.describe(),
        "window": f"{settings.width}x{settings.height}",
        "seconds": round(elapsed, 3),
        "target_fps": settings.target_fps,
        "moving_gaussians": settings.moving_gaussians,
        "fps_displayed": round((marks["frames1"] - marks["frames0"]) / elapsed, 2),
        "render_ms_median": round(float(np.median(moving_ms)), 2) if moving_ms else None,
        "scale_median": round(float(np.median(moving_scales)), 3) if moving_scales else None,
        "detail_level_median": level,
        "gaussians_moving": scene.detail(level).n if level is not None and hasattr(scene, "detail") else None,
        "input_latency_ms_p95": round(float(np.percentile(lat, 95)), 2) if lat else None,
        "input_latency_ms_median": round(float(np.median(lat)), 2) if lat else None,
        "implementation": stats.implementation,
        "window_draws_per_s": round(stats.draws / stats.seconds, 1) if stats.seconds else None,
        "renders_interrupted": stats.renders_interrupted,
    }


def _under_xvfb(scene_path, seconds, size, target_fps, impl, moving_gaussians=None, compare=True) -> dict[str, Any]:
    if shutil.which("xvfb-run") is None:
        raise MissingDependencyError("bench viewer needs a display: run it on a desktop, or install xvfb "
                                     "(apt-get install xvfb) so it can start a virtual one")
    cmd = [sys.executable, "-m", "neuralframe.cli", "bench", "viewer", "--json", "--seconds", str(seconds),
           "--size", f"{size[1]}x{size[0]}", "--target-fps", str(target_fps), "--impl", impl]
    if scene_path:
        cmd += ["--scene", str(scene_path)]
    if moving_gaussians is not None:
        cmd += ["--moving-gaussians", str(int(moving_gaussians))]
    if not compare:
        cmd += ["--no-compare"]
    result = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1920x1200x24", *cmd], capture_output=True, text=True)
    if result.returncode != 0:
        raise MissingDependencyError(f"bench viewer under xvfb-run failed: {result.stderr.strip().splitlines()[-1:]}")
    data = json.loads(result.stdout)
    data["display"] = "xvfb"
    return data


def print_summary(result: dict) -> None:
    """`result` in one line, as `neuralframe bench viewer` prints it."""
    from neuralframe.console import console

    console.print(f"viewer on {result['scene']}: [bold]{result['fps_displayed']} FPS[/] displayed, render "
                  f"{result['render_ms_median']} ms at scale {result['scale_median']}, input latency p95 "
                  f"{result['input_latency_ms_p95']} ms", highlight=False)
