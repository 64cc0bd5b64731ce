"""PlayCanvas compressed PLY (`.compressed.ply`, what SuperSplat and splat-transform write): a binary
little-endian PLY with two or three elements, in this order:

    element chunk C   float min_x min_y min_z max_x max_y max_z
                      float min_scale_x .. min_scale_z max_scale_x .. max_scale_z
                      [float min_r min_g min_b max_r max_g max_b]       (absent in older files)
    element vertex N  uint packed_position packed_rotation packed_scale packed_color
    [element sh N     uchar f_rest_0 .. f_rest_{M-1}]                   (M = 9, 24 or 45)

Gaussians go in chunks of 256 (C = ceil(N / 256)); chunk i holds Gaussians 256 i .. 256 i + 255 and
stores their per-chunk bounds. Each Gaussian's values are unsigned fractions t of its chunk's range,
decoded as min + (max - min) * t:

- position: 11-10-11 bits (x in bits 21-31, y in 11-20, z in 0-10); error <= extent / 4094 (x, z) and
  extent / 2046 (y), extent being the chunk's along that axis;
- log scale: 11-10-11 bits the same way, on the chunk's log-scale range;
- colour: 8 bits each of r, g, b (bits 24-31, 16-23, 8-15) within the chunk's colour range, colour being
  0.5 + C0 * f_dc (in older files without colour bounds the 8 bits are the colour itself, 0..1); error
  <= range / 510. Opacity: 8 bits (0-7) of sigmoid(opacity) itself; error <= 1 / 510 in alpha.
- rotation: "smallest three": bits 30-31 name the largest |component| of the normalised (w, x, y, z)
  quaternion (made positive), the other three in file order take 10 bits each (bits 20-29, 10-19, 0-9)
  as c / sqrt(2) + 0.5; error <= sqrt(2) / 2046 = 0.00069 per component.
- SH rest coefficients (channel-major, as in the 3DGS PLY): 8 bits of v / 8 + 0.5, truncated, decoded
  at the bin centre (b + 0.5) / 256, with 0 and 255 meaning -4 and +4; error <= 1/32 for |v| <= 4,
  values beyond +-4 are clipped.

Writing sorts the Gaussians along a Morton (Z-order) curve first, so that a chunk's 256 Gaussians are
neighbours and its bounds small (splat-transform does the same); the file's order is `morton_order`'s,
not the input's. The curve is taken over each axis's ranks, so a few far floaters do not collapse the
rest of the scene into a handful of cells.
"""

from __future__ import annotations

import math

import numpy as np

from neuralframe.errors import InputError
from neuralframe.render.splat.formats.common import (
    check_count,
    check_memory,
    gaussians,
    logit,
    need,
    sigmoid,
)
from neuralframe.render.splat.formats.ply import parse_header
from neuralframe.render.splat.gaussians import SH_C0, Gaussians

CHUNK = 256
BOUNDS = ("min_x", "min_y", "min_z", "max_x", "max_y", "max_z",
          "min_scale_x", "min_scale_y", "min_scale_z", "max_scale_x", "max_scale_y", "max_scale_z")
COLOUR_BOUNDS = ("min_r", "min_g", "min_b", "max_r", "max_g", "max_b")
PACKED = ("packed_position", "packed_rotation", "packed_scale", "packed_color")
_SH_COUNTS = {9: 1, 24: 2, 45: 3}  # f_rest properties -> SH degree
_ALPHA_EPS = 1e-6  # alpha 0 and 255 decode to logit(eps) and logit(1 - eps): finite, visibly 0 and 1
_SQRT2 = math.sqrt(2.0)


def detect(data: bytes) -> bool:
    """Whether a file named `.ply` is a compressed PLY (a `chunk` element and packed vertices): read from
    the header only."""
    if not data.startswith(b"ply"):
        return False
    try:
        _, elements, _ = parse_header(data, "")
    except InputError:
        return False
    names = {e["name"]: e for e in elements}
    return "chunk" in names and "vertex" in names and \
        "packed_position" in {p for p, _ in names["vertex"]["props"]}


