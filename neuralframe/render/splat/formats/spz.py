"""Niantic `.spz`: 24-bit fixed-point positions, 8-bit everything else, SH up to degree 3 (4 in files).

Versions read: 2 and 3 (a 16-byte header and the attribute arrays in one gzip stream; version 2 stores
quaternions as three signed bytes, version 3 as "smallest three": a 2-bit index of the largest component
and three 10-bit components) and 4 (a plain 32-byte header starting "NGSP", optional extension records,
a table of contents of [compressed, uncompressed] u64 sizes, then one zstd frame per attribute:
positions, alphas, colours, scales, rotations and, above degree 0, SH). Version 4 is written by default;
`version=3` or `version=2` (`--spz-version`) writes the gzip layout for older readers.

Axes: spz stores RUB (x right, y up, z back); it is converted to and from the RDF axes of INRIA .ply
files (what spz's own tools and splat-transform do), so a scene looks the same whichever format it came
from. A file carrying Adobe's coordinate-system extension in another right/left, up/down, back/front
system is converted from that system; the rotated family (z up) is refused.

Quantisation steps (a round trip is within half a step): positions 1/2^frac_bits (12 fractional bits,
fewer only when a scene reaches beyond +-2048, so that it still fits 24 bits); opacity 1/255 after the
sigmoid, written as 1..254 (0 and 255 decode to infinities in spz's reference reader); colour (the SH DC
term) 1/(255 * 0.15); log scales 1/16 in [-10, 5.9375]; rotations sqrt(1/2)/511 per stored component
(version 2: 1/127.5); SH rest terms in [-1, 1] 1/16 at degree 1 and 1/8 above, with spz's default 5 and
4 bits (`sh1_bits`, `sh_rest_bits`: up to 8, step 1/128). Degree-4 SH, which Gaussians cannot hold, is
dropped with a warning.

Bounded reading: the decompressed size is computed exactly from the header's count and SH degree before
anything is inflated, counts above `common.check_count` or beyond what the file's size can hold at
deflate's/zstd's ratio are refused, and decompression stops at the expected size: a small file that
declares or inflates to gigabytes is one InputError, not gigabytes of memory.
"""

from __future__ import annotations

import gzip
import math
import struct
import warnings
import zlib

import numpy as np

from neuralframe.errors import InputError
from neuralframe.render.splat.formats.common import (
    MAX_GAUSSIANS,
    check_count,
    check_memory,
    gaussians,
    logit,
    need,
    sigmoid,
    u8,
)
from neuralframe.render.splat.gaussians import Gaussians, sh_coeffs

VERSIONS = (2, 3, 4)
LATEST = 4
_MAGIC = b"NGSP"
_GZIP = b"\x1f\x8b"
_LEGACY = struct.Struct("<4sIIBBBB")  # magic, version, count, SH degree, fractional bits, flags, reserved
_NGSP = struct.Struct("<4sIIBBBBI12s")  # ... flags, stream count, TOC offset, reserved
_TOC_ENTRY = struct.Struct("<QQ")  # compressed, uncompressed bytes of one stream
_ANTIALIASED, _EXTENSIONS = 0x1, 0x2
_COLOR_SCALE = 0.15
_SQRT1_2 = 1.0 / math.sqrt(2.0)
_SH_DIMS = (0, 3, 8, 15, 24)  # SH coefficients per channel beyond DC, by degree 0..4
_FRAC_BITS = 12  # ~0.24 mm steps, as spz's own writer
# Largest inflation a valid file can show: deflate tops out near 1032:1; spz's own loader refuses
# more than 1024 bytes of positions per compressed byte for zstd (9 bytes a Gaussian).
_MAX_RATIO = {"gzip": 1032, "zstd": 1024}
_MIN_BYTES_PER_GAUSSIAN = 9
_MAX_EXTENSION_BYTES = 1 << 20
_COORDINATE_SYSTEM_EXT = 0xADBE0003
_COORDINATE_SYSTEMS = {0: "UNSPECIFIED", 1: "LDB", 2: "RDB", 3: "LUB", 4: "RUB", 5: "LDF", 6: "RDF",
                       7: "LUF", 8: "RUF", 9: "LFD", 10: "RFD", 11: "LFU", 12: "RFU", 13: "LBD",
                       14: "RBD", 15: "LBU", 16: "RBU"}
