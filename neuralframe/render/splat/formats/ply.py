"""INRIA 3DGS binary PLY: `x y z [nx ny nz] f_dc_0..2 f_rest_0..M opacity scale_0..2 rot_0..3`, as INRIA
3DGS, gsplat's exporter and nerfstudio write it. `f_rest` is channel-major (all red coefficients, then
green, then blue). Lossless."""

from __future__ import annotations

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


def read(data: bytes, name: str) -> Gaussians:
    order, elements, offset = parse_header(data, name)
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
    degree = sh_degree_or_error(len(rest) // 3 + 1, name)
    k = len(rest) // 3 + 1
    check_memory(n, name, degree)  # the file holds them: now the memory to read them

    col = lambda *ps: np.stack([v[p].astype(np.float32) for p in ps], -1)  # noqa: E731
    means = col("x", "y", "z")
    sh = np.zeros((n, k, 3), np.float32)
    sh[:, 0] = col("f_dc_0", "f_dc_1", "f_dc_2")
    if k > 1:
        # Channel-major on disk: f_rest[c * (k - 1) + j] is coefficient j + 1 of channel c.
        flat = col(*rest).reshape(n, 3, k - 1)
        sh[:, 1:] = flat.transpose(0, 2, 1)
    return gaussians(means, col("rot_0", "rot_1", "rot_2", "rot_3"), col("scale_0", "scale_1", "scale_2"),
                      v["opacity"].astype(np.float32), sh)


def encode(g: Gaussians, name: str) -> bytes:
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