def _props(element: dict, wanted: tuple[str, ...], kind: str, name: str) -> None:
    got = dict(element["props"])
    missing = [p for p in wanted if p not in got]
    if missing:
        raise InputError(f"{name}: compressed PLY '{element['name']}' element lacks {', '.join(missing)}")
    wrong = [p for p in wanted if got[p] != kind]
    if wrong:
        raise InputError(f"{name}: compressed PLY properties {', '.join(wrong)} must be "
                         f"{ {'f4': 'float', 'u4': 'uint', 'u1': 'uchar'}[kind] }")


def read(data: bytes, name: str) -> Gaussians:
    order, elements, offset = parse_header(data, name)
    by_name: dict[str, dict] = {}
    for element in elements:
        if element["name"] not in ("chunk", "vertex", "sh") or element["name"] in by_name:
            raise InputError(f"{name}: a compressed PLY has elements chunk, vertex and (optionally) sh once "
                             f"each; this one has '{element['name']}'" +
                             (" twice" if element["name"] in by_name else ""))
        if element["has_list"]:
            raise InputError(f"{name}: compressed PLY element '{element['name']}' has list properties")
        by_name[element["name"]] = element
    if "chunk" not in by_name or "vertex" not in by_name:
        raise InputError(f"{name}: not a compressed PLY (it needs 'chunk' and 'vertex' elements)")
    chunk, vertex, sh_el = by_name["chunk"], by_name["vertex"], by_name.get("sh")
    _props(chunk, BOUNDS, "f4", name)
    chunk_names = [p for p, _ in chunk["props"]]
    coloured = "min_r" in chunk_names
    if coloured:
        _props(chunk, COLOUR_BOUNDS, "f4", name)
    _props(vertex, PACKED, "u4", name)
    n = check_count(vertex["count"], name, sh_degree=None)  # the memory once the file is known to hold them
    if n == 0:
        raise InputError(f"{name}: compressed PLY has no Gaussians (vertex count 0)")
    chunks = chunk["count"]
    if chunks != -(-n // CHUNK):
        raise InputError(f"{name}: the header declares {chunks:,} chunks for {n:,} Gaussians; "
                         f"{CHUNK} Gaussians a chunk needs {-(-n // CHUNK):,}")
    m = 0
    if sh_el is not None:
        m = len(sh_el["props"])
        if m not in _SH_COUNTS:
            raise InputError(f"{name}: compressed PLY 'sh' element has {m} properties (expected 9, 24 or 45)")
        _props(sh_el, tuple(f"f_rest_{i}" for i in range(m)), "u1", name)
        if sh_el["count"] != n:
            raise InputError(f"{name}: the 'sh' element declares {sh_el['count']:,} rows for {n:,} Gaussians")

    dtypes = {e["name"]: np.dtype([(p, order + t) for p, t in e["props"]]) for e in elements}
    total = sum(e["count"] * dtypes[e["name"]].itemsize for e in elements)
    need(data, offset + total, name, f"{n:,} Gaussians in {chunks:,} chunks")
    check_memory(n, name, _SH_COUNTS.get(m, 0))
    tables = {}
    for element in elements:
        tables[element["name"]] = np.frombuffer(data, dtypes[element["name"]], element["count"], offset)
        offset += element["count"] * dtypes[element["name"]].itemsize

    c = tables["chunk"]
    bounds = np.stack([c[p] for p in BOUNDS + (COLOUR_BOUNDS if coloured else ())], 1).astype(np.float64)
    bad = ~np.isfinite(bounds).all(1)
    if bad.any():
        raise InputError(f"{name}: {int(bad.sum())} chunk(s) have NaN or infinite bounds "
                         f"(first: chunk {int(np.flatnonzero(bad)[0])})")
    ci = np.arange(n) // CHUNK
    b = bounds[ci]  # [N, 12 or 18]: each Gaussian's chunk bounds
    lerp = lambda lo, hi, t: lo * (1.0 - t) + hi * t
    v = tables["vertex"]

    def unpack_111011(word, lo):  # lo: index of the first min column; max follows 3 later
        word = word.astype(np.uint32)
        t = np.stack([(word >> 21) / 2047.0, ((word >> 11) & 1023) / 1023.0, (word & 2047) / 2047.0], 1)
        return lerp(b[:, lo:lo + 3], b[:, lo + 3:lo + 6], t)

    means = unpack_111011(v["packed_position"], 0)
    scales = unpack_111011(v["packed_scale"], 6)
    quats = _unpack_rotation(v["packed_rotation"].astype(np.uint32))
    col = v["packed_color"].astype(np.uint32)
    rgb = np.stack([(col >> 24) & 255, (col >> 16) & 255, (col >> 8) & 255], 1) / 255.0
    if coloured:
        rgb = lerp(b[:, 12:15], b[:, 15:18], rgb)
    alpha = np.clip((col & 255) / 255.0, _ALPHA_EPS, 1.0 - _ALPHA_EPS)
    k = 1 + m // 3
    sh = np.zeros((n, k, 3), np.float32)
    sh[:, 0] = (rgb - 0.5) / SH_C0
    if m:
        raw = np.stack([tables["sh"][f"f_rest_{i}"] for i in range(m)], 1)
        frac = np.where(raw == 0, 0.0, np.where(raw == 255, 1.0, (raw + 0.5) / 256.0))
        sh[:, 1:] = ((frac - 0.5) * 8.0).reshape(n, 3, k - 1).transpose(0, 2, 1)
    return gaussians(means, quats, scales, logit(alpha), sh)


def _unpack_rotation(word: np.ndarray) -> np.ndarray:
    """[N] 2-10-10-10 words -> [N, 4] quaternions in file order (rot_0..3 = w, x, y, z)."""
    three = np.stack([(word >> 20) & 1023, (word >> 10) & 1023, word & 1023], 1) / 1023.0
    three = (three - 0.5) * _SQRT2
    largest = (word >> 30).astype(np.int64)
    m = np.sqrt(np.maximum(0.0, 1.0 - (three ** 2).sum(1)))
    q = np.empty((len(word), 4))
    for j in range(4):
        src = np.clip(j - (j > largest), 0, 2)
        q[:, j] = np.where(largest == j, m, np.take_along_axis(three, src[:, None], 1)[:, 0])
    return q


def _spread21(x: np.ndarray) -> np.ndarray:
    """Spread the low 21 bits of each value to every third bit of a uint64."""
    x = x.astype(np.uint64) & np.uint64(0x1FFFFF)
    for shift, mask in ((32, 0x1F00000000FFFF), (16, 0x1F0000FF0000FF), (8, 0x100F00F00F00F00F),
                        (4, 0x10C30C30C30C30C3), (2, 0x1249249249249249)):
        x = (x | (x << np.uint64(shift))) & np.uint64(mask)
    return x


def morton_order(means: np.ndarray) -> np.ndarray:
    """The order compressed PLYs are written in: a Morton curve over each axis's ranks (21 bits each)."""
    n = len(means)
    code = np.zeros(n, np.uint64)
    for axis in range(3):
        rank = np.empty(n, np.int64)
        rank[np.argsort(means[:, axis], kind="stable")] = np.arange(n)
        cell = rank * ((1 << 21) - 1) // max(n - 1, 1)
        code |= _spread21(cell) << np.uint64(axis)
    return np.argsort(code, kind="stable")


def _unorm(t: np.ndarray, bits: int) -> np.ndarray:
    top = (1 << bits) - 1
    return np.clip(np.floor(t * top + 0.5), 0, top).astype(np.uint32)


def _fraction(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    span = hi - lo
    return np.clip((x - lo) / np.where(span > 0, span, 1.0), 0.0, 1.0)


def encode(g: Gaussians, name: str) -> bytes:
    n, k = g.n, g.sh.shape[1]
    if n == 0:
        raise InputError(f"{name}: a compressed PLY cannot hold an empty scene")
    means = g.means.numpy().astype(np.float64)
    order = morton_order(means)
    chunks = -(-n // CHUNK)
    # pad the last chunk by repeating its last Gaussian, which leaves the chunk's bounds unchanged
    padded = np.concatenate([order, np.full(chunks * CHUNK - n, order[-1])])
    per_chunk = lambda a: a[padded].reshape(chunks, CHUNK, *a.shape[1:])
    pos = per_chunk(means)
    scl = per_chunk(g.scales.numpy().astype(np.float64))
    sh = g.sh.numpy().astype(np.float64)
    rgb = per_chunk(0.5 + SH_C0 * sh[:, 0])
    table = np.concatenate([pos.min(1), pos.max(1), scl.min(1), scl.max(1), rgb.min(1), rgb.max(1)], 1)
    table32 = table.astype("<f4")
    lo_hi = table32.astype(np.float64)  # quantise against the bounds as stored

    def pack_111011(x, lo):
        t = _fraction(x, lo_hi[:, None, lo:lo + 3], lo_hi[:, None, lo + 3:lo + 6])
        return (_unorm(t[..., 0], 11) << 21) | (_unorm(t[..., 1], 10) << 11) | _unorm(t[..., 2], 11)

    t = _fraction(rgb, lo_hi[:, None, 12:15], lo_hi[:, None, 15:18])
    alpha = per_chunk(sigmoid(g.opacities.numpy()))
    packed = np.stack([pack_111011(pos, 0), _pack_rotation(per_chunk(g.quats.numpy().astype(np.float64))),
                       pack_111011(scl, 6),
                       (_unorm(t[..., 0], 8) << 24) | (_unorm(t[..., 1], 8) << 16) | (_unorm(t[..., 2], 8) << 8)
                       | _unorm(alpha, 8)], -1).reshape(chunks * CHUNK, 4)[:n]
    m = 3 * (k - 1)
    header = ["ply", "format binary_little_endian 1.0", "comment Generated by neuralframe",
              f"element chunk {chunks}", *(f"property float {p}" for p in BOUNDS + COLOUR_BOUNDS),
              f"element vertex {n}", *(f"property uint {p}" for p in PACKED)]
    body = [table32.tobytes(), packed.astype("<u4").tobytes()]
    if m:
        rest = sh[order, 1:].transpose(0, 2, 1).reshape(n, m)  # channel-major, as the 3DGS PLY
        body.append(np.clip(np.trunc((rest / 8.0 + 0.5) * 256.0), 0, 255).astype(np.uint8).tobytes())
        header += [f"element sh {n}", *(f"property uchar f_rest_{i}" for i in range(m))]
    return ("\n".join(header + ["end_header"]) + "\n").encode("ascii") + b"".join(body)


def _pack_rotation(q: np.ndarray) -> np.ndarray:
    """[..., 4] quaternions (w, x, y, z) -> 2-10-10-10 words: the largest component's index, then the other
    three, sign-flipped so the dropped one is positive."""
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    largest = np.abs(q).argmax(-1)
    q = q * np.where(np.take_along_axis(q, largest[..., None], -1) < 0, -1.0, 1.0)
    word = largest.astype(np.uint32)
    for slot in range(3):
        j = slot + (slot >= largest)  # the slot-th component other than the largest
        c = np.take_along_axis(q, j[..., None], -1)[..., 0]
        word = (word << 10) | _unorm(c / _SQRT2 + 0.5, 10)
    return word