# Parity (odd in x, y, z) of the real SH basis functions 1..15 (INRIA order): an axis flip negates a
# coefficient when its function is odd in that axis.
_SH_PARITY = np.array([
    (0, 1, 0), (0, 0, 1), (1, 0, 0),
    (1, 1, 0), (0, 1, 1), (0, 0, 0), (1, 0, 1), (0, 0, 0),
    (0, 1, 0), (1, 1, 1), (0, 1, 0), (0, 0, 1), (1, 0, 0), (0, 0, 1), (1, 0, 0)])


def _axis_flips(system: str) -> np.ndarray:
    """Per-axis signs taking `system` (e.g. "RUB") to the RDF axes Gaussians use."""
    return np.array([1.0 if a == b else -1.0 for a, b in zip(system, "RDF")])


def _sh_flips(s: np.ndarray) -> np.ndarray:
    return np.prod(np.where(_SH_PARITY == 1, s[None, :], 1.0), axis=1)


_RUB = _axis_flips("RUB")


def _stream_sizes(n: int, degree: int, version: int) -> list[tuple[str, int]]:
    rot = 4 if version >= 3 else 3
    return [("positions", n * 9), ("alphas", n), ("colors", n * 3), ("scales", n * 3),
            ("rotations", n * rot), ("sh", n * _SH_DIMS[degree] * 3)]


def _check_header(name, version, n, degree, frac_bits, size, codec) -> None:
    if n == 0:
        raise InputError(f"{name}: the .spz file has no Gaussians")
    check_count(n, name, sh_degree=None)
    if degree >= len(_SH_DIMS):
        raise InputError(f"{name}: .spz SH degree {degree} is not supported (0 to 4)")
    if frac_bits > 24:
        raise InputError(f"{name}: .spz fractional bits {frac_bits} exceed the 24 bits of a position")
    most = size * _MAX_RATIO[codec] // _MIN_BYTES_PER_GAUSSIAN
    if n > most:
        raise InputError(f"{name}: the .spz header declares {n:,} Gaussians, more than a {size:,}-byte "
                         f"{codec} file can hold (at most {most:,}): the count is wrong or the file is hostile")
    check_memory(n, name, degree)  # last: a count the file cannot hold is the clearer message


def read(data: bytes, name: str) -> Gaussians:
    """A .spz file of any version (2, 3 gzip; 4 NGSP + zstd) as Gaussians in RDF axes."""
    if not isinstance(data, bytes):
        data = bytes(data)
    if data[:4] == _MAGIC:
        version, n, degree, frac_bits, flags, parts, ext = _read_ngsp(data, name)
    elif data[:2] == _GZIP:
        version, n, degree, frac_bits, flags, parts, ext = _read_gzip(data, name)
    else:
        raise InputError(f"{name}: not an .spz file: it begins with neither 'NGSP' (version 4) nor gzip's "
                         f"1f 8b (versions 2 and 3), but {data[:4].hex(' ') or 'nothing'}")
    system = _coordinate_system(ext, name) if flags & _EXTENSIONS else "RUB"
    return _decode(parts, version, n, degree, frac_bits, bool(flags & _ANTIALIASED), system, name)


