"""Hostile and careless inputs, built on demand from valid ones: scenes in every format, videos, image folders,
camera JSON, NeRF datasets, prompt files, model folders and weights, special files.

Each builder takes the folder to build in (and the session's valid inputs) and returns the path to hand to the
command. The suite in test_hostile_inputs.py names them by key.
"""

from __future__ import annotations

import gzip
import json
import os
import pickle
import shutil
import struct
import zipfile
from pathlib import Path

import numpy as np

from neuralframe.assets import asset

RNG_BYTES = np.random.default_rng(33).integers(0, 256, 4096, dtype=np.uint8).tobytes()


# ---- valid inputs, built once per session ----

def valid_inputs(folder: Path) -> dict[str, Path]:
    """Small valid inputs the corruptions start from: a scene in every writing format, a clip, a NeRF
    dataset."""
    from neuralframe.render.splat import formats
    from neuralframe.render.splat.procedural import random_scene

    g = random_scene(600, seed=1, sh_degree=3)
    out = {}
    for name in ("scene.ply", "scene.compressed.ply", "scene.splat", "scene.spz", "scene.sog", "scene.glb",
                 "scene.gltf"):
        out[name] = formats.save(g, folder / name)
    out["scene-v3.spz"] = formats.save(g, folder / "scene-v3.spz", version=3)  # the gzip layout
    out["one.ply"] = formats.save(g[:1], folder / "one.ply")
    clip = folder / "clip.mp4"
    _write_clip(clip, frames=6)
    out["clip.mp4"] = clip
    return out


