"""GaussianSplats3D `.ksplat` (mkkellogg's SplatBuffer), read only. Little-endian throughout; no magic.

    main header, 4096 bytes: u8 version major (0), u8 minor (>= 1), u32 @4 section count (the layout
    uses it), u32 @8 loaded sections, u32 @12 max splats, u32 @16 splat count, u16 @20 compression level
    (0, 1, 2), f32 @24..32 scene centre, f32 @36 / @40 min / max SH value for level 2 (0 means -1.5 / 1.5)
    section headers, 1024 bytes each: u32 @0 splat count, @4 max splats (the layout uses it), @8 bucket
    size, @12 bucket count, f32 @16 bucket block size, u16 @20 bytes a bucket (12), u32 @24 position
    quantisation range (0 means 32767), @28 storage bytes, @32 full buckets, @36 partial buckets,
    u16 @40 SH degree
    then each section's data in turn: u32 sizes of the partial buckets, bucket centres (f32 x 3 each),
    then max-splats records of
        level 0: centre f32 x 3, scale f32 x 3, rotation f32 x 4, RGBA u8 x 4, SH f32 x K   (44 + 4K bytes)
        level 1: centre u16 x 3, scale f16 x 3, rotation f16 x 4, RGBA u8 x 4, SH f16 x K   (24 + 2K)
        level 2: as level 1, SH u8 x K mapped linearly onto the header's [min, max]         (24 + K)

Records fill the full buckets (bucket-size records each) first, then the partial ones in turn; at levels
1 and 2 a centre is bucket centre + (u16 - range) * block size / 2 / range (a step of block / 65534:
0.08 mm for the default 5 m blocks). Scales are linear (their log is taken here; 0 maps to the smallest
float scale), the rotation is (w, x, y, z), colour is 0.5 + C0 * f_dc in u8 (GaussianSplats3D rounds down),
alpha = sigmoid(opacity) in u8, both decoded as u / 255 as its renderer and splat-transform read them.
SH: K = 9, 24 (45) values for degree 1, 2 (3), grouped by degree and channel-major within a degree:
[r1 r2 r3 g1 g2 g3 b1 b2 b3] then [r4..r8 g4..g8 b4..b8] (then [r9..r15 ...], which GaussianSplats3D
does not write, laid out as splat-transform reads it). Half floats keep 11 significant bits (relative
error <= 2^-11); level-2 SH steps are (max - min) / 255.
"""

from __future__ import annotations

import numpy as np

from neuralframe.errors import InputError
from neuralframe.render.splat.formats.common import (
    MAX_GAUSSIANS,
    check_count,
    check_memory,
    gaussians,
    logit,
    need,
)
from neuralframe.render.splat.gaussians import SH_C0, Gaussians

HEADER = 4096
SECTION_HEADER = 1024
_SH_COMPONENTS = (0, 9, 24, 45)
_BASE_BYTES = {0: 44, 1: 24, 2: 24}  # centre, scale, rotation, colour
_SH_BYTES = {0: 4, 1: 2, 2: 1}
_DEFAULT_RANGE = 32767
_ALPHA_EPS = 1e-6
_MIN_SCALE = float(np.finfo(np.float32).tiny)


def _sh_slots(degree: int) -> tuple[np.ndarray, np.ndarray]:
    """For each stored SH value of a degree: the coefficient index (1..15) and channel (0..2) it fills."""
    coeff, channel = [], []
    for band, first in ((1, 1), (2, 4), (3, 9)):
        if band > degree:
            break
        per = 2 * band + 1
        for c in range(3):
            coeff += range(first, first + per)
            channel += [c] * per
    return np.array(coeff, np.int64), np.array(channel, np.int64)


def _section_layout(data: bytes, name: str, sections: int, level: int) -> list[dict]:
    out, base = [], HEADER + sections * SECTION_HEADER
    for s in range(sections):
        h = HEADER + s * SECTION_HEADER
        u32 = np.frombuffer(data, "<u4", 10, h)
        degree = int(np.frombuffer(data, "<u2", 1, h + 40)[0])
        if degree > 3:
            raise InputError(f"{name}: section {s} declares SH degree {degree} (a .ksplat holds 0-3)")
        count, most, bucket_size, buckets = (int(x) for x in u32[:4])
        full, partial = int(u32[8]), int(u32[9])
        bucket_bytes = int(np.frombuffer(data, "<u2", 1, h + 20)[0])
        check_count(most, f"{name}: section {s}", sh_degree=None)
        if count > most:
            raise InputError(f"{name}: section {s} declares {count:,} splats, more than its {most:,} slots")
        if level >= 1 and count and bucket_bytes != 12:
            raise InputError(f"{name}: section {s} has {bucket_bytes}-byte buckets (a .ksplat's are 12)")
        if buckets > MAX_GAUSSIANS or full + partial > buckets:
            raise InputError(f"{name}: section {s} declares {buckets:,} buckets ({full:,} full, "
                             f"{partial:,} partial), which cannot be")
        per_splat = _BASE_BYTES[level] + _SH_COMPONENTS[degree] * _SH_BYTES[level]
        meta = partial * 4 + bucket_bytes * buckets
        out.append({"count": count, "bucket_size": bucket_size, "buckets": buckets, "full": full,
                    "partial": partial, "block": float(np.frombuffer(data, "<f4", 1, h + 16)[0]),
                    "qrange": int(u32[6]) or _DEFAULT_RANGE, "degree": degree, "per_splat": per_splat,
                    "base": base, "data": base + meta})
        base += meta + per_splat * most
    need(data, base, name, f"{sections} section(s) of splat data")
    return out


