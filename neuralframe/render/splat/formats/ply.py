"""INRIA 3DGS binary PLY: `x y z [nx ny nz] f_dc_0..2 f_rest_0..M opacity scale_0..2 rot_0..3`, as INRIA
3DGS, gsplat's exporter and nerfstudio write it. `f_rest` is channel-major (all red coefficients, then
green, then blue). Lossless."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neuralframe.errors import InputError
from neuralframe.render.splat.formats.common import check_memory, gaussians, sh_degree_or_error
from neuralframe.render.splat.gaussians import Gaussians

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
    "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}
_MAX_HEADER = 1 << 16


def parse_header(data: bytes, name: str) -> tuple[str, list[dict], int]:
    """A binary PLY's header: the byte order ("<" or ">"), its elements in file order (each a dict of
    `name`, `count`, `props` [(name, numpy type code)], `has_list`) and the offset where the body starts.
    An InputError naming the file for anything that is not a binary PLY header."""
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
    return ("<" if fmt == "binary_little_endian" else ">"), elements, body_start


_REQUIRED = ("x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
             "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3")
# Rows converted at a time: a block's values stay in cache while they are spread over the output arrays, so
# the body is read once whatever its layout (one strided pass per property would read it once per property).
_BLOCK = 1 << 14


def read(data: bytes, name: str) -> Gaussians:
    order, elements, offset = parse_header(data, name)
    vertex, offset = _vertex(elements, offset, name)
    n, row = vertex["count"], _row_dtype(vertex, order)
    need = n * row.itemsize
    if len(data) - offset < need:
        raise InputError(f"{name}: truncated: {n} Gaussians need {need} bytes of vertex data, "
                         f"the file has {max(len(data) - offset, 0)}")
    layout = _layout(vertex, name)
    check_memory(n, name, layout.degree)  # the file holds them: now the memory to read them
    flat = _flat(row)
    body = (np.frombuffer(data, flat, n * len(row.names), offset).reshape(n, -1) if flat
            else np.frombuffer(data, row, n, offset))
    return _decode((body[s:s + _BLOCK] for s in range(0, n, _BLOCK)), n, layout)


def read_file(path, name: str) -> Gaussians:
    """`read` from a path: the header from the file's head, then the body block by block with
    `np.fromfile`, so that the whole file is never held in memory beside the Gaussians made from it."""
    with open(path, "rb") as f:
        head = f.read(_MAX_HEADER)
        order, elements, offset = parse_header(head, name)
        vertex, offset = _vertex(elements, offset, name)
        n, row = vertex["count"], _row_dtype(vertex, order)
        size = f.seek(0, 2)
        if size - offset < n * row.itemsize:
            raise InputError(f"{name}: truncated: {n} Gaussians need {n * row.itemsize} bytes of vertex data, "
                             f"the file has {max(size - offset, 0)}")
        layout = _layout(vertex, name)
        check_memory(n, name, layout.degree)
        f.seek(offset)
        flat, width = _flat(row), len(row.names)

        def blocks():
            for s in range(0, n, _BLOCK):
                m = min(_BLOCK, n - s)
                yield np.fromfile(f, flat, m * width).reshape(m, width) if flat else np.fromfile(f, row, m)

        return _decode(blocks(), n, layout)


def _vertex(elements: list[dict], offset: int, name: str) -> tuple[dict, int]:
    """The checked `vertex` element and the offset of its first row (elements before it are skipped)."""
    for element in elements:
        if element["name"] == "vertex":
            break
        if element["has_list"]:
            raise InputError(f"{name}: PLY element '{element['name']}' before 'vertex' has list "
                             "properties, which are not supported")
        offset += element["count"] * np.dtype([(p, t) for p, t in element["props"]]).itemsize
    else:
        raise InputError(f"{name}: PLY file has no 'vertex' element")
    if element["has_list"]:
        raise InputError(f"{name}: PLY 'vertex' element has list properties, which are not supported")
    if element["count"] <= 0:
        raise InputError(f"{name}: PLY file has no Gaussians (vertex count {element['count']})")
    names = [p for p, _ in element["props"]]
    if len(set(names)) != len(names):
        raise InputError(f"{name}: PLY 'vertex' element repeats a property")
    return element, offset


def _row_dtype(vertex: dict, order: str) -> np.dtype:
    return np.dtype([(p, order + t) for p, t in vertex["props"]])


def _flat(row: np.dtype) -> np.dtype | None:
    """The one scalar type of a row whose properties all share it (then the body is a 2D array), else None."""
    types = {row.fields[p][0] for p in row.names}
    return types.pop() if len(types) == 1 else None


@dataclass(frozen=True)
class _Layout:
    """Where the Gaussians' values sit in a row: column indices of each output."""

    means: list[int]
    dc: list[int]
    rest: list[int]  # channel-major: all red coefficients, then green, then blue
    opacity: int
    scales: list[int]
    quats: list[int]
    degree: int


