"""The glTF writer (see `gltf` for the attribute mapping): one POINTS primitive of float32 attributes in
glTF axes, unit xyzw quaternions, linear scales and opacities, SH by degree and order, and a COLOR_0
fallback; a .glb with a BIN chunk, or a .gltf carrying its buffer as a base64 data: URI."""

from __future__ import annotations

import base64
import json
import struct

import numpy as np

from neuralframe.errors import InputError
from neuralframe.render.splat.formats import gltf_space
from neuralframe.render.splat.formats.common import sigmoid
from neuralframe.render.splat.gaussians import SH_C0, Gaussians

EXT = "KHR_gaussian_splatting"
GLB_MAGIC, JSON_CHUNK, BIN_CHUNK = b"glTF", 0x4E4F534A, 0x004E4942


def sh_name(degree: int, n: int) -> str:
    return f"{EXT}:SH_DEGREE_{degree}_COEF_{n}"


def _srgb_to_linear(c: np.ndarray) -> np.ndarray:
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def encode(g: Gaussians, name: str) -> bytes:
    if g.n == 0:
        raise InputError(f"{name}: a glTF file cannot hold an empty scene (accessor counts are at least 1)")
    arrays = [t.numpy().astype(np.float32) for t in (g.means, g.quats, g.scales, g.sh)]
    means, quats, log_scales, sh = gltf_space.apply(gltf_space.LUF_TO_RDF, *arrays)  # INRIA -> glTF axes
    q = quats.astype(np.float64)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    opacity = sigmoid(g.opacities.numpy())
    with np.errstate(over="ignore"):
        scale = np.exp(log_scales.astype(np.float64)).astype(np.float32)
    if not np.isfinite(scale).all():
        raise InputError(f"{name}: some scales are too large for float32 (log scale above 88)")
    rgb = _srgb_to_linear(np.clip(sh[:, 0].astype(np.float64) * SH_C0 + 0.5, 0.0, 1.0))
    color = np.floor(np.concatenate([rgb, opacity[:, None]], 1) * 255.0 + 0.5).astype(np.uint8)
    columns = [("POSITION", means, "VEC3"), ("COLOR_0", color, "VEC4"),
               (f"{EXT}:ROTATION", np.concatenate([q[:, 1:], q[:, :1]], 1), "VEC4"),
               (f"{EXT}:SCALE", scale, "VEC3"), (f"{EXT}:OPACITY", opacity[:, None], "SCALAR")]
    columns += [(sh_name(d, n), sh[:, d * d + n], "VEC3") for d in range(g.sh_degree + 1) for n in range(2 * d + 1)]
    blobs, views, accessors, attributes, at = [], [], [], {}, 0
    for i, (semantic, values, kind) in enumerate(columns):
        blob = np.ascontiguousarray(values, "u1" if values.dtype == np.uint8 else "<f4").tobytes()
        views.append({"buffer": 0, "byteOffset": at, "byteLength": len(blob), "target": 34962})
        acc = {"bufferView": i, "componentType": 5121 if values.dtype == np.uint8 else 5126, "count": g.n,
               "type": kind}
        if values.dtype == np.uint8:
            acc["normalized"] = True
        if semantic == "POSITION":  # required by glTF; float32 values, exactly as stored
            acc["min"] = [float(v) for v in means.min(0)]
            acc["max"] = [float(v) for v in means.max(0)]
        accessors.append(acc)
        attributes[semantic] = i
        blobs.append(blob + b"\0" * (-len(blob) % 4))
        at += len(blobs[-1])
    body = b"".join(blobs)
    gltf = {"asset": {"version": "2.0", "generator": "neuralframe"}, "extensionsUsed": [EXT], "scene": 0,
            "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0}],
            "meshes": [{"primitives": [{"attributes": attributes, "mode": 0, "extensions": {EXT: {
                "kernel": "ellipse", "colorSpace": "srgb_rec709_display", "projection": "perspective",
                "sortingMethod": "cameraDistance"}}}]}],
            "buffers": [{"byteLength": len(body)}], "bufferViews": views, "accessors": accessors}
    if name.lower().endswith(".gltf"):
        gltf["buffers"][0]["uri"] = "data:application/octet-stream;base64," + base64.b64encode(body).decode()
        return json.dumps(gltf, separators=(",", ":")).encode()
    text = json.dumps(gltf, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    return b"".join([struct.pack("<4sII", GLB_MAGIC, 2, 12 + 8 + len(text) + 8 + len(body)),
                     struct.pack("<II", len(text), JSON_CHUNK), text,
                     struct.pack("<II", len(body), BIN_CHUNK), body])
