"""A real Gaussian-splat scene from a calibrated stereo pair (Middlebury 2014 "Motorcycle").

`build_motorcycle` back-projects the ground-truth disparity of `skimage.data.stereo_motorcycle()`
to a coloured point cloud, puts one flat, surface-aligned Gaussian on every `stride` x `stride` block
of the left image, and refines colours, opacities and scales against both images through the
differentiable reference rasterizer (random full-resolution crops, Adam), then reports PSNR of full
renders from the left and right cameras with the fast CPU rasterizer.

World coordinates are the left camera's (OpenCV axes, metres): the left camera is the identity, the
right one sits `baseline` metres along +x.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from neuralframe.render.camera import Camera
from neuralframe.render.splat.gaussians import Gaussians, rgb_to_sh0

# Calibration of the down-sampled pair shipped by scikit-image (from its docstring).
FOCAL = 994.978
CX, CY = 311.193, 254.877
DOFFS = 31.086  # cx(right) - cx(left)
BASELINE = 0.193001  # metres

DATA_SOURCE = {
    "name": "Middlebury 2014 stereo dataset, 'Motorcycle' (perfect), via skimage.data.stereo_motorcycle()",
    "citation": "D. Scharstein, H. Hirschmueller, Y. Kitajima, G. Krathwohl, N. Nesic, X. Wang, P. Westling. "
                "High-resolution stereo datasets with subpixel-accurate ground truth. GCPR 2014.",
    "url": "https://vision.middlebury.edu/stereo/data/scenes2014/",
    "license": "Middlebury publishes its stereo datasets for research use and asks that the paper above "
               "be cited (https://vision.middlebury.edu/stereo/data/); no separate license file comes "
               "with them. scikit-image (BSD-3-Clause) ships the 4x down-sampled copy used here. Check "
               "the terms before any commercial redistribution of this scene.",
}


@dataclass(frozen=True)
class StereoSettings:
    """Settings of `build_motorcycle`."""

    stride: int = 2  # one Gaussian per stride x stride block of the left image
    steps: int = 300  # refinement steps (each renders one crop of one view)
    crop: int = 128  # crop size in pixels for refinement
    lr_color: float = 0.05
    lr_opacity: float = 0.05
    lr_scale: float = 0.01
    seed: int = 0


def stereo_cameras() -> tuple[Camera, Camera]:
    """The left and right cameras of the motorcycle pair (741 x 500 pixels)."""
    K_left = torch.tensor([[FOCAL, 0, CX], [0, FOCAL, CY], [0, 0, 1]], dtype=torch.float64)
    K_right = K_left.clone()
    K_right[0, 2] = CX + DOFFS
    right = torch.eye(4, dtype=torch.float64)
    right[0, 3] = -BASELINE  # world-to-camera: the right camera centre is at x = +baseline
    return Camera(torch.eye(4), K_left, 741, 500), Camera(right, K_right, 741, 500)


def load_pair() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Left and right images as float32 [H, W, 3] in [0, 1], and the disparity [H, W] (inf = unknown)."""
    from skimage import data

    left, right, disp = data.stereo_motorcycle()
    return left.astype(np.float32) / 255.0, right.astype(np.float32) / 255.0, disp.astype(np.float32)


def _fill_disparity(disp: np.ndarray) -> np.ndarray:
    """Unknown disparities take the value of the nearest known pixel (occlusions, borders)."""
    from scipy import ndimage

    known = np.isfinite(disp)
    _, (iy, ix) = ndimage.distance_transform_edt(~known, return_indices=True)
    return disp[iy, ix]