def _bucket_of(sec: dict, name: str, s: int, data: bytes) -> np.ndarray:
    """Each record's bucket: full buckets first (bucket_size records each), then the partial ones."""
    sizes = np.frombuffer(data, "<u4", sec["partial"], sec["base"]).astype(np.int64)
    full_splats = min(sec["full"] * sec["bucket_size"], sec["count"])
    if full_splats + int(sizes.sum()) < sec["count"]:
        raise InputError(f"{name}: section {s}'s buckets hold {full_splats + int(sizes.sum()):,} splats, "
                         f"fewer than its {sec['count']:,}")
    i = np.arange(full_splats, sec["count"])
    tail = sec["full"] + np.searchsorted(np.cumsum(sizes), i - full_splats, side="right")
    return np.concatenate([np.arange(full_splats) // max(sec["bucket_size"], 1), tail])


def read(data: bytes, name: str) -> Gaussians:
    need(data, HEADER, name, "the .ksplat header")
    major, minor = data[0], data[1]
    if major != 0 or minor < 1:
        raise InputError(f"{name}: not a .ksplat file (or one of an unsupported version {major}.{minor}; "
                         "GaussianSplats3D writes 0.1)")
    u32 = np.frombuffer(data, "<u4", 5, 0)
    sections, total = int(u32[1]), int(u32[4])
    level = int(np.frombuffer(data, "<u2", 1, 20)[0])
    if level not in _BASE_BYTES:
        raise InputError(f"{name}: unknown .ksplat compression level {level} (0, 1 or 2)")
    check_count(total, name, sh_degree=None)  # the memory once the sections are checked against the file
    if total == 0:
        raise InputError(f"{name}: the .ksplat file has no Gaussians")
    if sections > (len(data) - HEADER) // SECTION_HEADER:
        raise InputError(f"{name}: truncated or corrupt: the header declares {sections:,} sections, the file "
                         f"has room for {(len(data) - HEADER) // SECTION_HEADER:,} section headers")
    sh_lo, sh_hi = (float(v) or d for v, d in zip(np.frombuffer(data, "<f4", 2, 36), (-1.5, 1.5)))
    layout = _section_layout(data, name, sections, level)
    check_memory(total, name, max(sec["degree"] for sec in layout) if layout else 0)
    if sum(sec["count"] for sec in layout) != total:
        raise InputError(f"{name}: the header declares {total:,} splats, its sections "
                         f"{sum(sec['count'] for sec in layout):,}")
    degree = max((sec["degree"] for sec in layout if sec["count"]), default=0)
    parts = [_read_section(data, name, s, sec, level, degree, sh_lo, sh_hi)
             for s, sec in enumerate(layout) if sec["count"]]
    means, quats, scales, rgba, sh = (np.concatenate(p) for p in zip(*parts))
    bad = ~np.isfinite(np.concatenate([means, quats, scales, sh.reshape(total, -1)], 1)).all(1)
    if bad.any():
        raise InputError(f"{name}: {int(bad.sum())} Gaussian(s) have NaN or infinite values "
                         f"(first at index {int(np.flatnonzero(bad)[0])})")
    if (np.abs(quats).sum(1) == 0).any():
        raise InputError(f"{name}: Gaussian {int(np.flatnonzero(np.abs(quats).sum(1) == 0)[0])} has a zero "
                         "rotation quaternion")
    sh[:, 0] = (rgba[:, :3] / 255.0 - 0.5) / SH_C0
    alpha = np.clip(rgba[:, 3] / 255.0, _ALPHA_EPS, 1.0 - _ALPHA_EPS)
    log_scales = np.log(np.maximum(np.abs(scales), _MIN_SCALE))
    return gaussians(means, quats, log_scales, logit(alpha), sh)


def _read_section(data, name, s, sec, level, degree, sh_lo, sh_hi):
    n, per = sec["count"], sec["per_splat"]
    k = _SH_COMPONENTS[sec["degree"]]
    fields = [("rgba", "u1", 4)]
    if level == 0:
        fields = [("centre", "<f4", 3), ("scale", "<f4", 3), ("rot", "<f4", 4)] + fields
    else:
        fields = [("centre", "<u2", 3), ("scale", "<f2", 3), ("rot", "<f2", 4)] + fields
    if k:
        fields.append(("sh", {0: "<f4", 1: "<f2", 2: "u1"}[level], k))
    rec = np.frombuffer(data, np.dtype(fields), n, sec["data"])
    assert rec.dtype.itemsize == per
    if level == 0:
        means = rec["centre"].astype(np.float64)
    else:
        if not np.isfinite(sec["block"]) or sec["block"] <= 0:
            raise InputError(f"{name}: section {s} has a bad bucket block size {sec['block']}")
        centres = np.frombuffer(data, "<f4", sec["buckets"] * 3, sec["base"] + 4 * sec["partial"])
        centres = centres.reshape(-1, 3).astype(np.float64)
        step = sec["block"] / 2.0 / sec["qrange"]
        means = (rec["centre"].astype(np.float64) - sec["qrange"]) * step + centres[_bucket_of(sec, name, s, data)]
    sh = np.zeros((n, (degree + 1) ** 2, 3), np.float64)
    if k:
        values = rec["sh"].astype(np.float64)
        if level == 2:
            values = sh_lo + values / 255.0 * (sh_hi - sh_lo)
        coeff, channel = _sh_slots(sec["degree"])
        sh[:, coeff, channel] = values
    return (means, rec["rot"].astype(np.float64), rec["scale"].astype(np.float64),
            rec["rgba"].astype(np.float64), sh)
