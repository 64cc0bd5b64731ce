"""The viewer as a real window (under Xvfb in CI): pixels, input events, responsiveness, adaptivity."""

import json
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from neuralframe.render.scene import SplatScene

pytestmark = pytest.mark.display


@pytest.fixture(scope="module")
def scene():
    from neuralframe.render.splat import procedural

    return SplatScene(procedural.surface_scene(6000, seed=1, sh_degree=1), "procedural")


def _psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


def test_screenshot_matches_an_offline_render(scene, tmp_path):
    from neuralframe.render.splat import save

    ply = tmp_path / "scene.ply"
    save(scene.gaussians, ply)
    cam = scene.initial_camera(320, 240)
    (tmp_path / "cam.json").write_text(json.dumps(cam.to_dict()))
    shot = tmp_path / "shot.png"
    result = subprocess.run([sys.executable, "-m", "neuralframe.cli", "view", str(ply), "--screenshot", str(shot),
                             "--camera", str(tmp_path / "cam.json")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    import cv2

    window = cv2.cvtColor(cv2.imread(str(shot)), cv2.COLOR_BGR2RGB)
    offline = scene.render(cam).to_uint8()
    assert window.shape == offline.shape == (240, 320, 3)
    assert offline.mean() > 5  # the scene is in view, not a black frame
    assert _psnr(window, offline) >= 35.0


def test_events_on_the_window_move_the_camera(scene):
    from neuralframe.viewer.app import ViewerApp, ViewerSettings

    seen = {}

    def drag(app):
        seen["az0"] = app.controls.state.azimuth
        seen["d0"] = app.controls.state.distance
        for _ in range(4):
            app.window.dispatch_event("on_mouse_drag", 100, 100, 15, 0, 1, 0)  # left button

    def wheel(app):
        seen["az1"] = app.controls.state.azimuth
        app.window.dispatch_event("on_mouse_scroll", 100, 100, 0, 3)

    def reset(app):
        from pyglet.window import key

        seen["d1"] = app.controls.state.distance
        app.window.dispatch_event("on_key_press", key.R, 0)
        seen["after_reset"] = app.controls.state

    app = ViewerApp(scene, ViewerSettings(width=240, height=180, max_seconds=3.0, hud=True),
                    script=[(0.2, drag), (0.5, wheel), (0.8, reset)])
    stats = app.run()
    assert seen["az1"] == pytest.approx((seen["az0"] - 4 * 15 * 0.3) % 360)
    assert seen["d1"] == pytest.approx(seen["d0"] * 0.9**3)
    assert seen["after_reset"] == app.controls.start
    assert stats.frames_shown >= 2 and stats.input_latency_ms


def test_ui_stays_responsive_during_a_slow_render(scene):
    from neuralframe.viewer.app import ViewerApp, ViewerSettings

    def slow(camera):
        time.sleep(0.5)
        return scene.render(camera)

    marks = {}

    def start(app):
        marks["draws"] = app.stats.draws
        marks["t"] = time.perf_counter()
        for _ in range(3):
            app.window.dispatch_event("on_mouse_drag", 50, 50, 20, 0, 1, 0)

    def end(app):
        marks["rate"] = (app.stats.draws - marks["draws"]) / (time.perf_counter() - marks["t"])
        marks["frames"] = app.stats.frames_shown

    app = ViewerApp(scene, ViewerSettings(width=200, height=150, max_seconds=6.0), render_fn=slow,
                    script=[(0.1, start), (2.1, end)])
    app.run()
    assert marks["rate"] >= 20.0  # the window redraws at its own pace while renders take 500 ms
    assert marks["frames"] <= 8  # ... and only a handful of renders finished in that time


def test_adaptive_resolution_and_budget_while_dragging_then_every_gaussian_at_rest(scene):
    from neuralframe.viewer.app import ViewerApp, ViewerSettings

    log = []

    def wait_for_tree(app):  # the drags start once the level-of-detail tree is built (a cold Numba cache: seconds)
        if app.loader.tree is None and not app.loader.done:
            at = time.perf_counter() - app._t_first + 0.05
            app.script.append((at, wait_for_tree))
            return
        t = time.perf_counter() - app._t_first
        log.append(("start", time.perf_counter()))
        app.script.extend([(t + 0.05 * i, drag) for i in range(30)] + [(t + 1.5, stop)])
        app.script.sort(key=lambda s: s[0])

    def drag(app):
        app.window.dispatch_event("on_mouse_drag", 50, 50, 3, 1, 1, 0)

    def stop(app):
        log.append(("stop", time.perf_counter(), app.stats.frames_shown, app.controls.last_change))

    # a target of 200 FPS is out of reach at full size, so moving renders must drop resolution; with a budget
    # of half the scene's Gaussians they also draw a cut of the level-of-detail tree
    app = ViewerApp(scene, ViewerSettings(width=320, height=240, target_fps=200.0, max_seconds=60.0,
                                          moving_gaussians=scene.gaussians.n // 2), script=[(0.1, wait_for_tree)])
    assert app.budget is not None and app.budget.value == 3000
    original = app._take_frame
    huds = []

    def spy():
        before = app.stats.frames_shown
        original()
        if app.stats.frames_shown != before:
            log.append(("frame", time.perf_counter(), (app.stats.scales[-1], app.stats.budgets[-1],
                                                       app.stats.drawn[-1])))
            huds.append("\n".join(app._hud_lines()))
            if log[-1][2][0] == 1.0 and log[-1][2][1] is None and any(k == "stop" for k, *_ in log):
                app.close()  # at rest, every Gaussian on screen: done
    app._take_frame = spy
    app.run()
    assert app.loader.tree is not None and app.detail_error is None
    _, t_stop, _, last_drag = next(entry for entry in log if entry[0] == "stop")
    frames = [(entry[1], entry[2:]) for entry in log if entry[0] == "frame"]
    t_start = next(entry[1] for entry in log if entry[0] == "start")
    moving = [v[0] for t, v in frames if t_start < t < t_stop]
    assert moving and min(scale for scale, _, _ in moving) < 1.0
    cuts = [(budget, drawn) for _, budget, drawn in moving if budget is not None]
    assert cuts and all(drawn <= budget for budget, drawn in cuts)  # a cut of the tree within its budget
    assert any(f" of 6,000 drawn (budget {budget:,})" in h for h in huds for budget, _ in cuts)
    after = [(t, v[0]) for t, v in frames if t > last_drag and v[0][0] == 1.0]
    assert after and after[0][0] - last_drag <= 0.5  # full resolution soon after the last input
    assert after[-1][1][1] is None and after[-1][1][2] == 6000  # and then every Gaussian
    assert "6,000 (every Gaussian)" in huds[-1]


def test_stream_to_a_window_shows_every_frame_and_ends_with_the_stream():
    result = subprocess.run([sys.executable, "-m", "neuralframe.cli", "stream", "--source", "pattern", "--size",
                             "160x120", "--frames", "40", "--effect", "gray", "--out", "window", "--json"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "completed" and report["frames_out"] == 40 and report["accounted"]


def test_nerf_checkpoint_in_the_window_matches_an_offline_render(tmp_path):
    """`neuralframe view SCENE.safetensors`: the window shows the NeRF as `render` does."""
    from neuralframe.render.nerf import FieldConfig, NerfField
    from neuralframe.render.nerf.field import grid_for
    from neuralframe.render.nerf.io import save
    from neuralframe.render.scene import open_scene

    torch.manual_seed(3)
    field = NerfField(FieldConfig(grid=grid_for(64, n_levels=4, log2_hashmap_size=12), occupancy_resolution=32))
    with torch.no_grad():
        field.encoding.params.uniform_(-1, 1)
        field.density_net[2].weight[0].mul_(4.0)  # a denser cloud: visible structure, rays that stop early
    field.occupancy.update(field.density, field.step, warmup=True)
    path = tmp_path / "field.safetensors"
    save(path, field)
    scene = open_scene(path)
    cam = scene.initial_camera(96, 72)
    (tmp_path / "cam.json").write_text(json.dumps(cam.to_dict()))
    shot = tmp_path / "shot.png"
    result = subprocess.run([sys.executable, "-m", "neuralframe.cli", "view", str(path), "--screenshot", str(shot),
                             "--camera", str(tmp_path / "cam.json")], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    import cv2

    window = cv2.cvtColor(cv2.imread(str(shot)), cv2.COLOR_BGR2RGB)
    offline = scene.render(cam).to_uint8()
    assert window.shape == offline.shape == (72, 96, 3)
    assert offline.std() > 3  # structure in view, not a flat frame
    assert _psnr(window, offline) >= 35.0
