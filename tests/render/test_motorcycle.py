"""The bundled motorcycle scene: it loads, is small, and reproduces the left photograph."""

import json
from pathlib import Path

import pytest
import torch

from neuralframe.render.splat import load, rasterize
from neuralframe.render.splat.stereo import crop_camera, initial_gaussians, load_pair, psnr, stereo_cameras

SCENES = Path(__file__).resolve().parents[2] / "assets" / "scenes"
PLY = SCENES / "motorcycle.ply"


@pytest.mark.skipif(not PLY.exists(), reason="assets/scenes/motorcycle.ply has not been built")
def test_bundled_motorcycle_matches_the_left_image():
    assert PLY.stat().st_size < 20 * 1024 * 1024
    g = load(PLY)
    left_img, right_img, _ = load_pair()
    left, right = stereo_cameras()
    out = rasterize(g, left)
    assert psnr(out.rgb, torch.from_numpy(left_img)) >= 24.0
    # Depths are those of the scene: the motorcycle stands 2 to 5 metres from the camera.
    covered = out.alpha > 0.5
    assert covered.float().mean() > 0.95
    assert 1.9 < out.depth[covered].median().item() < 5.5
    card = json.loads(PLY.with_suffix(".json").read_text())
    assert card["metrics"]["psnr_left_db"] >= 24.0
    assert "Middlebury" in card["data"]["name"] and card["command"].startswith("neuralframe data splat-from-stereo")
    assert len(list((SCENES / "previews").glob("motorcycle_*.png"))) >= 4


def test_stereo_geometry_puts_right_pixels_at_x_minus_disparity():
    left_img, right_img, disp = load_pair()
    g = initial_gaussians(left_img, disp, stride=4)
    left, right = stereo_cameras()
    # A crop keeps the test fast; the right view of the left-image colours must resemble the right
    # photograph far better than the left photograph does (the views differ by the disparity).
    cam = crop_camera(right, 300, 150, 160, 160)
    out = rasterize(g, cam)
    target = torch.from_numpy(right_img[150:310, 300:460])
    unshifted = torch.from_numpy(left_img[150:310, 300:460])
    assert psnr(out.rgb, target) > psnr(unshifted, target) + 3.0