def _read_ngsp(data: bytes, name: str):
    need(data, _NGSP.size, name, "the .spz version 4 header")
    _, version, n, degree, frac_bits, flags, streams, toc, _ = _NGSP.unpack_from(data)
    if version != 4:
        raise InputError(f"{name}: .spz version {version} is not supported with an NGSP header "
                         "(version 4 is; versions 2 and 3 are gzip-wrapped)")
    _check_header(name, version, n, degree, frac_bits, len(data), "zstd")
    sizes = [(key, size) for key, size in _stream_sizes(n, degree, version) if size]
    if streams != len(sizes):
        raise InputError(f"{name}: the .spz header declares {streams} streams; {n:,} Gaussians at SH degree "
                         f"{degree} need {len(sizes)}")
    if toc < _NGSP.size or toc - _NGSP.size > _MAX_EXTENSION_BYTES:
        raise InputError(f"{name}: the .spz table of contents offset {toc:,} is out of range")
    at = toc + streams * _TOC_ENTRY.size
    need(data, at, name, "the .spz table of contents")
    chunks = []
    for i, (key, expected) in enumerate(sizes):
        packed, unpacked = _TOC_ENTRY.unpack_from(data, toc + i * _TOC_ENTRY.size)
        if unpacked != expected:
            raise InputError(f"{name}: the .spz {key} stream declares {unpacked:,} bytes; {n:,} Gaussians "
                             f"need {expected:,}")
        if packed > len(data) - at:
            raise InputError(f"{name}: truncated: the .spz {key} stream needs {packed:,} bytes, "
                             f"{len(data) - at:,} are left")
        chunks.append(data[at:at + packed])
        at += packed
    if at != len(data):
        raise InputError(f"{name}: {len(data) - at:,} unexpected bytes after the last .spz stream")
    parts = {key: _unzstd(chunk, expected, key, name) for chunk, (key, expected) in zip(chunks, sizes)}
    parts.setdefault("sh", b"")
    return version, n, degree, frac_bits, flags, parts, data[_NGSP.size:toc]


def _unzstd(chunk: bytes, size: int, key: str, name: str) -> bytes:
    import zstandard

    out = bytearray()
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(chunk)
        while len(out) < size:
            piece = reader.read(size - len(out))
            if not piece:
                break
            out += piece
        more = reader.read(1)
    except zstandard.ZstdError as error:
        raise InputError(f"{name}: the .spz {key} stream is not valid zstd ({error})") from None
    if len(out) < size:
        raise InputError(f"{name}: truncated: the .spz {key} stream inflates to {len(out):,} bytes, "
                         f"{size:,} are needed")
    if more:
        raise InputError(f"{name}: the .spz {key} stream inflates past the {size:,} bytes its table of "
                         "contents declares")
    return bytes(out)


def _inflate(d, data: bytes, size: int, name: str) -> bytes:
    """Up to `size` bytes more from the gzip stream `d` fed `data` (the previous call's unconsumed tail)."""
    out = bytearray()
    try:
        while len(out) < size and not d.eof:
            piece = d.decompress(data, size - len(out))
            data = d.unconsumed_tail
            if not piece:
                break
            out += piece
    except zlib.error as error:
        raise InputError(f"{name}: not a valid gzip-compressed .spz file ({error})") from None
    return bytes(out)


