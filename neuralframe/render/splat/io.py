"""Scene files: INRIA 3DGS .ply, the 32-byte web .splat and Niantic's .spz; format by extension.

- `.ply`: binary PLY with `x y z [nx ny nz] f_dc_0..2 f_rest_0..M opacity scale_0..2 rot_0..3`, as
  INRIA 3DGS, gsplat's exporter and nerfstudio write it. `f_rest` is channel-major (all red
  coefficients, then green, then blue). Lossless.
- `.splat`: 32 bytes per Gaussian: position f32x3, linear scale f32x3, RGBA u8x4 (colour =
  0.5 + C0 * f_dc, alpha = sigmoid(opacity)), rotation u8x4 (w, x, y, z) = q * 128 + 128. Degree-0
  colour only; colours outside [0, 1] are clipped.
- `.spz`: gzip-compressed, 24-bit fixed-point positions, 8-bit everything else, SH up to degree 3.
  Versions 2 and 3 are read, version 3 is written. spz stores the RUB axes (x right, y up, z back);
  it is converted to and from the RDF axes of INRIA .ply files (what spz's own tools do), so a
  scene looks the same whichever of the three formats it was loaded from.

Errors (missing file, truncated data, wrong header, missing properties, an SH count that is not
(degree + 1)^2 - 1 per channel, NaN/inf values) raise `InputError` naming the file and the problem.
Writes go to a temporary file in the same folder, then `os.replace`: no partial files.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import tempfile
import warnings
import zlib
from pathlib import Path

import numpy as np
import torch

from neuralframe.errors import InputError, OutputError
from neuralframe.render.splat.gaussians import SH_C0, Gaussians, sh_coeffs, sh_degree_for

FORMATS = (".ply", ".splat", ".spz")

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
    "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}
_MAX_HEADER = 1 << 16


# ----------------------------------------------------------------------------------------------
# public entry points


def load(path) -> Gaussians:
    """Load a scene from `.ply`, `.splat` or `.spz` (chosen by extension)."""
    path = Path(path)
    suffix = _suffix(path)
    if not path.exists():
        raise InputError(f"{path}: scene file not found")
    if not path.is_file():
        raise InputError(f"{path}: not a file")
    data = path.read_bytes()
    if not data:
        raise InputError(f"{path}: the file is empty")
    reader = {".ply": _read_ply, ".splat": _read_splat, ".spz": _read_spz}[suffix]
    g = reader(data, str(path))
    g.check_finite(str(path))
    return g


def save(gaussians: Gaussians, path) -> Path:
    """Write a scene to `.ply`, `.splat` or `.spz` (chosen by extension); returns the path."""
    path = Path(path)
    suffix = _suffix(path)
    gaussians.check_finite("scene to save")
    writer = {".ply": _encode_ply, ".splat": _encode_splat, ".spz": _encode_spz}[suffix]
    blob = writer(gaussians.detach().cpu(), str(path))
    _write_atomic(path, blob)
    return path


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise InputError(f"{path}: unknown scene format '{path.suffix or '(none)'}' "
                         f"(use {', '.join(FORMATS)})")
    return suffix


def _write_atomic(path: Path, blob: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise OutputError(f"{path}: cannot write ({error.strerror or error})") from error
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a scene file is an ordinary shared file
        os.replace(tmp, path)
    except BaseException as error:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(error, OSError):
            raise OutputError(f"{path}: cannot write ({error.strerror or error})") from error
        raise


def _gaussians(means, quats, scales, logits, sh, antialiased=False) -> Gaussians:
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    return Gaussians(t(means), t(quats), t(scales), t(logits), t(sh), antialiased=antialiased)


def _logit(p: np.ndarray) -> np.ndarray:
    p = p.astype(np.float64)
    return np.log(p / (1.0 - p))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x.astype(np.float64)))


# ----------------------------------------------------------------------------------------------
# .ply


def _read_ply(data: bytes, name: str) -> Gaussians:
    if not data.startswith(b"ply"):
        raise InputError(f"{name}: not a PLY file (it does not start with 'ply')")
    end = data.find(b"end_header", 0, _MAX_HEADER)
    if end < 0:
        raise InputError(f"{name}: PLY header has no 'end_header' line")
    body_start = data.find(b"\n", end) + 1
    if body_start == 0:
        raise InputError(f"{name}: PLY header is truncated")
    lines = data[:end].decode("ascii", errors="replace").replace("\r", "").split("\n")
    fmt = None
    elements: list[dict] = []
    for line in lines[1:]:
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "format":
            fmt = words[1] if len(words) > 1 else ""
        elif words[0] == "element" and len(words) == 3:
            try:
                count = int(words[2])
            except ValueError:
                raise InputError(f"{name}: PLY element '{words[1]}' has a bad count '{words[2]}'") from None
            elements.append({"name": words[1], "count": count, "props": [], "has_list": False})
        elif words[0] == "property" and elements:
            if len(words) >= 2 and words[1] == "list":
                elements[-1]["has_list"] = True
                continue
            if len(words) != 3 or words[1] not in _PLY_TYPES:
                raise InputError(f"{name}: PLY property line '{line.strip()}' is not understood")
            elements[-1]["props"].append((words[2], _PLY_TYPES[words[1]]))
        else:
            raise InputError(f"{name}: PLY header line '{line.strip()}' is not understood")
    if fmt == "ascii":
        raise InputError(f"{name}: ASCII PLY is not supported; save the scene as binary_little_endian")
    if fmt not in ("binary_little_endian", "binary_big_endian"):
        raise InputError(f"{name}: PLY format line is missing or unknown ({fmt!r})")
    order = "<" if fmt == "binary_little_endian" else ">"
    offset = body_start
    vertex = None
    for element in elements:
        if element["name"] == "vertex":
            vertex = element
            break
        if element["has_list"]:
            raise InputError(f"{name}: PLY element '{element['name']}' before 'vertex' has list "
                             "properties, which are not supported")
        offset += element["count"] * np.dtype([(p, order + t) for p, t in element["props"]]).itemsize
    if vertex is None:
        raise InputError(f"{name}: PLY file has no 'vertex' element")
    if vertex["has_list"]:
        raise InputError(f"{name}: PLY 'vertex' element has list properties, which are not supported")
    n = vertex["count"]
    if n <= 0:
        raise InputError(f"{name}: PLY file has no Gaussians (vertex count {n})")
    names = [p for p, _ in vertex["props"]]
    if len(set(names)) != len(names):
        raise InputError(f"{name}: PLY 'vertex' element repeats a property")
    dtype = np.dtype([(p, order + t) for p, t in vertex["props"]])
    need = n * dtype.itemsize
    if len(data) - offset < need:
        raise InputError(f"{name}: truncated: {n} Gaussians need {need} bytes of vertex data, "
                         f"the file has {max(len(data) - offset, 0)}")
    v = np.frombuffer(data, dtype=dtype, count=n, offset=offset)

    required = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
                "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    missing = [p for p in required if p not in names]
    if missing:
        raise InputError(f"{name}: not a 3D Gaussian-splat PLY: missing properties {', '.join(missing)}")
    rest = sorted((p for p in names if p.startswith("f_rest_")), key=lambda p: int(p[7:]) if p[7:].isdigit() else -1)
    if [p for p in rest] != [f"f_rest_{i}" for i in range(len(rest))]:
        raise InputError(f"{name}: f_rest properties are not numbered 0..{len(rest) - 1}")
    if len(rest) % 3:
        raise InputError(f"{name}: {len(rest)} f_rest properties cannot be split into 3 colour channels")
    sh_degree_or_error(len(rest) // 3 + 1, name)
    k = len(rest) // 3 + 1

    col = lambda *ps: np.stack([v[p].astype(np.float32) for p in ps], -1)  # noqa: E731
    means = col("x", "y", "z")
    sh = np.zeros((n, k, 3), np.float32)
    sh[:, 0] = col("f_dc_0", "f_dc_1", "f_dc_2")
    if k > 1:
        # Channel-major on disk: f_rest[c * (k - 1) + j] is coefficient j + 1 of channel c.
        flat = col(*rest).reshape(n, 3, k - 1)
        sh[:, 1:] = flat.transpose(0, 2, 1)
    return _gaussians(means, col("rot_0", "rot_1", "rot_2", "rot_3"), col("scale_0", "scale_1", "scale_2"),
                      v["opacity"].astype(np.float32), sh)


def sh_degree_or_error(k: int, name: str) -> int:
    try:
        return sh_degree_for(k)
    except InputError as error:
        raise InputError(f"{name}: {error}") from None


def _encode_ply(g: Gaussians, name: str) -> bytes:
    n, k = g.n, g.sh.shape[1]
    props = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    props += [f"f_rest_{i}" for i in range(3 * (k - 1))]
    props += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    sh = g.sh.numpy()
    cols = [g.means.numpy(), np.zeros((n, 3), np.float32), sh[:, 0],
            sh[:, 1:].transpose(0, 2, 1).reshape(n, 3 * (k - 1)),
            g.opacities.numpy()[:, None], g.scales.numpy(), g.quats.numpy()]
    body = np.ascontiguousarray(np.concatenate(cols, 1), dtype="<f4")
    header = "ply\nformat binary_little_endian 1.0\n"
    header += f"element vertex {n}\n" + "".join(f"property float {p}\n" for p in props) + "end_header\n"
    return header.encode("ascii") + body.tobytes()


# ----------------------------------------------------------------------------------------------
# .splat

_SPLAT_DTYPE = np.dtype([("pos", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])


def _read_splat(data: bytes, name: str) -> Gaussians:
    if len(data) % 32:
        raise InputError(f"{name}: truncated or not a .splat file: {len(data)} bytes is not a multiple "
                         "of 32 (one Gaussian is 32 bytes)")
    v = np.frombuffer(data, dtype=_SPLAT_DTYPE)
    scale = v["scale"].astype(np.float64)
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        bad = int(np.flatnonzero(~(np.isfinite(scale) & (scale > 0)).all(1))[0])
        raise InputError(f"{name}: Gaussian {bad} has a non-positive or non-finite scale")
    rgba = v["rgba"].astype(np.float64) / 255.0
    quats = (v["rot"].astype(np.float32) - 128.0) / 128.0
    sh = ((rgba[:, :3] - 0.5) / SH_C0)[:, None, :]
    # 0 and 255 stand for "below half a step" and "above"; keep the logit finite.
    opac = np.clip(rgba[:, 3], 0.5 / 255.0, 1.0 - 0.5 / 255.0)
    return _gaussians(v["pos"], quats, np.log(scale), _logit(opac), sh)


def _encode_splat(g: Gaussians, name: str) -> bytes:
    if g.sh_degree > 0:
        warnings.warn(f"{name}: .splat stores colour only; SH degree {g.sh_degree} terms are dropped",
                      stacklevel=3)
    out = np.zeros(g.n, _SPLAT_DTYPE)
    out["pos"] = g.means.numpy()
    out["scale"] = np.exp(g.scales.numpy().astype(np.float64))
    rgb = 0.5 + SH_C0 * g.sh[:, 0].numpy().astype(np.float64)
    alpha = _sigmoid(g.opacities.numpy())
    out["rgba"] = _u8(np.concatenate([rgb, alpha[:, None]], 1) * 255.0)
    q = g.quats.numpy().astype(np.float64)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    out["rot"] = _u8(q * 128.0 + 128.0)
    return out.tobytes()


def _u8(x: np.ndarray) -> np.ndarray:
    """Round half away from zero and clamp to 0..255 (as C's std::round would)."""
    return np.clip(np.floor(x + 0.5), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------
# .spz

_SPZ_MAGIC = 0x5053474E  # "NGSP"
_SPZ_COLOR_SCALE = 0.15
_SQRT1_2 = 1.0 / math.sqrt(2.0)
# RUB <-> RDF: a half turn about x. Positions and quaternion vectors flip y and z; SH coefficients
# flip when their basis function is odd in y and z together (index 1..15 of ref.sh_basis).
_FLIP_P = np.array([1.0, -1.0, -1.0])
_FLIP_SH = np.array([-1, -1, 1, -1, 1, 1, -1, 1, -1, 1, -1, -1, 1, -1, 1], np.float64)


def _read_spz(data: bytes, name: str) -> Gaussians:
    try:
        raw = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as error:
        raise InputError(f"{name}: not a valid gzip-compressed .spz file ({error})") from None
    if len(raw) < 16:
        raise InputError(f"{name}: truncated: the .spz header needs 16 bytes, found {len(raw)}")
    magic, version, n, degree, frac_bits, flags, _ = struct.unpack("<IIIBBBB", raw[:16])
    if magic != _SPZ_MAGIC:
        raise InputError(f"{name}: not an .spz file (bad magic number 0x{magic:08x})")
    if version not in (2, 3):
        raise InputError(f"{name}: .spz version {version} is not supported (versions 2 and 3 are)")
    if degree > 3:
        raise InputError(f"{name}: .spz SH degree {degree} is not supported (0 to 3)")
    if flags & 0x2:
        raise InputError(f"{name}: .spz extensions are not supported")
    if n == 0:
        raise InputError(f"{name}: the .spz file has no Gaussians")
    dim = sh_coeffs(degree) - 1
    rot_bytes = 4 if version >= 3 else 3
    sizes = [("positions", n * 9), ("alphas", n), ("colors", n * 3), ("scales", n * 3),
             ("rotations", n * rot_bytes), ("sh", n * dim * 3)]
    need = 16 + sum(s for _, s in sizes)
    if len(raw) < need:
        raise InputError(f"{name}: truncated: {n} Gaussians need {need} bytes after decompression, "
                         f"found {len(raw)}")
    parts, at = {}, 16
    for key, size in sizes:
        parts[key] = np.frombuffer(raw, np.uint8, size, at)
        at += size

    p = parts["positions"].reshape(n, 3, 3).astype(np.int32)
    fixed = p[..., 0] | (p[..., 1] << 8) | (p[..., 2] << 16)
    fixed = np.where(fixed & 0x800000, fixed - (1 << 24), fixed)
    means = fixed.astype(np.float64) / (1 << frac_bits) * _FLIP_P
    logits = _logit(np.clip(parts["alphas"].astype(np.float64) / 255.0, 0.5 / 255.0, 1.0 - 0.5 / 255.0))
    dc = (parts["colors"].reshape(n, 3).astype(np.float64) / 255.0 - 0.5) / _SPZ_COLOR_SCALE
    scales = parts["scales"].reshape(n, 3).astype(np.float64) / 16.0 - 10.0
    if version >= 3:
        xyzw = _unpack_smallest_three(parts["rotations"].reshape(n, 4))
    else:
        xyz = parts["rotations"].reshape(n, 3).astype(np.float64) / 127.5 - 1.0
        w = np.sqrt(np.clip(1.0 - (xyz ** 2).sum(1), 0.0, None))
        xyzw = np.concatenate([xyz, w[:, None]], 1)
    quats = np.concatenate([xyzw[:, 3:], xyzw[:, :3] * _FLIP_P], 1)  # (w, x, y, z), RDF axes
    sh = np.zeros((n, dim + 1, 3))
    sh[:, 0] = dc
    if dim:
        rest = (parts["sh"].reshape(n, dim, 3).astype(np.float64) - 128.0) / 128.0
        sh[:, 1:] = rest * _FLIP_SH[:dim, None]
    return _gaussians(means, quats, scales, logits, sh, antialiased=bool(flags & 0x1))


def _unpack_smallest_three(r: np.ndarray) -> np.ndarray:  # [n, 4] u8 -> [n, 4] (x, y, z, w)
    comp = (r[:, 0].astype(np.uint32) | (r[:, 1].astype(np.uint32) << 8)
            | (r[:, 2].astype(np.uint32) << 16) | (r[:, 3].astype(np.uint32) << 24))
    largest = (comp >> 30).astype(np.int64)
    q = np.zeros((len(r), 4))
    rows = np.arange(len(r))
    for i in (3, 2, 1, 0):
        here = largest != i
        mag = (comp & 511).astype(np.float64)
        neg = ((comp >> 9) & 1).astype(bool)
        value = _SQRT1_2 * mag / 511.0
        q[here, i] = np.where(neg, -value, value)[here]
        comp = np.where(here, comp >> 10, comp)
    q[rows, largest] = np.sqrt(np.clip(1.0 - (q ** 2).sum(1), 0.0, None))
    return q


def _pack_smallest_three(q: np.ndarray) -> np.ndarray:  # [n, 4] (x, y, z, w) unit -> [n, 4] u8
    n = len(q)
    largest = np.argmax(np.abs(q), 1)
    negate = q[np.arange(n), largest] < 0
    comp = largest.astype(np.uint32)
    for i in range(4):
        here = largest != i
        negbit = ((q[:, i] < 0) ^ negate).astype(np.uint32)
        mag = np.floor(511.0 * np.abs(q[:, i]) / _SQRT1_2 + 0.5).astype(np.uint32)
        comp = np.where(here, (comp << 10) | (negbit << 9) | np.minimum(mag, 511), comp)
    return np.stack([(comp >> s) & 0xFF for s in (0, 8, 16, 24)], 1).astype(np.uint8)


def _encode_spz(g: Gaussians, name: str, version: int = 3) -> bytes:
    n, degree = g.n, g.sh_degree
    frac_bits = 12
    means = g.means.numpy().astype(np.float64) * _FLIP_P
    fixed = np.floor(means * (1 << frac_bits) + 0.5).astype(np.int64)
    if np.abs(fixed).max(initial=0) >= (1 << 23):
        raise InputError(f"{name}: positions beyond +-2048 do not fit .spz's 24-bit fixed point; "
                         "use .ply for this scene")
    fixed &= 0xFFFFFF
    positions = np.stack([(fixed >> s) & 0xFF for s in (0, 8, 16)], -1).astype(np.uint8)  # [n, 3, 3]
    alphas = _u8(_sigmoid(g.opacities.numpy()) * 255.0)
    colors = _u8(g.sh[:, 0].numpy().astype(np.float64) * (_SPZ_COLOR_SCALE * 255.0) + 0.5 * 255.0)
    scales = _u8((g.scales.numpy().astype(np.float64) + 10.0) * 16.0)
    q = g.quats.numpy().astype(np.float64)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    xyzw = np.concatenate([q[:, 1:] * _FLIP_P, q[:, :1]], 1)
    if version >= 3:
        rotations = _pack_smallest_three(xyzw)
    else:
        xyzw = np.where(xyzw[:, 3:] < 0, -xyzw, xyzw)
        rotations = _u8(xyzw[:, :3] * 127.5 + 127.5)
    dim = sh_coeffs(degree) - 1
    if dim:
        rest = g.sh[:, 1:].numpy().astype(np.float64) * _FLIP_SH[:dim, None]
        q8 = np.floor(rest * 128.0 + 0.5) + 128.0
        # Degree-1 coefficients keep 5 bits, higher degrees 4 (spz's default buckets).
        bucket = np.where(np.arange(dim) < 3, 8, 16)[None, :, None]
        q8 = np.floor((q8 + bucket // 2) / bucket) * bucket
        sh = np.clip(q8, 0, 255).astype(np.uint8)
    else:
        sh = np.zeros((n, 0, 3), np.uint8)
    header = struct.pack("<IIIBBBB", _SPZ_MAGIC, version, n, degree, frac_bits,
                         0x1 if g.antialiased else 0, 0)
    raw = b"".join([header, positions.tobytes(), alphas.tobytes(), colors.tobytes(), scales.tobytes(),
                    rotations.tobytes(), sh.tobytes()])
    return gzip.compress(raw, compresslevel=9, mtime=0)
