"""`neuralframe bench viewer`: the real window through a scripted orbit, measured.

Left-drag events are dispatched to the window at 60 Hz for `seconds`; the viewer renders on its
pipeline thread with adaptive resolution. Reported: frames displayed per second while moving, median
render time and scale, and input latency (event to the first displayed frame that includes it).
Needs a display; without one it re-runs itself under `xvfb-run` when that is installed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from typing import Any

from neuralframe.errors import MissingDependencyError


def run(scene_path: str | None = None, seconds: float = 5.0, size: tuple[int, int] = (720, 1280),
        target_fps: float = 30.0, impl: str = "auto") -> dict[str, Any]:
    from neuralframe.backend.device import has_display

    if not has_display():
        return _under_xvfb(scene_path, seconds, size, target_fps, impl)
    import time

    from neuralframe.render.scene import default_scene_path, open_scene
    from neuralframe.viewer.app import ViewerApp, ViewerSettings

    scene = open_scene(scene_path or default_scene_path())
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
    settings = ViewerSettings(width=size[1], height=size[0], target_fps=target_fps, impl=impl,
                              max_seconds=seconds + 60.0)
    app = ViewerApp(scene, settings, script=script)
    stats = app.run()
    import numpy as np

    moving_ms = stats.render_ms[marks["render0"]:]
    moving_scales = stats.scales[marks["render0"]:]
    lat = stats.input_latency_ms[marks["lat0"]:]
    elapsed = marks["t1"] - marks["t0"]
    return {
        "benchmark": "viewer",
        "scene": scene.name,
        "scene_info": scene.describe(),
        "window": f"{size[1]}x{size[0]}",
        "seconds": round(elapsed, 3),
        "target_fps": target_fps,
        "fps_displayed": round((marks["frames1"] - marks["frames0"]) / elapsed, 2),
        "render_ms_median": round(float(np.median(moving_ms)), 2) if moving_ms else None,
        "scale_median": round(float(np.median(moving_scales)), 3) if moving_scales else None,
        "input_latency_ms_p95": round(float(np.percentile(lat, 95)), 2) if lat else None,
        "input_latency_ms_median": round(float(np.median(lat)), 2) if lat else None,
        "implementation": stats.implementation,
        "window_draws_per_s": round(stats.draws / stats.seconds, 1) if stats.seconds else None,
        "renders_interrupted": stats.renders_interrupted,
    }


def _under_xvfb(scene_path, seconds, size, target_fps, impl) -> dict[str, Any]:
    if shutil.which("xvfb-run") is None:
        raise MissingDependencyError("bench viewer needs a display: run it on a desktop, or install xvfb "
                                     "(apt-get install xvfb) so it can start a virtual one")
    cmd = [sys.executable, "-m", "neuralframe.cli", "bench", "viewer", "--json", "--seconds", str(seconds),
           "--size", f"{size[1]}x{size[0]}", "--target-fps", str(target_fps), "--impl", impl]
    if scene_path:
        cmd += ["--scene", str(scene_path)]
    result = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1920x1200x24", *cmd], capture_output=True, text=True)
    if result.returncode != 0:
        raise MissingDependencyError(f"bench viewer under xvfb-run failed: {result.stderr.strip().splitlines()[-1:]}")
    data = json.loads(result.stdout)
    data["display"] = "xvfb"
    return data