def _read_gzip(data: bytes, name: str):
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    head = _inflate(d, data, _LEGACY.size, name)
    if len(head) < _LEGACY.size:
        raise InputError(f"{name}: truncated: the .spz header needs {_LEGACY.size} bytes, found {len(head)}")
    magic, version, n, degree, frac_bits, flags, _ = _LEGACY.unpack(head)
    if magic != _MAGIC:
        raise InputError(f"{name}: not an .spz file (bad magic number {magic.hex(' ')} inside the gzip stream)")
    if version not in (2, 3):
        why = " (half-float positions, never released)" if version == 1 else ""
        raise InputError(f"{name}: gzip-wrapped .spz version {version}{why} is not supported (2 and 3 are; "
                         "version 4 starts with NGSP)")
    _check_header(name, version, n, degree, frac_bits, len(data), "gzip")
    sizes = _stream_sizes(n, degree, version)
    total = sum(size for _, size in sizes)
    body = _inflate(d, d.unconsumed_tail, total, name)
    if len(body) < total:
        raise InputError(f"{name}: truncated: {n:,} Gaussians need {_LEGACY.size + total:,} bytes after "
                         f"decompression, found {_LEGACY.size + len(body):,}")
    ext = b""
    if flags & _EXTENSIONS:  # legacy files keep extension records after the arrays
        ext = _inflate(d, d.unconsumed_tail, _MAX_EXTENSION_BYTES + 1, name)
    if len(ext) > _MAX_EXTENSION_BYTES or _inflate(d, d.unconsumed_tail, 1, name):
        raise InputError(f"{name}: the .spz file inflates past the {_LEGACY.size + total:,} bytes its header "
                         f"declares for {n:,} Gaussians")
    parts, at = {}, 0
    for key, size in sizes:
        parts[key] = body[at:at + size]
        at += size
    return version, n, degree, frac_bits, flags, parts, ext


def _coordinate_system(ext: bytes, name: str) -> str:
    """The axes the file's extension records name (Adobe's coordinate-system extension), else RUB."""
    system, at = "RUB", 0
    while at + 8 <= len(ext):
        kind, length = struct.unpack_from("<II", ext, at)
        at += 8
        if length > len(ext) - at:
            raise InputError(f"{name}: truncated: .spz extension record 0x{kind:08x} needs {length:,} bytes, "
                             f"{len(ext) - at:,} are left")
        if kind == _COORDINATE_SYSTEM_EXT and length >= 4:
            code = struct.unpack_from("<I", ext, at)[0]
            if code not in _COORDINATE_SYSTEMS:
                raise InputError(f"{name}: .spz coordinate system {code} is not one spz defines (0 to 16)")
            system = _COORDINATE_SYSTEMS[code]
        at += length
    if system == "UNSPECIFIED":
        return "RUB"
    if system[1] not in "UD":
        raise InputError(f"{name}: the .spz file is stored in coordinate system {system}, which this reader "
                         "does not convert (only the x-right/left, y-up/down, z-back/front systems)")
    return system


def _decode(parts, version, n, degree, frac_bits, antialiased, system, name) -> Gaussians:
    s = _axis_flips(system)
    p = np.frombuffer(parts["positions"], np.uint8).reshape(n, 3, 3).astype(np.int32)
    fixed = p[..., 0] | (p[..., 1] << 8) | (p[..., 2] << 16)
    fixed = np.where(fixed & 0x800000, fixed - (1 << 24), fixed)
    means = fixed.astype(np.float64) / (1 << frac_bits) * s
    alphas = np.frombuffer(parts["alphas"], np.uint8).astype(np.float64)
    # 0 and 255 stand for "below half a step" and "above"; keep the logit finite.
    logits = logit(np.clip(alphas / 255.0, 0.5 / 255.0, 1.0 - 0.5 / 255.0))
    colors = np.frombuffer(parts["colors"], np.uint8).reshape(n, 3).astype(np.float64)
    dc = (colors / 255.0 - 0.5) / _COLOR_SCALE
    scales = np.frombuffer(parts["scales"], np.uint8).reshape(n, 3).astype(np.float64) / 16.0 - 10.0
    rotations = np.frombuffer(parts["rotations"], np.uint8)
    if version >= 3:
        xyzw = _unpack_smallest_three(rotations.reshape(n, 4))
    else:
        xyz = rotations.reshape(n, 3).astype(np.float64) / 127.5 - 1.0
        w = np.sqrt(np.clip(1.0 - (xyz ** 2).sum(1), 0.0, None))
        xyzw = np.concatenate([xyz, w[:, None]], 1)
    # An axis flip S maps rotation R to S R S: the quaternion's vector part takes det(S) * s_i.
    quats = np.concatenate([xyzw[:, 3:], xyzw[:, :3] * (s * np.prod(s))], 1)  # (w, x, y, z)
    dim = _SH_DIMS[degree]
    if degree > 3:
        warnings.warn(f"{name}: .spz SH degree {degree} is read as degree 3 (the fourth band is dropped)",
                      stacklevel=4)
    keep = min(dim, _SH_DIMS[3])
    sh = np.zeros((n, keep + 1, 3))
    sh[:, 0] = dc
    if keep:
        rest = np.frombuffer(parts["sh"], np.uint8).reshape(n, dim, 3)[:, :keep].astype(np.float64)
        sh[:, 1:] = (rest - 128.0) / 128.0 * _sh_flips(s)[:keep, None]
    return gaussians(means, quats, scales, logits, sh, antialiased=antialiased)