def initial_gaussians(left: np.ndarray, disp: np.ndarray, stride: int) -> Gaussians:
    """One flat Gaussian per stride x stride block, on the back-projected disparity surface."""
    H, W = disp.shape
    d = _fill_disparity(disp).astype(np.float64)
    z = FOCAL * BASELINE / (d + DOFFS)
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    P = np.stack([(u + 0.5 - CX) * z / FOCAL, (v + 0.5 - CY) * z / FOCAL, z], -1)  # [H, W, 3]
    # Surface tangents from central differences of the back-projected points.
    du = np.gradient(P, axis=1)
    dv = np.gradient(P, axis=0)
    # Block centres and block-averaged colours.
    hs, ws = H // stride, W // stride
    ys = (np.arange(hs) * stride + stride // 2)[:, None].repeat(ws, 1).ravel()
    xs = (np.arange(ws) * stride + stride // 2)[None, :].repeat(hs, 0).ravel()
    block = left[: hs * stride, : ws * stride].reshape(hs, stride, ws, stride, 3).mean((1, 3)).reshape(-1, 3)
    # Continuous pixel coordinates of the block centres (pixel centres are at j + 0.5).
    uc = (xs - stride // 2) + stride / 2.0
    vc = (ys - stride // 2) + stride / 2.0
    zc = z[ys, xs]
    means = np.stack([(uc - CX) * zc / FOCAL, (vc - CY) * zc / FOCAL, zc], -1)

    tu, tv = du[ys, xs], dv[ys, xs]
    footprint = zc / FOCAL  # metres per pixel at this depth
    # Tangents longer than 3 pixel footprints cross a depth edge: fall back to a frontal patch there.
    cap = 3.0 * footprint[:, None]
    tu_len = np.linalg.norm(tu, axis=1, keepdims=True)
    tv_len = np.linalg.norm(tv, axis=1, keepdims=True)
    frontal = (tu_len > cap) | (tv_len > cap)
    frontal = frontal[:, 0]
    tu[frontal] = np.stack([footprint[frontal], 0 * footprint[frontal], 0 * footprint[frontal]], 1)
    tv[frontal] = np.stack([0 * footprint[frontal], footprint[frontal], 0 * footprint[frontal]], 1)
    n = np.cross(tu, tv)
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    ax = tu / np.linalg.norm(tu, axis=1, keepdims=True)
    ay = np.cross(n, ax)
    # Standard deviations of about 0.6 block widths along the surface, 1/10 of that along the normal.
    sx = 0.6 * stride * np.linalg.norm(tu, axis=1)
    sy = 0.6 * stride * np.abs((tv * ay).sum(1)).clip(min=0.3 * footprint)
    sz = 0.1 * np.minimum(sx, sy)
    R = np.stack([ax, ay, n], 2)  # columns: the Gaussian's axes
    from neuralframe.render.camera import rotmat_to_quat

    quats = rotmat_to_quat(torch.from_numpy(R)).float()
    scales = torch.from_numpy(np.log(np.stack([sx, sy, sz], 1))).float()
    sh = rgb_to_sh0(torch.from_numpy(block).float().clamp(0.02, 0.98))[:, None, :]
    opac = torch.full((len(zc),), 2.0)
    return Gaussians(torch.from_numpy(means).float(), quats, scales, opac, sh.contiguous())


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.clamp(0, 1) - b) ** 2).mean())
    return 10.0 * math.log10(1.0 / max(mse, 1e-12))


def crop_camera(camera: Camera, x0: int, y0: int, w: int, h: int) -> Camera:
    """The camera that sees the pixels [y0:y0+h, x0:x0+w] of `camera`."""
    K = camera.K.clone()
    K[0, 2] -= x0
    K[1, 2] -= y0
    return Camera(camera.viewmat, K, w, h, camera.near, camera.far)


def refine(g: Gaussians, images: list[torch.Tensor], cameras: list[Camera], settings: StereoSettings,
           progress: Callable[[int, int, float], None] | None = None) -> Gaussians:
    """Adam on colours, opacities and scales through `ref.rasterize`, one random crop per step."""
    from neuralframe.render.splat import rasterize_ref as ref

    colors = g.sh[:, 0].clone().requires_grad_(True)
    logits = g.opacities.clone().requires_grad_(True)
    scales = g.scales.clone().requires_grad_(True)
    opt = torch.optim.Adam([
        {"params": [colors], "lr": settings.lr_color},
        {"params": [logits], "lr": settings.lr_opacity},
        {"params": [scales], "lr": settings.lr_scale},
    ])
    rng = np.random.default_rng(settings.seed)
    c = settings.crop
    for step in range(settings.steps):
        view = step % len(cameras)
        cam, img = cameras[view], images[view]
        x0 = int(rng.integers(0, cam.width - c + 1))
        y0 = int(rng.integers(0, cam.height - c + 1))
        sub = crop_camera(cam, x0, y0, c, c)
        cur = Gaussians(g.means, g.quats, scales, logits, colors[:, None, :])
        out = ref.rasterize(cur, sub)
        target = img[y0:y0 + c, x0:x0 + c]
        loss = (out.rgb - target).abs().mean() + 0.2 * ((out.rgb - target) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            scales.clamp_(max=math.log(0.05))
        if progress is not None:
            progress(step + 1, settings.steps, float(loss.detach()))
    return Gaussians(g.means, g.quats, scales.detach(), logits.detach(), colors.detach()[:, None, :].contiguous())


def build_motorcycle(out_path, steps: int = 240, progress: Callable[[int, int, float], None] | None = None,
                     settings: StereoSettings | None = None, card: bool = True) -> dict:
    """Build, refine, evaluate and save the motorcycle scene; returns its metrics.

    With `card=True`, also writes `<out>.json` (the scene card: command, data source and license,
    settings, wall time, metrics) and preview renders from nearby viewpoints in `previews/` beside it.

    Returns:
        dict with psnr_left_db, psnr_right_db, psnr_left_initial_db, n_gaussians, seconds,
        file_bytes, steps and stride.
    """
    from neuralframe.render.splat import io
    from neuralframe.render.splat.rasterize import rasterize

    settings = settings or StereoSettings(steps=steps)
    if settings.steps != steps:
        settings = StereoSettings(**{**settings.__dict__, "steps": steps})
    start = time.perf_counter()
    torch.manual_seed(settings.seed)
    left, right, disp = load_pair()
    cam_left, cam_right = stereo_cameras()
    images = [torch.from_numpy(left), torch.from_numpy(right)]
    g = initial_gaussians(left, disp, settings.stride)
    psnr_initial = psnr(rasterize(g, cam_left).rgb, images[0])
    g = refine(g, images, [cam_left, cam_right], settings, progress)
    out_left = rasterize(g, cam_left)
    out_right = rasterize(g, cam_right)
    path = io.save(g, out_path)
    metrics = {
        "psnr_left_db": round(psnr(out_left.rgb, images[0]), 3),
        "psnr_right_db": round(psnr(out_right.rgb, images[1]), 3),
        "psnr_left_initial_db": round(psnr_initial, 3),
        "n_gaussians": g.n,
        "seconds": round(time.perf_counter() - start, 1),
        "file_bytes": path.stat().st_size,
        "steps": settings.steps,
        "stride": settings.stride,
    }
    if card:
        write_card(path, metrics, settings)
        save_previews(g, path.parent / "previews")
        write_cameras(path)
    return metrics


def preview_cameras(width: int = 741, height: int = 500) -> dict[str, Camera]:
    """The left camera and four cameras 25-30 cm around it, all looking at the motorcycle."""
    from neuralframe.render.camera import look_at

    left, _ = stereo_cameras()
    target = (0.05, 0.1, 3.0)  # roughly the middle of the bike, in metres from the left camera
    views = {"left": left}
    for name, eye in {"from_left": (-0.3, 0.0, 0.0), "from_right": (0.3, 0.0, 0.0),
                      "from_above": (0.0, -0.25, 0.0), "closer": (0.05, 0.0, 0.5)}.items():
        views[name] = left.moved(look_at(eye, target))
    return views


def save_previews(g: Gaussians, folder) -> list:
    """Render `g` from `preview_cameras` to PNG files in `folder`; returns their paths."""
    from PIL import Image

    from neuralframe.render.splat.rasterize import rasterize

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, cam in preview_cameras().items():
        out = rasterize(g, cam, background=torch.tensor([1.0, 1.0, 1.0]))
        path = folder / f"motorcycle_{name}.png"
        Image.fromarray(out.to_uint8()).save(path)
        paths.append(path)
    return paths


def write_card(ply_path, metrics: dict, settings: StereoSettings) -> None:
    """The scene card `<scene>.json`: how to rebuild the scene, from what, and how good it is."""
    import json
    import os

    ply_path = Path(ply_path)
    card = {
        "scene": ply_path.name,
        "command": f"neuralframe data splat-from-stereo -o {ply_path.as_posix()} --steps {settings.steps}",
        "function": "neuralframe.render.splat.stereo.build_motorcycle",
        "data": DATA_SOURCE,
        "calibration": {"focal_px": FOCAL, "cx": CX, "cy": CY, "doffs_px": DOFFS, "baseline_m": BASELINE,
                        "width": 741, "height": 500},
        "method": "one flat surface-aligned Gaussian per stride x stride block of the left image, on the "
                  "back-projected ground-truth disparity (unknown disparities filled from the nearest "
                  "known pixel); colours, opacities and scales refined with Adam through the "
                  "differentiable reference rasterizer on random crops of the left and right images.",
        "settings": settings.__dict__,
        "wall_time_s": metrics["seconds"],
        "metrics": metrics,
        "coordinates": "left camera frame, OpenCV axes (x right, y down, z forward), metres",
        "previews": "previews/motorcycle_*.png (white background)",
    }
    tmp = ply_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(card, indent=2) + "\n")
    os.replace(tmp, ply_path.with_suffix(".json"))


def write_cameras(ply_path) -> Path:
    """The capture cameras beside the scene (`NAME.cameras.json`), so viewers start at the left view."""
    import json

    path = Path(ply_path)
    out = path.with_name(f"{path.stem}.cameras.json")
    out.write_text(json.dumps([c.to_dict() for c in stereo_cameras()], indent=1))
    return out