def _layout(vertex: dict, name: str) -> _Layout:
    names = [p for p, _ in vertex["props"]]
    missing = [p for p in _REQUIRED if p not in names]
    if missing:
        raise InputError(f"{name}: not a 3D Gaussian-splat PLY: missing properties {', '.join(missing)}")
    rest = sorted((p for p in names if p.startswith("f_rest_")), key=lambda p: int(p[7:]) if p[7:].isdigit() else -1)
    if rest != [f"f_rest_{i}" for i in range(len(rest))]:
        raise InputError(f"{name}: f_rest properties are not numbered 0..{len(rest) - 1}")
    if len(rest) % 3:
        raise InputError(f"{name}: {len(rest)} f_rest properties cannot be split into 3 colour channels")
    degree = sh_degree_or_error(len(rest) // 3 + 1, name)
    at = {p: i for i, p in enumerate(names)}
    cols = lambda *ps: [at[p] for p in ps]  # noqa: E731
    return _Layout(cols("x", "y", "z"), cols("f_dc_0", "f_dc_1", "f_dc_2"), cols(*rest), at["opacity"],
                   cols("scale_0", "scale_1", "scale_2"), cols("rot_0", "rot_1", "rot_2", "rot_3"), degree)


def _take(block: np.ndarray, cols: list[int]) -> np.ndarray:
    """Columns of a 2D block: a view where they are consecutive (the usual layout), a small copy otherwise."""
    if cols == list(range(cols[0], cols[0] + len(cols))):
        return block[:, cols[0]:cols[0] + len(cols)]
    return block[:, cols]


def _decode(blocks, n: int, layout: _Layout) -> Gaussians:
    """The Gaussians from the body's rows, given as consecutive blocks of a 2D array (one type) or of
    structured rows (mixed types, made 2D float32 a block at a time); each value is converted to float32
    once, straight into its output array."""
    from numpy.lib.recfunctions import structured_to_unstructured

    k = (layout.degree + 1) ** 2
    means, quats, scales = (np.empty((n, c), np.float32) for c in (3, 4, 3))
    logits, sh = np.empty(n, np.float32), np.empty((n, k, 3), np.float32)
    s = 0
    for block in blocks:
        if block.dtype.names:
            block = structured_to_unstructured(block, dtype=np.float32)
        e = s + len(block)
        means[s:e] = _take(block, layout.means)
        quats[s:e] = _take(block, layout.quats)
        scales[s:e] = _take(block, layout.scales)
        logits[s:e] = block[:, layout.opacity]
        sh[s:e, 0] = _take(block, layout.dc)
        if k > 1:
            # Channel-major on disk: f_rest[c * (k - 1) + j] is coefficient j + 1 of channel c.
            sh[s:e, 1:] = _take(block, layout.rest).reshape(e - s, 3, k - 1).transpose(0, 2, 1)
        s = e
    return gaussians(means, quats, scales, logits, sh)


def encode(g: Gaussians, name: str) -> bytearray:
    """The file as one buffer: the header, then the rows written in place (no copy of the body is made)."""
    n, k = g.n, g.sh.shape[1]
    props = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    props += [f"f_rest_{i}" for i in range(3 * (k - 1))]
    props += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    header = "ply\nformat binary_little_endian 1.0\n"
    header = (header + f"element vertex {n}\n" + "".join(f"property float {p}\n" for p in props)
              + "end_header\n").encode("ascii")
    blob = bytearray(len(header) + 4 * n * len(props))
    blob[:len(header)] = header
    rows = np.frombuffer(blob, "<f4", offset=len(header)).reshape(n, len(props))
    sh = g.sh.numpy()
    rows[:, 0:3] = g.means.numpy()
    rows[:, 3:6] = 0.0
    rows[:, 6:9] = sh[:, 0]
    rows[:, 9:9 + 3 * (k - 1)].reshape(n, 3, k - 1)[:] = sh[:, 1:].transpose(0, 2, 1)
    c = 9 + 3 * (k - 1)
    rows[:, c] = g.opacities.numpy()
    rows[:, c + 1:c + 4] = g.scales.numpy()
    rows[:, c + 4:c + 8] = g.quats.numpy()
    return blob
