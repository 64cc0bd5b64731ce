"""Orbit math: cameras on a sphere around a target, the same wherever the viewer, paths or framing put them."""

import math
from dataclasses import replace

import pytest
import torch

from neuralframe.render.camera import Camera, interpolate, intrinsics, look_at
from neuralframe.render.orbit import OrbitState, framing_distance, orbit, orbit_basis, orbit_eye


def project(cam: Camera, point) -> tuple[float, float, float]:
    p = cam.viewmat @ torch.tensor([*point, 1.0], dtype=torch.float64)
    uvw = cam.K @ p[:3]
    return float(uvw[0] / uvw[2]), float(uvw[1] / uvw[2]), float(p[2])


def test_orbit_cameras_look_at_centre_at_radius():
    K = intrinsics(64, 64, 50.0)
    cams = orbit((0.0, 0.0, 2.0), 3.0, 8, K, 64, 64, elevation_deg=20.0)
    assert len(cams) == 8
    for cam in cams:
        assert project(cam, (0.0, 0.0, 2.0))[:2] == pytest.approx((32.0, 32.0), abs=1e-9)
        assert float(torch.linalg.norm(cam.position - torch.tensor([0.0, 0.0, 2.0], dtype=torch.float64))) == pytest.approx(3.0)
    path = interpolate(cams[:3], 5)
    assert torch.allclose(path[0].viewmat, cams[0].viewmat, atol=1e-9)
    assert torch.allclose(path[-1].viewmat, cams[2].viewmat, atol=1e-9)


def test_azimuth_zero_is_in_front_and_ninety_a_quarter_turn():
    up, a, b = orbit_basis((0.0, -1.0, 0.0))
    assert torch.allclose(b, torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64))
    assert float(a @ b) == pytest.approx(0.0) and float(a @ up) == pytest.approx(0.0)
    front = orbit_eye((0.0, 0.0, 5.0), 2.0, 0.0, 0.0)
    assert torch.allclose(front, torch.tensor([0.0, 0.0, 3.0], dtype=torch.float64))
    above = orbit_eye((0.0, 0.0, 5.0), 2.0, 0.0, 90.0)
    assert torch.allclose(above, torch.tensor([0.0, -2.0, 5.0], dtype=torch.float64), atol=1e-12)


def test_state_from_a_camera_gives_that_camera_back():
    K = intrinsics(160, 120, 55.0)
    cam = Camera(look_at((1.0, -0.5, 1.0), (0.2, 0.1, 5.0)), K, 160, 120)
    state = OrbitState.from_camera(cam, (0.0, 0.0, 5.0), 1.0)
    again = state.camera(160, 120)
    assert torch.allclose(again.viewmat, cam.viewmat, atol=1e-9)
    assert state.fov_x == pytest.approx(55.0)
    turned = replace(state, azimuth=state.azimuth + 90.0).camera(160, 120)
    target = torch.tensor(state.target, dtype=torch.float64)
    assert project(turned, state.target)[:2] == pytest.approx((80.0, 60.0), abs=1e-9)
    assert float(torch.linalg.norm(turned.position - target)) == pytest.approx(state.distance)


def test_framing_fits_the_sphere_in_the_narrower_direction():
    state = OrbitState.framing((0.0, 0.0, 5.0), 1.0, 320, 240, 60.0, elevation=0.0)
    assert state.distance == framing_distance(1.0, 320, 240, 60.0)
    cam = state.camera(320, 240)
    # the sphere's top edge is inside the image, with a 10% margin in the sine of its angle
    fov_y = 2.0 * math.atan(120.0 / cam.fy)
    assert state.distance * math.sin(fov_y / 2.0) == pytest.approx(1.1)
    assert project(cam, (0.0, -1.0, 5.0))[1] > 0.0
