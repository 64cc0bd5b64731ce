import json
import math

import pytest
import torch

from neuralframe.errors import InputError
from neuralframe.render.camera import Camera, intrinsics, load_cameras, look_at, quat_to_rotmat, rotmat_to_quat


def project(cam: Camera, point) -> tuple[float, float, float]:
    p = cam.viewmat @ torch.tensor([*point, 1.0], dtype=torch.float64)
    uvw = cam.K @ p[:3]
    return float(uvw[0] / uvw[2]), float(uvw[1] / uvw[2]), float(p[2])


def test_look_at_centres_the_target_and_keeps_up_up():
    K = intrinsics(640, 480, 60.0)
    cam = Camera.look_at((1.0, -2.0, -5.0), (0.5, 0.0, 1.0), K, 640, 480)
    u, v, z = project(cam, (0.5, 0.0, 1.0))
    assert (u, v) == pytest.approx((320.0, 240.0), abs=1e-9) and z > 0
    # World up is -y (OpenCV world): a point above the target appears higher in the image.
    _, v_above, _ = project(cam, (0.5, -0.5, 1.0))
    assert v_above < 240.0
    assert torch.allclose(cam.position, torch.tensor([1.0, -2.0, -5.0], dtype=torch.float64))


def test_opengl_transform_matrix_round_trips_and_looks_down_minus_z():
    K = intrinsics(100, 100, 90.0)
    c2w_gl = torch.eye(4, dtype=torch.float64)
    c2w_gl[:3, 3] = torch.tensor([0.0, 0.0, 3.0])
    cam = Camera.from_opengl(c2w_gl, K, 100, 100)
    u, v, z = project(cam, (0.0, 0.0, 0.0))  # GL cameras look along -z
    assert (u, v, z) == pytest.approx((50.0, 50.0, 3.0))
    _, v_up, _ = project(cam, (0.0, 1.0, 0.0))  # GL world up is +y
    assert v_up < 50.0
    assert torch.allclose(cam.to_opengl(), c2w_gl)


def test_resized_scales_intrinsics():
    cam = Camera(torch.eye(4), intrinsics(200, 100, 60.0), 200, 100)
    half = cam.scaled(0.5)
    assert (half.width, half.height) == (100, 50)
    assert half.fx == pytest.approx(cam.fx / 2) and half.cx == pytest.approx(50.0)
    assert half.fov_x == pytest.approx(cam.fov_x)


def test_quaternion_round_trip():
    q = torch.randn(50, 4, dtype=torch.float64)
    q = q / q.norm(dim=1, keepdim=True)
    q = torch.where(q[:, :1] < 0, -q, q)
    assert torch.allclose(rotmat_to_quat(quat_to_rotmat(q)), q, atol=1e-12)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(viewmat=torch.eye(3)), "viewmat must have shape [4, 4]"),
        (dict(K=torch.eye(4)), "K must have shape [3, 3]"),
        (dict(width=0), "image size"),
        (dict(near=2.0, far=1.0), "near < far"),
        (dict(viewmat=torch.full((4, 4), math.nan)), "NaN"),
    ],
)
def test_bad_cameras_say_what_is_wrong(kwargs, message):
    args = dict(viewmat=torch.eye(4), K=intrinsics(10, 10), width=10, height=10)
    args.update(kwargs)
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Camera(**args)


def test_look_at_rejects_degenerate_views():
    with pytest.raises(InputError, match="same point"):
        look_at((1, 2, 3), (1, 2, 3))
    with pytest.raises(InputError, match="parallel"):
        look_at((0, 0, 0), (0, 5, 0), up=(0, 1, 0))


def test_camera_json_round_trips_and_reads_inria_cameras(tmp_path):
    cam = Camera.look_at((0.3, -0.2, -2.0), (0.0, 0.0, 1.0), intrinsics(64, 48, 50.0), 64, 48, near=0.05, far=40.0)
    path = tmp_path / "cams.json"
    path.write_text(json.dumps([cam.to_dict(), cam.to_dict()]))
    back = load_cameras(path)
    assert len(back) == 2 and torch.equal(back[1].viewmat, cam.viewmat) and torch.equal(back[1].K, cam.K)
    assert (back[0].width, back[0].height, back[0].near, back[0].far) == (64, 48, 0.05, 40.0)
    path.write_text(json.dumps(cam.to_dict()))  # one object: a list of one
    assert len(load_cameras(path)) == 1
    # INRIA 3DGS: camera-to-world rotation and position, focal lengths, principal point in the centre
    inria = {"position": cam.position.tolist(), "rotation": cam.c2w[:3, :3].tolist(), "fx": cam.fx, "fy": cam.fy,
             "width": 64, "height": 48}
    other = Camera.from_dict(inria)
    assert torch.allclose(other.viewmat, cam.viewmat, atol=1e-12) and (other.cx, other.cy) == (32.0, 24.0)


@pytest.mark.parametrize("content, message", [
    (None, "camera file '{path}' does not exist"),
    ("{not json", "camera file '{path}' is not valid JSON"),
    ("[3]", "camera cams.json[0] must be an object with viewmat, K, width and height"),
    ('[{"viewmat": [[1, 0, 0, 0]], "width": 4}]', "camera cams.json[0] is missing K, height"),
    ('{"viewmat": [[1, 0], [0, 1]], "K": [[1, 0, 0], [0, 1, 0], [0, 0, 1]], "width": 4, "height": 4}',
     "camera cams.json[0]: camera viewmat must have shape [4, 4], got [2, 2]"),
    ('[{"position": [0, 0, 0], "rotation": [[1, 0, 0]], "fx": 1, "fy": 1, "width": 4, "height": 4}]',
     "camera cams.json[0]: "),
])
def test_bad_camera_files_say_what_is_wrong(tmp_path, content, message):
    path = tmp_path / "cams.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputError) as info:
        load_cameras(path)
    assert str(info.value).startswith(message.format(path=path))