def _unpack_smallest_three(r: np.ndarray) -> np.ndarray:  # [n, 4] u8 -> [n, 4] (x, y, z, w)
    comp = (r[:, 0].astype(np.uint32) | (r[:, 1].astype(np.uint32) << 8)
            | (r[:, 2].astype(np.uint32) << 16) | (r[:, 3].astype(np.uint32) << 24))
    largest = (comp >> 30).astype(np.int64)
    q = np.zeros((len(r), 4))
    for i in (3, 2, 1, 0):  # the last-stored component sits in the lowest bits
        here = largest != i
        value = _SQRT1_2 * (comp & 511).astype(np.float64) / 511.0
        q[here, i] = np.where((comp >> 9) & 1, -value, value)[here]
        comp = np.where(here, comp >> 10, comp)
    q[np.arange(len(r)), largest] = np.sqrt(np.clip(1.0 - (q ** 2).sum(1), 0.0, None))
    return q


def _pack_smallest_three(q: np.ndarray) -> np.ndarray:  # [n, 4] (x, y, z, w) unit -> [n, 4] u8
    n = len(q)
    largest = np.argmax(np.abs(q), 1)
    negate = q[np.arange(n), largest] < 0
    comp = largest.astype(np.uint32)
    for i in range(4):
        here = largest != i
        negbit = ((q[:, i] < 0) ^ negate).astype(np.uint32)
        mag = np.minimum(np.floor(511.0 * np.abs(q[:, i]) / _SQRT1_2 + 0.5), 511).astype(np.uint32)
        comp = np.where(here, (comp << 10) | (negbit << 9) | mag, comp)
    return np.stack([(comp >> s) & 0xFF for s in (0, 8, 16, 24)], 1).astype(np.uint8)


def _frac_bits_for(means: np.ndarray, name: str) -> int:
    """12 fractional bits, or fewer where the scene reaches beyond +-2048 (24 bits in all)."""
    reach = float(np.abs(means).max(initial=0.0))
    for bits in range(_FRAC_BITS, -1, -1):
        if math.floor(reach * (1 << bits) + 0.5) < (1 << 23):
            return bits
    raise InputError(f"{name}: positions reach {reach:,.0f}, beyond the +-8,388,607 that .spz's 24-bit "
                     "fixed point holds; use .ply for this scene")


