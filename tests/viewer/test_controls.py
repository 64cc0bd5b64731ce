"""Camera controls and adaptive resolution, without a window."""


import pytest
import torch

from neuralframe.render.camera import Camera, intrinsics, look_at
from neuralframe.render.scene import Bounds
from neuralframe.viewer.controls import AdaptiveResolution, OrbitControls

BOUNDS = Bounds((0.0, 0.0, 5.0), 1.0)


def _controls():
    return OrbitControls.framing(BOUNDS, 320, 240)


def _project(camera, point):
    p = camera.viewmat[:3, :3] @ torch.as_tensor(point, dtype=torch.float64) + camera.viewmat[:3, 3]
    return (camera.fx * p[0] / p[2] + camera.cx).item(), (camera.fy * p[1] / p[2] + camera.cy).item(), p[2].item()


def test_framing_looks_at_the_centre_and_fits_the_scene():
    c = _controls()
    cam = c.camera()
    u, v, z = _project(cam, BOUNDS.center)
    assert (u, v) == pytest.approx((160.0, 120.0), abs=1e-6) and z > 0
    # a point on the bounding sphere, sideways, stays inside the image
    side = torch.tensor(BOUNDS.center) + cam.R[0] * BOUNDS.radius
    u, v, _ = _project(cam, side)
    assert 0 < u < 320


def test_orbit_turns_around_the_target_at_constant_distance():
    c = _controls()
    before = c.camera().position
    c.orbit(100, 0)
    after = c.camera().position
    center = torch.tensor(BOUNDS.center, dtype=torch.float64)
    assert torch.linalg.norm(before - center) == pytest.approx(torch.linalg.norm(after - center).item())
    assert c.state.azimuth == pytest.approx(360 - 30.0)
    assert _project(c.camera(), BOUNDS.center)[:2] == pytest.approx((160.0, 120.0), abs=1e-6)
    c.orbit(0, 1000)  # elevation clamps short of the pole
    assert c.state.elevation == pytest.approx(-89.0)


def test_pan_moves_the_scene_with_the_mouse():
    c = _controls()
    c.pan(40, 0)  # drag right: the scene follows the cursor to the right
    u, v, _ = _project(c.camera(), BOUNDS.center)
    assert u == pytest.approx(200.0, abs=0.5) and v == pytest.approx(120.0, abs=0.5)
    c.pan(0, 30)  # drag up (pyglet y is up): the scene moves up the image
    u, v, _ = _project(c.camera(), BOUNDS.center)
    assert v == pytest.approx(90.0, abs=0.5)


def test_zoom_fly_fov_reset():
    c = _controls()
    d0 = c.state.distance
    c.zoom(2)
    assert c.state.distance == pytest.approx(d0 * 0.81)
    p0 = c.camera().position
    c.fly(1, 0, 0, 0.5)  # forward
    forward = c.camera().R[2]
    assert float((c.camera().position - p0) @ forward) == pytest.approx(0.3, rel=1e-6)
    c.change_fov(100)
    assert c.state.fov_x == 120.0
    version = c.version
    c.reset()
    assert c.state == c.start and c.version == version + 1


def test_from_camera_shows_exactly_that_camera_until_moved():
    K = intrinsics(200, 100, 50.0, cx=97.0)
    cam = Camera(look_at((1.0, -0.5, 0.0), (0.0, 0.0, 5.0)), K, 200, 100)
    c = OrbitControls.from_camera(cam, BOUNDS)
    assert c.camera() is cam
    c.orbit(1, 0)
    moved = c.camera()
    assert moved is not cam
    # the orbit state reproduces the camera's position closely (what a small drag starts from)
    c2 = OrbitControls.from_camera(cam, BOUNDS)
    c2.pinned = None
    assert torch.allclose(c2.camera().position, cam.position, atol=1e-6)
    c.reset()
    assert c.camera() is cam


def test_adaptive_resolution_holds_the_target_and_refines_when_still():
    a = AdaptiveResolution(target_ms=30.0, min_scale=0.2, settle_s=0.2)
    a.observe(120.0, 1.0)  # a full frame takes 120 ms: moving scale ~ sqrt(30/120) = 0.5
    assert a.moving_scale == pytest.approx(0.5, rel=1e-6)
    for _ in range(20):  # renders at the moving scale take time ~ 120 * s^2 + 5
        s = a.moving_scale
        a.observe(120.0 * s * s + 5.0, s)
    assert 120.0 * a.moving_scale ** 2 + 5.0 == pytest.approx(30.0, rel=0.1)
    assert a.scale(last_change=10.0, now=10.1) < 1.0
    assert a.scale(last_change=10.0, now=10.3) == 1.0