def _write_clip(path: Path, frames: int, size: tuple[int, int] = (64, 48)) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(frames):
            image = np.full((size[1], size[0], 3), 20 * i, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


# ---- corruptions of any file ----

def empty(folder: Path, name: str) -> Path:
    path = folder / name
    path.write_bytes(b"")
    return path


def truncated(folder: Path, source: Path, name: str | None = None) -> Path:
    path = folder / (name or source.name)
    data = source.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def garbage(folder: Path, name: str) -> Path:
    path = folder / name
    path.write_bytes(RNG_BYTES)
    return path


def text_as(folder: Path, name: str) -> Path:
    path = folder / name
    path.write_text("this is a note, not the file its name says\n")
    return path


def png_as(folder: Path, name: str) -> Path:
    path = folder / name
    shutil.copy(asset("media", "camera.png"), path)
    return path


def folder_as(folder: Path, name: str) -> Path:
    path = folder / name
    path.mkdir()
    return path


# ---- scenes that lie ----

def ply_lying_count(folder: Path, source: Path) -> Path:
    """A PLY whose header claims ten billion vertices over a small body."""
    data = source.read_bytes()
    head, _, body = data.partition(b"end_header\n")
    lines = [b"element vertex 10000000000" if line.startswith(b"element vertex") else line
             for line in head.split(b"\n")]
    path = folder / "lying.ply"
    path.write_bytes(b"\n".join(lines) + b"end_header\n" + body)
    return path


def ply_nan(folder: Path, source: Path) -> Path:
    """A PLY whose first Gaussian's x is NaN (the format stores float32 x first)."""
    data = bytearray(source.read_bytes())
    start = data.index(b"end_header\n") + len(b"end_header\n")
    data[start:start + 4] = struct.pack("<f", float("nan"))
    path = folder / "nan.ply"
    path.write_bytes(bytes(data))
    return path


def splat_ragged(folder: Path, source: Path) -> Path:
    """A .splat whose length is not a multiple of its 32-byte records."""
    path = folder / "ragged.splat"
    path.write_bytes(source.read_bytes()[:-5])
    return path


def spz_lying_count(folder: Path, source: Path) -> Path:
    """A .spz whose header (after gzip) claims two billion points."""
    raw = bytearray(gzip.decompress(source.read_bytes()))
    raw[8:12] = struct.pack("<I", 2_000_000_000)
    path = folder / "lying.spz"
    path.write_bytes(gzip.compress(bytes(raw)))
    return path


def spz_bomb(folder: Path, source: Path) -> Path:
    """A small .spz that inflates far beyond what its header says (the valid header, then 256 MB of zeros)."""
    raw = gzip.decompress(source.read_bytes())
    path = folder / "bomb.spz"
    with gzip.open(path, "wb", compresslevel=9) as f:
        f.write(raw[:16])
        zeros = bytes(16 * 1024 * 1024)
        for _ in range(16):
            f.write(zeros)
    return path


def sog_lying_count(folder: Path, source: Path) -> Path:
    """A .sog whose meta.json claims a billion Gaussians."""
    path = folder / "lying.sog"
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(path, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item)
            if item.filename.endswith("meta.json"):
                meta = json.loads(data)
                meta["count"] = 1_000_000_000
                data = json.dumps(meta).encode()
            zout.writestr(item, data)
    return path


def sog_zip_bomb(folder: Path, source: Path) -> Path:
    """A .sog whose first image is an entry that inflates to 256 MB of zeros."""
    path = folder / "bomb.sog"
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zout:
        images = [i for i in zin.infolist() if i.filename.endswith(".webp")]
        for item in zin.infolist():
            if item is images[0]:
                with zout.open(item.filename, "w", force_zip64=True) as f:
                    zeros = bytes(64 * 1024 * 1024)
                    for _ in range(4):
                        f.write(zeros)
            else:
                zout.writestr(item, zin.read(item))
    return path


def glb_lying_count(folder: Path, source: Path) -> Path:
    """A .gltf whose accessors claim a billion elements."""
    doc = json.loads(source.read_text())
    for accessor in doc.get("accessors", []):
        accessor["count"] = 1_000_000_000
    path = folder / "lying.gltf"
    path.write_text(json.dumps(doc))
    for extra in source.parent.glob(source.stem + "*.bin"):
        shutil.copy(extra, folder / extra.name)
    return path


def ksplat_garbage(folder: Path) -> Path:
    return garbage(folder, "scene.ksplat")


# ---- cameras, datasets, prompts ----

def camera_json(folder: Path, kind: str) -> Path:
    path = folder / f"cameras-{kind}.json"
    good = json.loads(asset("scenes", "motorcycle.cameras.json").read_text())
    first = good[0] if isinstance(good, list) else good
    texts = {
        "invalid": "[{\"width\": 64,",
        "empty-list": "[]",
        "number": "42",
        "missing-keys": json.dumps([{"width": 64}]),
        "nan": json.dumps([{**first, "width": float("nan")}]).replace("NaN", "NaN"),
        "negative-size": json.dumps([{**first, "width": -64, "height": -48}]),
        "huge-size": json.dumps([{**first, "width": 10**9, "height": 10**9}]),
        "binary": RNG_BYTES.decode("latin-1"),
    }
    path.write_text(texts[kind], encoding="latin-1")
    return path


def nerf_dataset(folder: Path, kind: str) -> Path:
    root = folder / f"nerf-{kind}"
    root.mkdir()
    frame = {"file_path": "./train/r_0", "transform_matrix": np.eye(4).tolist()}
    docs = {
        "missing": None,
        "invalid": "{\"camera_angle_x\": ",
        "no-frames": json.dumps({"camera_angle_x": 0.69, "frames": []}),
        "missing-image": json.dumps({"camera_angle_x": 0.69, "frames": [frame]}),
        "bad-matrix": json.dumps({"camera_angle_x": 0.69, "frames": [{**frame, "transform_matrix": [[1, 2]]}]}),
    }
    if docs[kind] is not None:
        (root / "transforms_train.json").write_text(docs[kind])
    if kind == "bad-matrix":  # the image is there: the matrix is what is wrong
        (root / "train").mkdir()
        shutil.copy(asset("media", "camera.png"), root / "train" / "r_0.png")
    return root


def prompts_file(folder: Path, kind: str) -> Path:
    path = folder / f"prompts-{kind}.txt"
    if kind == "empty":
        path.write_text("")
    elif kind == "comments":
        path.write_text("# only a comment\n\n   \n")
    elif kind == "binary":
        path.write_bytes(RNG_BYTES)
    elif kind == "long":
        path.write_text("a red circle " * 20_000 + "\n")
    return path


# ---- models and weights ----

class _Boom:
    """Pickled code: unpickling it would create a file (the tests check it never appears)."""

    marker: str = ""

    def __reduce__(self):
        return (open, (self.marker, "w"))


def pickled_code_pth(folder: Path) -> Path:
    import torch

    path = folder / "rvm_mobilenetv3.pth"
    boom = _Boom()
    boom.marker = str(folder / "PWNED")
    torch.save({"weights": boom}, path)
    return path


def pickle_not_torch(folder: Path) -> Path:
    path = folder / "plain.pth"
    path.write_bytes(pickle.dumps({"a": 1}))
    return path


def model_folder(folder: Path, kind: str) -> Path:
    root = folder / f"model-{kind}"
    if kind == "empty":
        root.mkdir()
        return root
    shutil.copytree(asset("models", "tiny-shapes"), root)
    if kind == "broken-index":
        (root / "model_index.json").write_text("{ not json")
    elif kind == "missing-unet":
        shutil.rmtree(root / "unet")
    elif kind == "truncated-unet":
        weights = next((root / "unet").glob("*.safetensors"))
        weights.write_bytes(weights.read_bytes()[:1000])
    elif kind == "unet-config-disagrees":
        config = json.loads((root / "unet" / "config.json").read_text())
        config["block_out_channels"] = [c * 2 for c in config["block_out_channels"]]
        (root / "unet" / "config.json").write_text(json.dumps(config))
    return root


def fifo(folder: Path) -> Path:
    path = folder / "pipe.mp4"
    os.mkfifo(path)
    return path