def encode(g: Gaussians, name: str, version: int = LATEST, sh1_bits: int = 5, sh_rest_bits: int = 4) -> bytes:
    """The scene as .spz bytes: version 4 (NGSP + zstd streams) by default, 3 or 2 (gzip) on request.
    `sh1_bits` / `sh_rest_bits` (1 to 8) keep that many bits of the degree-1 / higher SH terms (spz's
    defaults, 5 and 4, compress well; 8 keeps every bit the format has, and any reader reads it)."""
    if version not in VERSIONS:
        raise InputError(f"{name}: .spz version {version} cannot be written (choose 2, 3 or 4)")
    if not (1 <= sh1_bits <= 8 and 1 <= sh_rest_bits <= 8):
        raise InputError(f"{name}: .spz SH bits must be 1 to 8 (got {sh1_bits} and {sh_rest_bits})")
    g.check_finite(name)
    n, degree = g.n, g.sh_degree
    if not 0 < n <= MAX_GAUSSIANS:  # what readers (spz's own and this one) accept
        raise InputError(f"{name}: .spz holds 1 to {MAX_GAUSSIANS:,} Gaussians here; the scene has {n:,}")
    means = g.means.numpy().astype(np.float64) * _RUB
    frac_bits = _frac_bits_for(means, name)
    fixed = np.floor(means * (1 << frac_bits) + 0.5).astype(np.int64) & 0xFFFFFF
    positions = np.stack([(fixed >> s) & 0xFF for s in (0, 8, 16)], -1).astype(np.uint8)  # [n, 3, 3]
    # 0 and 255 decode to -inf and +inf in spz's reference reader (and so in files splat-transform
    # converts from ours): keep them one step inside, a change of at most 1/255 for the faintest and
    # the most opaque Gaussians.
    alphas = np.clip(u8(sigmoid(g.opacities.numpy()) * 255.0), 1, 254)
    colors = u8(g.sh[:, 0].numpy().astype(np.float64) * (_COLOR_SCALE * 255.0) + 0.5 * 255.0)
    scales = u8((g.scales.numpy().astype(np.float64) + 10.0) * 16.0)
    q = g.quats.numpy().astype(np.float64)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    xyzw = np.concatenate([q[:, 1:] * _RUB, q[:, :1]], 1)  # det = +1 for RDF <-> RUB
    if version >= 3:
        rotations = _pack_smallest_three(xyzw)
    else:
        xyzw = np.where(xyzw[:, 3:] < 0, -xyzw, xyzw)
        rotations = u8(xyzw[:, :3] * 127.5 + 127.5)
    dim = sh_coeffs(degree) - 1
    if dim:
        rest = g.sh[:, 1:].numpy().astype(np.float64) * _sh_flips(_RUB)[:dim, None]
        q8 = np.floor(rest * 128.0 + 0.5) + 128.0
        bucket = np.where(np.arange(dim) < 3, 1 << (8 - sh1_bits), 1 << (8 - sh_rest_bits))[None, :, None]
        q8 = np.floor((q8 + bucket // 2) / bucket) * bucket
        sh = np.clip(q8, 0, 255).astype(np.uint8)
    else:
        sh = np.zeros((n, 0, 3), np.uint8)
    flags = _ANTIALIASED if g.antialiased else 0
    streams = [a.tobytes() for a in (positions, alphas, colors, scales, rotations, sh)]
    if version < 4:
        header = _LEGACY.pack(_MAGIC, version, n, degree, frac_bits, flags, 0)
        return gzip.compress(header + b"".join(streams), compresslevel=9, mtime=0)
    import zstandard

    compressor = zstandard.ZstdCompressor(level=12)  # spz's own writer uses zstd's level 12 too
    chunks = [(compressor.compress(s), len(s)) for s in streams if s]
    header = _NGSP.pack(_MAGIC, version, n, degree, frac_bits, flags, len(chunks), _NGSP.size, bytes(12))
    toc = b"".join(_TOC_ENTRY.pack(len(c), size) for c, size in chunks)
    return b"".join([header, toc, *(c for c, _ in chunks)])


def version(head: bytes) -> int | None:
    """The version a .spz file declares, from its first bytes (`neuralframe info`); None if unreadable."""
    if head[:4] == _MAGIC and len(head) >= 8:
        return struct.unpack_from("<I", head, 4)[0]
    if head[:2] == b"\x1f\x8b":
        try:  # the gzip-wrapped header's first 8 bytes: magic, version
            start = zlib.decompressobj(wbits=31).decompress(head, 8)
        except zlib.error:
            return None
        return struct.unpack_from("<I", start, 4)[0] if len(start) >= 8 else None
    return None
