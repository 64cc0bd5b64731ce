"""glTF 2.0 with the ratified `KHR_gaussian_splatting` extension (`.glb`, `.gltf`), SH degree 0 to 3.

Each splat primitive (`mode` POINTS, the extension object with `kernel` "ellipse") maps to `Gaussians` so:

| glTF attribute                              | stored as                                | Gaussians              |
| ------------------------------------------- | ---------------------------------------- | ---------------------- |
| `POSITION` VEC3                             | position, glTF axes                      | `means` (RDF axes)     |
| `KHR_gaussian_splatting:ROTATION` VEC4      | unit quaternion, glTF order x, y, z, w   | `quats` (w, x, y, z)   |
| `KHR_gaussian_splatting:SCALE` VEC3         | linear standard deviations, >= 0         | `scales` = log         |
| `KHR_gaussian_splatting:OPACITY` SCALAR     | linear alpha in [0, 1]                   | `opacities` = logit    |
| `KHR_gaussian_splatting:SH_DEGREE_0_COEF_0` | SH DC coefficient (colour = 0.5 + C0 dc) | `sh[:, 0]`             |
| `KHR_gaussian_splatting:SH_DEGREE_l_COEF_n` | degree l, order m = n - l, RGB per VEC3  | `sh[:, l * l + n]`     |

The basis (real SH with the Condon-Shortley phase, orders -l..l) is INRIA's, so coefficients keep their
order. Component types follow the spec's table: ROTATION float or normalised (u)byte/short, SCALE float or
(normalised) unsigned byte/short, OPACITY float or normalised unsigned byte/short, SH float; POSITION float
or the KHR_mesh_quantization integer types. Accessors may be strided or sparse.

Axes: glTF is Left-Up-Front (+y up, +z the asset's front, -x right); INRIA .ply files are Right-Down-Front.
The two differ by a half turn about z: x and y (and the quaternion's x, y) change sign, as do the SH
coefficients of odd order m. The node hierarchy of the default scene is applied (`gltf_space`), then this
turn; a mesh instanced by several nodes appears once per node; several primitives are concatenated.

`KHR_gaussian_splatting_compression_spz_2` (and its earlier name without `_2`) primitives are decoded with
`spz.read` from the referenced bufferView: the spec packs them from glTF axes into .spz's own axes, which
`spz.read` turns into INRIA's. `colorSpace` srgb_rec709_display (what 3DGS training gives) and
lin_rec709_display are both read with the colours as stored.

Written: one primitive, float32 attributes, unit quaternions, `colorSpace` srgb_rec709_display and a
`COLOR_0` fallback (linear RGB per the glTF spec, alpha = opacity). A `.glb` holds the buffer in its BIN
chunk; a `.gltf` is one self-contained file with the buffer as a base64 `data:` URI. External `.bin`
buffers are read from the .gltf's folder; URIs that are remote, absolute or leave the folder are refused.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct
from pathlib import Path
from urllib.parse import unquote

import numpy as np

from neuralframe.errors import InputError
from neuralframe.render.splat.formats import gltf_space, spz
from neuralframe.render.splat.formats.common import check_count, check_memory, gaussians, logit, need
from neuralframe.render.splat.formats.gltf_write import (
    BIN_CHUNK,
    EXT,
    GLB_MAGIC,
    JSON_CHUNK,
    encode,
)
from neuralframe.render.splat.formats.gltf_write import sh_name as _sh_name
from neuralframe.render.splat.gaussians import Gaussians

__all__ = ["EXT", "SPZ_EXTS", "encode", "read"]
SPZ_EXTS = ("KHR_gaussian_splatting_compression_spz_2", "KHR_gaussian_splatting_compression_spz")
_COMPONENTS = {5120: ("<i1", 127.0), 5121: ("<u1", 255.0), 5122: ("<i2", 32767.0), 5123: ("<u2", 65535.0),
               5125: ("<u4", None), 5126: ("<f4", None)}
_CNAMES = {5120: "BYTE", 5121: "UNSIGNED_BYTE", 5122: "SHORT", 5123: "UNSIGNED_SHORT", 5125: "UNSIGNED_INT",
           5126: "FLOAT"}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
_FLOAT = {(5126, False)}
_ALLOWED = {  # semantic -> (accessor type, allowed (componentType, normalized))
    "POSITION": ("VEC3", _FLOAT | {(c, n) for c in (5120, 5121, 5122, 5123) for n in (False, True)}),
    f"{EXT}:ROTATION": ("VEC4", _FLOAT | {(5120, True), (5122, True)}),
    f"{EXT}:SCALE": ("VEC3", _FLOAT | {(5121, False), (5121, True), (5123, False), (5123, True)}),
    f"{EXT}:OPACITY": ("SCALAR", _FLOAT | {(5121, True), (5123, True)}),
}
_REQUIRED = ("POSITION", f"{EXT}:ROTATION", f"{EXT}:SCALE", f"{EXT}:OPACITY", f"{EXT}:SH_DEGREE_0_COEF_0")
_KNOWN_REQUIRED = {EXT, *SPZ_EXTS, "KHR_mesh_quantization"}
_TINY = float(np.finfo(np.float32).tiny)
_P_EDGE = 2.0 ** -24  # opacities of exactly 0 or 1 are read as this far inside, so their logit is finite


def _obj(value) -> dict:
    return value if isinstance(value, dict) else {}


class _Doc:
    """A parsed glTF: its JSON, where its buffers come from, and checked access to its arrays."""

    def __init__(self, gltf: dict, name: str, bin_chunk: bytes | None):
        self.gltf, self.name, self.bin, self.buffers = gltf, name, bin_chunk, {}

    def error(self, message: str) -> InputError:
        return InputError(f"{self.name}: {message}")

    def item(self, kind: str, index) -> dict:
        items = self.gltf.get(kind, [])
        if not isinstance(index, int) or isinstance(index, bool) or not isinstance(items, list) \
                or not 0 <= index < len(items) or not isinstance(items[index], dict):
            raise self.error(f"{kind}[{index!r}] does not exist (the file has {len(items)} {kind})")
        return items[index]

    def integer(self, obj: dict, key: str, where: str, default=None, low: int = 0) -> int:
        value = obj.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise self.error(f"{where}.{key} is {value!r}, not an integer >= {low}")
        return value

    def buffer(self, index: int) -> memoryview:
        if index not in self.buffers:
            b = self.item("buffers", index)
            size = self.integer(b, "byteLength", f"buffers[{index}]", low=1)
            uri = b.get("uri")
            if uri is None:
                if self.bin is None or index != 0:
                    raise self.error(f"buffers[{index}] has no uri and the file has no GLB binary chunk")
                data = self.bin
            elif not isinstance(uri, str):
                raise self.error(f"buffers[{index}].uri is not a string")
            elif uri.startswith("data:"):
                data = self._data_uri(uri, size, index)
            else:
                data = self._external(uri, size, index)
            need(data, size, self.name, f"buffers[{index}] ({size:,} bytes declared)")
            self.buffers[index] = memoryview(data)[:size]
        return self.buffers[index]

    def _data_uri(self, uri: str, size: int, index: int) -> bytes:
        head, _, payload = uri.partition(",")
        if not head.endswith(";base64"):
            raise self.error(f"buffers[{index}] has a data: URI that is not base64")
        if len(payload) * 3 // 4 > size + 3:
            raise self.error(f"buffers[{index}]: its data: URI holds more than the {size:,} bytes declared")
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError) as error:
            raise self.error(f"buffers[{index}] has a data: URI that is not valid base64 ({error})") from None

    def _external(self, uri: str, size: int, index: int) -> bytes:
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", uri) or uri.startswith(("/", "\\")):
            raise self.error(f"buffers[{index}].uri '{uri[:80]}' is remote or absolute; only files beside the "
                             ".gltf (relative paths) and data: URIs are read")
        folder = Path(self.name).resolve().parent
        path = (folder / unquote(uri)).resolve()
        if not path.is_relative_to(folder):
            raise self.error(f"buffers[{index}].uri '{uri[:80]}' leaves the folder of the .gltf file")
        if not path.is_file():
            raise self.error(f"buffers[{index}]: the buffer file '{uri[:80]}' is not found beside the .gltf")
        if path.stat().st_size < size:
            raise self.error(f"truncated: buffers[{index}] declares {size:,} bytes, '{uri[:80]}' has "
                             f"{path.stat().st_size:,}")
        with path.open("rb") as f:
            return f.read(size)

    def view(self, index: int) -> tuple[memoryview, int | None]:
        bv = self.item("bufferViews", index)
        where = f"bufferViews[{index}]"
        buf = self.buffer(self.integer(bv, "buffer", where))
        offset, length = self.integer(bv, "byteOffset", where, 0), self.integer(bv, "byteLength", where, low=1)
        if offset + length > len(buf):
            raise self.error(f"{where} (bytes {offset:,}..{offset + length:,}) runs past the end of its "
                             f"buffer ({len(buf):,} bytes)")
        stride = bv.get("byteStride")
        if stride is not None:
            stride = self.integer(bv, "byteStride", where, low=4)
        return buf[offset:offset + length], stride

    def accessor(self, index: int, semantic: str) -> np.ndarray:
        """[count, width] float32 values of accessor `index`, checked against the spec for `semantic`."""
        acc = self.item("accessors", index)
        where = f"accessors[{index}] ({semantic})"
        kind, allowed = _ALLOWED.get(semantic, ("VEC3", _FLOAT))
        ctype, normalized = acc.get("componentType"), acc.get("normalized", False)
        if acc.get("type") != kind or (ctype, normalized) not in allowed:
            raise self.error(f"{where} is {acc.get('type')} of {_CNAMES.get(ctype, repr(ctype))}"
                             f"{' normalized' if normalized else ''}; KHR_gaussian_splatting allows {kind} of "
                             + ", ".join(f"{_CNAMES[c]}{' normalized' if n else ''}" for c, n in sorted(allowed)))
        count = check_count(self.integer(acc, "count", where, low=1), self.name, sh_degree=None)
        code, scale = _COMPONENTS[ctype]
        width = _WIDTH[kind]
        if "bufferView" in acc:
            out = self._strided(self.integer(acc, "bufferView", where), self.integer(acc, "byteOffset", where, 0),
                                count, np.dtype(code), width, where)
        else:  # values the file does not hold: the memory for them first (file-backed ones: in `read`)
            check_memory(count, self.name)
            out = np.zeros((count, width), np.dtype(code))
        if "sparse" in acc:
            self._sparse(acc["sparse"], out, where)
        out = out.astype(np.float64 if normalized else np.float32)
        if normalized:
            out = np.maximum(out / scale, -1.0).astype(np.float32)
        if not np.isfinite(out).all():
            raise self.error(f"{where} holds NaN or infinite values")
        return out

    def _strided(self, view_index: int, offset: int, count: int, dtype: np.dtype, width: int, where: str):
        data, stride = self.view(view_index)
        elem = dtype.itemsize * width
        stride = stride or elem
        if stride < elem:
            raise self.error(f"{where}: byteStride {stride} is smaller than an element ({elem} bytes)")
        end = offset + stride * (count - 1) + elem
        if end > len(data):
            raise self.error(f"{where}: {count:,} elements need {end:,} bytes from bufferViews[{view_index}], "
                             f"which has {len(data):,}")
        return np.ndarray((count, width), dtype, buffer=data, offset=offset, strides=(stride, dtype.itemsize)).copy()

    def _sparse(self, sparse, out: np.ndarray, where: str) -> None:
        if not isinstance(sparse, dict) or not isinstance(sparse.get("indices"), dict) \
                or not isinstance(sparse.get("values"), dict):
            raise self.error(f"{where}.sparse is malformed")
        n = self.integer(sparse, "count", f"{where}.sparse", low=1)
        if n > len(out):
            raise self.error(f"{where}.sparse.count {n:,} exceeds the accessor's count {len(out):,}")
        ind, val = sparse["indices"], sparse["values"]
        if ind.get("componentType") not in (5121, 5123, 5125):
            raise self.error(f"{where}.sparse.indices.componentType {ind.get('componentType')!r} is not unsigned")
        idx = self._strided(self.integer(ind, "bufferView", where), self.integer(ind, "byteOffset", where, 0), n,
                            np.dtype(_COMPONENTS[ind["componentType"]][0]), 1, f"{where}.sparse.indices")[:, 0]
        if idx.size and int(idx.max()) >= len(out):
            raise self.error(f"{where}.sparse index {int(idx.max())} is past the accessor's count {len(out):,}")
        out[idx] = self._strided(self.integer(val, "bufferView", where), self.integer(val, "byteOffset", where, 0),
                                 n, out.dtype, out.shape[1], f"{where}.sparse.values")


def _parse(data: bytes, name: str) -> _Doc:
    bin_chunk = None
    if data[:4] == GLB_MAGIC:
        need(data, 20, name, "the GLB header and first chunk header")
        _, version, length = struct.unpack_from("<4sII", data)
        if version != 2:
            raise InputError(f"{name}: GLB version {version} is not supported (glTF 2.0 is)")
        if length > len(data) or length < 20:
            raise InputError(f"{name}: truncated: the GLB header declares {length:,} bytes, the file has "
                             f"{len(data):,}")
        chunks, at = [], 12
        while at + 8 <= length:
            size, kind = struct.unpack_from("<II", data, at)
            if at + 8 + size > length:
                raise InputError(f"{name}: a GLB chunk declares {size:,} bytes at offset {at:,}, past the "
                                 f"{length:,} bytes of the file")
            chunks.append((kind, data[at + 8:at + 8 + size]))
            at += 8 + size
        if chunks[0][0] != JSON_CHUNK:
            raise InputError(f"{name}: the first GLB chunk is not JSON (type 0x{chunks[0][0]:08x})")
        text = chunks[0][1]
        bin_chunk = chunks[1][1] if len(chunks) > 1 and chunks[1][0] == BIN_CHUNK else None
    elif name.lower().endswith(".glb"):
        raise InputError(f"{name}: not a GLB file (it does not start with the magic 'glTF')")
    else:
        text = data
    try:
        gltf = json.loads(bytes(text).decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{name}: the glTF JSON cannot be parsed ({error})") from None
    if not isinstance(gltf, dict) or not isinstance(gltf.get("asset"), dict):
        raise InputError(f"{name}: not a glTF file (no 'asset' object)")
    if not str(gltf["asset"].get("version", "")).startswith("2."):
        raise InputError(f"{name}: glTF version {gltf['asset'].get('version')!r} is not supported (2.0 is)")
    unknown = [e for e in gltf.get("extensionsRequired", []) if e not in _KNOWN_REQUIRED]
    if unknown:
        raise InputError(f"{name}: the file requires glTF extensions this reader lacks: {', '.join(map(str, unknown))}")
    return _Doc(gltf, name, bin_chunk)


def _instances(doc: _Doc) -> list[tuple[int, np.ndarray]]:
    """(mesh index, global 4x4 matrix) for each mesh the default scene places; every mesh once when the
    file has no nodes."""
    g = doc.gltf
    nodes = g.get("nodes", [])
    if g.get("scenes"):
        roots = doc.item("scenes", g.get("scene", 0)).get("nodes", [])
    else:
        children = {c for n in nodes if isinstance(n, dict) and isinstance(n.get("children"), list)
                    for c in n["children"] if isinstance(c, int)}
        roots = [i for i in range(len(nodes)) if i not in children]
    if not isinstance(nodes, list) or not isinstance(roots, list):
        raise doc.error("'nodes' (of the file or of its scene) is not a list")
    out, seen = [], set()
    stack = [(r, np.eye(4)) for r in reversed(roots)]
    while stack:
        index, parent = stack.pop()
        node = doc.item("nodes", index)
        if index in seen:
            raise doc.error(f"nodes[{index}] is reached twice (the node hierarchy must be a tree)")
        seen.add(index)
        try:
            matrix = parent @ gltf_space.node_matrix(node)
        except (TypeError, ValueError):
            raise doc.error(f"nodes[{index}] has a malformed matrix, translation, rotation or scale") from None
        if not np.isfinite(matrix).all():
            raise doc.error(f"nodes[{index}] has a NaN or infinite transform")
        if "mesh" in node:
            out.append((doc.integer(node, "mesh", f"nodes[{index}]"), matrix))
        children = node.get("children", [])
        if not isinstance(children, list):
            raise doc.error(f"nodes[{index}].children is not a list")
        stack.extend((c, matrix) for c in reversed(children))
    if not out:
        out = [(m, np.eye(4)) for m in range(len(g.get("meshes", [])))]
    return out


def _splat_primitive(doc: _Doc, prim: dict, where: str):
    """(means, quats wxyz, log scales, logits, sh) in glTF axes, or None for a primitive without splats."""
    ext = _obj(prim.get("extensions")).get(EXT)
    if not isinstance(ext, dict):
        return None
    if prim.get("mode", 4) != 0:
        raise doc.error(f"{where}: a KHR_gaussian_splatting primitive must have mode POINTS (0), not "
                        f"{prim.get('mode', 4)!r}")
    if ext.get("kernel", "ellipse") != "ellipse":
        raise doc.error(f"{where}: kernel {ext.get('kernel')!r} is not supported (only 'ellipse' is)")
    attrs = prim.get("attributes")
    if not isinstance(attrs, dict):
        raise doc.error(f"{where} has no attributes")
    spz_ext = next((e[k] for e in (_obj(ext.get("extensions")), _obj(prim.get("extensions"))) for k in SPZ_EXTS
                    if isinstance(e.get(k), dict)), None)
    if spz_ext is not None:
        return _spz_primitive(doc, spz_ext, attrs, where)
    missing = [a for a in _REQUIRED if a not in attrs]
    if missing:
        raise doc.error(f"{where} lacks the required attribute(s) {', '.join(missing)}")
    degree = 0
    for d in (1, 2, 3):
        present = [n for n in range(2 * d + 1) if _sh_name(d, n) in attrs]
        if present and (len(present) < 2 * d + 1 or degree != d - 1):
            raise doc.error(f"{where}: spherical harmonics of degree {d} are partly defined or skip a lower "
                            f"degree (it has {', '.join(_sh_name(d, n) for n in present)})")
        degree = d if present else degree
    cols = {a: doc.accessor(attrs[a], a) for a in _REQUIRED}
    sh = [cols[_REQUIRED[4]]] + [doc.accessor(attrs[_sh_name(d, n)], _sh_name(d, n))
                                 for d in range(1, degree + 1) for n in range(2 * d + 1)]
    counts = {len(c) for c in [*cols.values(), *sh]}
    if len(counts) != 1:
        raise doc.error(f"{where}: its attributes have different counts ({', '.join(map(str, sorted(counts)))})")
    scale, opacity, xyzw = cols[f"{EXT}:SCALE"], cols[f"{EXT}:OPACITY"][:, 0], cols[f"{EXT}:ROTATION"]
    if (scale < 0).any():
        raise doc.error(f"{where}: {int((scale < 0).any(1).sum())} Gaussian(s) have a negative SCALE")
    if ((opacity < 0) | (opacity > 1)).any():
        raise doc.error(f"{where}: {int(((opacity < 0) | (opacity > 1)).sum())} Gaussian(s) have an OPACITY "
                        "outside [0, 1]")
    log_scales = np.log(np.maximum(scale.astype(np.float64), _TINY)).astype(np.float32)
    logits = logit(np.clip(opacity.astype(np.float64), _P_EDGE, 1.0 - _P_EDGE)).astype(np.float32)
    quats = np.concatenate([xyzw[:, 3:], xyzw[:, :3]], 1)
    return cols["POSITION"], quats, log_scales, logits, np.stack(sh, 1)


def _spz_primitive(doc: _Doc, spz_ext: dict, attrs: dict, where: str):
    index = doc.integer(spz_ext, "bufferView", f"{where} SPZ extension")
    data, _ = doc.view(index)
    g = spz.read(bytes(data), f"{doc.name} (SPZ data in bufferViews[{index}])")
    if "POSITION" in attrs:
        count = doc.integer(doc.item("accessors", attrs["POSITION"]), "count", "POSITION accessor", low=1)
        if count != g.n:
            raise doc.error(f"{where}: its POSITION accessor counts {count:,} Gaussians, the SPZ data {g.n:,}")
    arrays = [t.detach().cpu().numpy().astype(np.float32) for t in (g.means, g.quats, g.scales, g.sh)]
    means, quats, scales, sh = gltf_space.apply(gltf_space.LUF_TO_RDF, *arrays)  # INRIA axes -> glTF axes
    return means, quats, scales, g.opacities.cpu().numpy().astype(np.float32), sh


def read(data: bytes, name: str) -> Gaussians:
    doc = _parse(data, name)
    meshes, parts, total = {}, [], 0
    for mesh_index, matrix in _instances(doc):
        if mesh_index not in meshes:
            prims = doc.item("meshes", mesh_index).get("primitives", [])
            if not isinstance(prims, list):
                raise doc.error(f"meshes[{mesh_index}].primitives is not a list")
            decoded = [_splat_primitive(doc, p if isinstance(p, dict) else {}, f"meshes[{mesh_index}]"
                                        f".primitives[{i}]") for i, p in enumerate(prims)]
            meshes[mesh_index] = [d for d in decoded if d is not None]
        for means, quats, log_scales, logits, sh in meshes[mesh_index]:
            total = check_count(total + len(means), name, sh_degree=round(sh.shape[1] ** 0.5) - 1)
            try:
                moved = gltf_space.apply(gltf_space.LUF_TO_RDF @ matrix, means, quats, log_scales, sh)
            except ValueError as error:
                raise doc.error(f"meshes[{mesh_index}]: {error}") from None
            parts.append((*moved[:3], logits, moved[3]))
    if not parts:
        raise doc.error("no KHR_gaussian_splatting primitive in the default scene (not a Gaussian-splat glTF)")
    k = max(p[4].shape[1] for p in parts)
    sh = np.concatenate([np.pad(p[4], ((0, 0), (0, k - p[4].shape[1]), (0, 0))) for p in parts])
    means, quats, log_scales, logits = (np.concatenate([p[i] for p in parts]) for i in range(4))
    return gaussians(means, quats, log_scales, logits, sh)
