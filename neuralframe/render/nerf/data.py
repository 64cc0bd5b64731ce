"""NeRF datasets: the `transforms.json` format, and the procedural synthetic scene.

Two layouts are read, both with OpenGL/Blender camera-to-world `transform_matrix` per frame:

- NeRF-synthetic: `transforms_train.json`, `transforms_val.json`, `transforms_test.json`;
- instant-ngp: one `transforms.json` (every 8th frame is held out for validation).

Intrinsics are `camera_angle_x` (optionally `camera_angle_y`) or `fl_x`/`fl_y`/`cx`/`cy`/`w`/`h`.
The scene box follows instant-ngp: the unit cube of its normalised space (`scale` 0.33 and `offset`
0.5 by default), grown around its centre by `aabb_scale`.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from neuralframe.backend.memory import check_image
from neuralframe.errors import InputError, OutputError

SPLITS = ("train", "val", "test")
_EXTENSIONS = ("", ".png", ".jpg", ".jpeg", ".PNG", ".JPG")


@dataclass
class NerfDataset:
    """Posed RGBA images of one split.

    Args:
        images: [N, H, W, 4] float32 in [0, 1], straight (not premultiplied) colour and alpha.
        c2w: [N, 4, 4] float32 OpenGL camera-to-world matrices.
        K: [3, 3] float32 intrinsics (pixel centres at +0.5).
        aabb: (xmin, ymin, zmin, xmax, ymax, zmax) scene box in world units.
        names: the frames' file paths, for messages.
    """

    images: torch.Tensor  # [N, H, W, 4]
    c2w: torch.Tensor  # [N, 4, 4]
    K: torch.Tensor  # [3, 3]
    aabb: tuple[float, ...]
    names: list[str]

    @property
    def height(self) -> int:
        return int(self.images.shape[1])

    @property
    def width(self) -> int:
        return int(self.images.shape[2])

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def camera(self, index: int):
        from neuralframe.render.camera import Camera

        return Camera.from_opengl(self.c2w[index].double(), self.K.double(), self.width, self.height)


# ---- reading ----


def _read_json(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except json.JSONDecodeError as error:
        raise InputError(f"{path}: malformed JSON ({error})") from None
    except OSError as error:
        raise InputError(f"{path}: cannot be read ({error.strerror})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("frames"), list) or not meta["frames"]:
        raise InputError(f"{path}: expected an object with a non-empty 'frames' list")
    return meta


def _find_image(root: Path, file_path: str) -> Path | None:
    for ext in _EXTENSIONS:
        candidate = (root / (file_path + ext)).resolve()
        if candidate.is_file():
            return candidate
    return None


def _load_image(path: Path, where: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as img:
            img = img.convert("RGBA")
            return np.asarray(img, dtype=np.float32) / 255.0
    except (OSError, Image.DecompressionBombError) as error:
        raise InputError(f"{where}: image {path} cannot be decoded ({error})") from None


def _intrinsics(meta: dict, where: str, width: int, height: int) -> np.ndarray:
    if "fl_x" in meta:
        fx = float(meta["fl_x"])
        fy = float(meta.get("fl_y", fx))
    elif "camera_angle_x" in meta:
        fx = 0.5 * width / math.tan(0.5 * float(meta["camera_angle_x"]))
        fy = 0.5 * height / math.tan(0.5 * float(meta["camera_angle_y"])) if "camera_angle_y" in meta else fx
    else:
        raise InputError(f"{where}: no intrinsics: give 'camera_angle_x' or 'fl_x'")
    cx = float(meta.get("cx", width / 2.0))
    cy = float(meta.get("cy", height / 2.0))
    if not (fx > 0 and fy > 0):
        raise InputError(f"{where}: focal length must be positive, got fl_x={fx}, fl_y={fy}")
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], np.float32)


def _pose(frame: dict, where: str) -> np.ndarray:
    try:
        m = np.asarray(frame["transform_matrix"], dtype=np.float64)
    except KeyError:
        raise InputError(f"{where}: no 'transform_matrix'") from None
    except (TypeError, ValueError):
        raise InputError(f"{where}: 'transform_matrix' is not a matrix of numbers") from None
    if m.shape == (3, 4):
        m = np.concatenate([m, [[0.0, 0.0, 0.0, 1.0]]])
    if m.shape != (4, 4):
        raise InputError(f"{where}: 'transform_matrix' must be 4x4, got shape {list(m.shape)}")
    if not np.isfinite(m).all():
        raise InputError(f"{where}: 'transform_matrix' has NaN or infinite values")
    if abs(np.linalg.det(m[:3, :3])) < 1e-6:
        raise InputError(f"{where}: 'transform_matrix' is singular (its rotation has determinant ~0)")
    return m


def _box(meta: dict) -> tuple[float, ...]:
    aabb_scale = float(meta.get("aabb_scale", 1.0))
    scale = float(meta.get("scale", 0.33))
    offset = np.broadcast_to(np.asarray(meta.get("offset", 0.5), dtype=np.float64), (3,))
    lo = (0.5 - aabb_scale / 2.0 - offset) / scale
    hi = (0.5 + aabb_scale / 2.0 - offset) / scale
    return tuple(float(v) for v in np.concatenate([lo, hi]))


def _load_frames(path: Path, meta: dict, frames: list) -> NerfDataset:
    root = path.parent
    images, poses, names = [], [], []
    size = None
    if "w" in meta and "h" in meta:
        size = (int(meta["h"]), int(meta["w"]))
    for i, frame in enumerate(frames):
        name = str(frame.get("file_path", "")) if isinstance(frame, dict) else ""
        where = f"{path.name} frame {i} ('{name}')"
        if not isinstance(frame, dict) or not name:
            raise InputError(f"{path.name} frame {i}: no 'file_path'")
        image_path = _find_image(root, name)
        if image_path is None:
            raise InputError(f"{where}: image not found under {root}")
        if i == 0:  # every image is this size: float32 RGBA, then stacked into one array (a copy)
            check_image(image_path, f"{path.name}: {len(frames)} images like {image_path.name}",
                        32 * len(frames), "use fewer or smaller images")
        image = _load_image(image_path, where)
        if size is None:
            size = image.shape[:2]
        elif image.shape[:2] != size:
            raise InputError(
                f"{where}: image is {image.shape[1]}x{image.shape[0]}, but the dataset is {size[1]}x{size[0]}")
        poses.append(_pose(frame, where))
        images.append(image)
        names.append(name)
    K = _intrinsics(meta, path.name, size[1], size[0])
    return NerfDataset(torch.from_numpy(np.stack(images)), torch.from_numpy(np.stack(poses)).float(),
                       torch.from_numpy(K), _box(meta), names)


def load_dataset(data_dir: str | os.PathLike, split: str = "train") -> NerfDataset:
    """Load one split ("train", "val" or "test") of a dataset folder; clear errors name the frame."""
    root = Path(data_dir)
    if split not in SPLITS:
        raise InputError(f"unknown split '{split}': use one of {', '.join(SPLITS)}")
    if not root.is_dir():
        raise InputError(f"{root}: dataset folder not found")
    per_split = root / f"transforms_{split}.json"
    if per_split.is_file():
        meta = _read_json(per_split)
        return _load_frames(per_split, meta, meta["frames"])
    single = root / "transforms.json"
    if single.is_file():
        meta = _read_json(single)
        frames = meta["frames"]
        held_out = frames[::8] if len(frames) > 1 else frames
        chosen = [f for i, f in enumerate(frames) if i % 8 != 0 or len(frames) == 1] if split == "train" else held_out
        return _load_frames(single, meta, chosen)
    if split == "test" and (root / "transforms_val.json").is_file():
        return load_dataset(root, "val")
    raise InputError(f"{root}: no transforms_{split}.json or transforms.json")


# ---- the synthetic scene ----


def _write_atomic(path: Path, write: Callable[[str], None]) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(str(tmp))
        os.replace(tmp, path)
    except OSError as error:
        if tmp.exists():
            tmp.unlink()
        raise OutputError(f"{path}: cannot be written ({error.strerror or error})") from None


def _save_png(path: Path, rgba: np.ndarray) -> None:
    from PIL import Image

    image = Image.fromarray((np.clip(rgba, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), "RGBA")
    _write_atomic(path, lambda tmp: image.save(tmp, format="PNG"))


def make_synthetic(
    out_dir: str | os.PathLike,
    size: int = 200,
    n_train: int = 100,
    n_val: int = 10,
    n_test: int = 10,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write a NeRF-synthetic-format dataset of the procedural object (train/val/test splits).

    Args:
        out_dir: folder to create or fill (`transforms_{split}.json` and `{split}/r_{i}.png`).
        size: image width and height in pixels.
        n_train, n_val, n_test: views per split; training views cover the sphere evenly, the others
            are random, seen from above the horizon.
        seed: the random seed of the camera placement.
        progress: called as progress(images_done, images_total).
    Returns the folder.
    """
    from neuralframe.render.nerf import synthetic

    if size < 8:
        raise InputError(f"image size must be at least 8 pixels, got {size}")
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"{out}: cannot create the folder ({error.strerror})") from None
    rng = np.random.default_rng(seed)
    angle_x = 0.6911112070083618  # NeRF-synthetic's lego camera
    focal = 0.5 * size / math.tan(0.5 * angle_x)
    radius = 4.0
    poses = {"train": synthetic.sphere_poses(n_train, radius, rng)}
    for split, count in (("val", n_val), ("test", n_test)):
        eyes = []
        for _ in range(count):
            z = rng.uniform(0.05, 0.9)
            phi = rng.uniform(0, 2 * math.pi)
            r = math.sqrt(1 - z * z)
            eyes.append(synthetic.look_at_gl(radius * np.array([r * math.cos(phi), r * math.sin(phi), z])))
        poses[split] = eyes
    total = n_train + n_val + n_test
    done = 0
    for split in SPLITS:
        (out / split).mkdir(exist_ok=True)
        frames = []
        for i, c2w in enumerate(poses[split]):
            rgba = synthetic.render_view(c2w, focal, size, size)
            _save_png(out / split / f"r_{i}.png", rgba)
            frames.append({"file_path": f"./{split}/r_{i}", "transform_matrix": c2w.tolist()})
            done += 1
            if progress is not None:
                progress(done, total)
        meta = {"camera_angle_x": angle_x, "aabb_scale": 1, "frames": frames}
        text = json.dumps(meta, indent=2)
        _write_atomic(out / f"transforms_{split}.json", lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return out
