"""Niantic .spz versions 2, 3 and 4: round trips within the format's quantisation, the on-disk layout,
hostile files (each one InputError naming the file), bounded decompression, and interop both ways with
PlayCanvas splat-transform (which packs and unpacks through Niantic's own spz library)."""

from __future__ import annotations

import gzip
import math
import re
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
import torch
import zstandard
from splat_compare import psnr

from neuralframe.errors import InputError
from neuralframe.render.splat import Gaussians, load, save
from neuralframe.render.splat.formats import spz
from neuralframe.render.splat.formats.common import MAX_GAUSSIANS
from neuralframe.render.splat.procedural import random_scene

STEP_POS = 1 / 4096  # 12 fractional bits
STEP_ALPHA = 1 / 255
STEP_DC = 1 / (255 * 0.15)
STEP_SCALE = 1 / 16
STEP_SH1, STEP_SH_REST = 1 / 16, 1 / 8  # 5 and 4 bits of [-1, 1]
# Smallest three: each stored component to sqrt(1/2)/511, the largest rebuilt from the unit norm; the
# angle between the quaternions stays below ~0.3 degrees (|dot| > 0.9999). Version 2 stores x, y, z to
# 1/127.5 and rebuilds w = sqrt(1 - |xyz|^2), which near w = 0 errs by up to sqrt(2 sqrt(3) / 255) ~ 0.12:
# |dot| > 0.99.
MIN_DOT = {2: 0.99, 3: 0.9999, 4: 0.9999}


def scene(n=300, degree=3, seed=0) -> Gaussians:
    g = random_scene(n, seed=seed, sh_degree=degree)
    g.sh[:, 1:] = g.sh[:, 1:].clamp(-0.9, 0.9)  # inside .spz's SH range
    return g


def assert_within_quantisation(g: Gaussians, back: Gaussians, version: int, sh_steps=(STEP_SH1, STEP_SH_REST)):
    eps = 1e-5
    assert back.n == g.n and back.sh_degree == g.sh_degree
    assert (back.means - g.means).abs().max() <= STEP_POS / 2 + eps
    inside = (g.scales > -10) & (g.scales < 5.9)
    assert (back.scales - g.scales)[inside].abs().max() <= STEP_SCALE / 2 + eps
    a0, a1 = torch.sigmoid(g.opacities), torch.sigmoid(back.opacities)
    mid = (a0 > 1.5 / 255) & (a0 < 1 - 1.5 / 255)  # outside this, 0 and 255 are stored one step in
    assert (a1 - a0)[mid].abs().max() <= STEP_ALPHA / 2 + eps
    assert (a1 - a0).abs().max() <= 1.5 * STEP_ALPHA + eps
    dc_ok = (g.sh[:, 0] * 0.15 * 255 + 127.5).abs() < 255
    assert (back.sh[:, 0] - g.sh[:, 0])[dc_ok].abs().max() <= STEP_DC / 2 + eps
    q0 = torch.nn.functional.normalize(g.quats, dim=1)
    q1 = torch.nn.functional.normalize(back.quats, dim=1)
    assert (q0 * q1).sum(1).abs().min() > MIN_DOT[version]
    # The rest terms are first rounded to 1/128, then to the bucket: half a bucket plus 1/256.
    if g.sh_degree:
        assert (back.sh[:, 1:4] - g.sh[:, 1:4]).abs().max() <= sh_steps[0] / 2 + 1 / 256 + eps
    if g.sh_degree >= 2:
        assert (back.sh[:, 4:] - g.sh[:, 4:]).abs().max() <= sh_steps[1] / 2 + 1 / 256 + eps


@pytest.mark.parametrize("version", [2, 3, 4])
@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_round_trip_within_quantisation(tmp_path, version, degree):
    g = scene(degree=degree)
    g.antialiased = True
    path = save(g, tmp_path / "s.spz", version=version)
    assert path.read_bytes()[:4] == (b"NGSP" if version == 4 else b"\x1f\x8b\x08\x00")
    back = load(path)
    assert back.antialiased
    assert_within_quantisation(g, back, version)


def test_eight_sh_bits_keep_every_step_the_format_has():
    g = scene(degree=3)
    back = spz.read(spz.encode(g, "s.spz", sh1_bits=8, sh_rest_bits=8), "s.spz")
    assert_within_quantisation(g, back, 4, sh_steps=(0, 0))
    with pytest.raises(InputError, match="SH bits must be 1 to 8"):
        spz.encode(g, "s.spz", sh1_bits=9)


def ngsp_streams(data: bytes) -> tuple[tuple, list[bytes]]:
    """The header fields and the decompressed streams of a version 4 file, read independently."""
    head = struct.unpack_from("<4sIIBBBBI12s", data)
    toc, count = head[7], head[6]
    at, streams = toc + 16 * count, []
    for i in range(count):
        packed, unpacked = struct.unpack_from("<QQ", data, toc + 16 * i)
        streams.append(zstandard.ZstdDecompressor().decompress(data[at:at + packed], max_output_size=unpacked))
        assert len(streams[-1]) == unpacked
        at += packed
    assert at == len(data)
    return head, streams


def test_version_4_layout_and_rub_axes():
    # A Gaussian at +y (down, in INRIA/OpenCV axes) is stored at -y, +z (forward) at -z, as spz's tools do.
    g = Gaussians.from_colors(torch.tensor([[0.0, 1.0, 2.0]]), torch.tensor([[0.5, 0.5, 0.5]]), torch.tensor([0.1]))
    head, streams = ngsp_streams(spz.encode(g, "x.spz"))
    assert head[:8] == (b"NGSP", 4, 1, 0, 12, 0, 5, 32) and head[8] == bytes(12)
    assert [len(s) for s in streams] == [9, 1, 3, 3, 4]  # degree 0: no SH stream
    fixed = [int.from_bytes(streams[0][3 * i: 3 * i + 3], "little", signed=True) for i in range(3)]
    assert fixed == [0, -4096, -8192]
    legacy = gzip.decompress(spz.encode(g, "x.spz", version=3))
    assert [int.from_bytes(legacy[16 + 3 * i: 19 + 3 * i], "little", signed=True) for i in range(3)] == fixed
    head, streams = ngsp_streams(spz.encode(scene(n=7, degree=2), "x.spz"))
    assert head[3] == 2 and head[6] == 6 and len(streams[5]) == 7 * 8 * 3


def test_far_scenes_trade_fractional_bits_for_range():
    g = scene(n=50, degree=0)
    g.means[0] = torch.tensor([5000.0, -3000.0, 100.0])  # beyond 12 fractional bits' +-2048
    data = spz.encode(g, "far.spz")
    assert data[13] == 10  # 2^13 > 5000 needs 13 integer bits + sign: 10 fractional bits left
    back = spz.read(data, "far.spz")
    # half of 1/2^10, plus half a float32 step at 5000 (2^-12)
    assert (back.means - g.means).abs().max() <= 0.5 / 1024 + 2 ** -12 + 1e-6
    g.means[0, 0] = 9e6
    with pytest.raises(InputError, match="far.spz: positions reach 9,000,000"):
        spz.encode(g, "far.spz")


def ngsp(n: int, degree: int, streams: list[bytes], *, version=4, flags=0, ext=b"", frac_bits=12,
         sizes=None, count=None) -> bytes:
    """A version 4 file built by hand (independently of the encoder), for the reader's edge cases."""
    chunks = [zstandard.ZstdCompressor().compress(s) for s in streams]
    sizes = sizes or [len(s) for s in streams]
    header = struct.pack("<4sIIBBBBI12s", b"NGSP", version, n, degree, frac_bits, flags,
                         len(chunks) if count is None else count, 32 + len(ext), bytes(12))
    toc = b"".join(struct.pack("<QQ", len(c), u) for c, u in zip(chunks, sizes))
    return header + ext + toc + b"".join(chunks)


def raw_streams(n: int, degree: int, seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    dims = (0, 3, 8, 15, 24)[degree]
    sizes = [n * 9, n, n * 3, n * 3, n * 4, n * dims * 3]
    return [rng.integers(0, 256, s, dtype=np.uint8).tobytes() for s in sizes if s]


def test_coordinate_system_extension_and_degree_4():
    streams = raw_streams(20, 1)
    plain = spz.read(ngsp(20, 1, streams), "a.spz")
    record = struct.pack("<III", 0xADBE0003, 4, 6)  # stored in RDF already: no flip
    unknown = struct.pack("<II", 0x12340001, 3) + b"xyz"  # another vendor's record is skipped
    rdf = spz.read(ngsp(20, 1, streams, flags=0x2, ext=unknown + record), "b.spz")
    flip = torch.tensor([1.0, -1.0, -1.0])
    assert torch.allclose(rdf.means, plain.means * flip)
    assert torch.allclose(rdf.quats[:, 1:], plain.quats[:, 1:] * flip)
    assert torch.allclose(rdf.sh[:, 1:], plain.sh[:, 1:] * torch.tensor([-1.0, -1.0, 1.0])[:, None])
    with pytest.raises(InputError, match="c.spz: the .spz file is stored in coordinate system RFU"):
        spz.read(ngsp(20, 1, streams, flags=0x2, ext=struct.pack("<III", 0xADBE0003, 4, 12)), "c.spz")
    with pytest.raises(InputError, match="d.spz: truncated: .spz extension record"):
        spz.read(ngsp(20, 1, streams, flags=0x2, ext=struct.pack("<II", 0x12340001, 99)), "d.spz")
    deg4 = raw_streams(20, 4)
    with pytest.warns(UserWarning, match="degree 4 is read as degree 3"):
        g4 = spz.read(ngsp(20, 4, deg4), "e.spz")
    sh = np.frombuffer(deg4[5], np.uint8).reshape(20, 24, 3)[:, :15]
    assert g4.sh_degree == 3 and g4.sh[:, 1:].abs().max() <= 1
    assert torch.allclose(g4.sh[:, 1:].abs(), torch.from_numpy((np.abs(sh - 128.0) / 128.0).astype(np.float32)))


def legacy(header: bytes, body: bytes = b"") -> bytes:
    return gzip.compress(header + body)


def lhead(version=3, n=1, degree=0, frac_bits=12, flags=0, magic=b"NGSP") -> bytes:
    return struct.pack("<4sIIBBBB", magic, version, n, degree, frac_bits, flags, 0)


ONE = b"\x00" * (9 + 1 + 3 + 3 + 4)  # one Gaussian, degree 0, version 3
GOOD4 = ngsp(10, 0, raw_streams(10, 0))
LAST = len(GOOD4) - len(zstandard.ZstdCompressor().compress(raw_streams(10, 0)[4]))  # rotations frame

HOSTILE = [
    (b"not spz at all", "begins with neither 'NGSP'"),
    (legacy(lhead(magic=b"ABCD"), ONE), "bad magic number"),
    (legacy(lhead(version=9), ONE), "version 9 is not supported"),
    (legacy(lhead(version=1), ONE), "never released"),
    (legacy(lhead(n=10, degree=1), b"\x00" * 50), "truncated: 10 Gaussians need"),
    (legacy(b"NGSP"), "truncated: the .spz header needs 16 bytes"),
    (legacy(lhead(), ONE)[:-12], "truncated"),  # the gzip stream itself cut short
    (legacy(lhead(), ONE)[:10] + b"\xff" * 30, "not a valid gzip-compressed"),
    (legacy(lhead(n=0)), "has no Gaussians"),
    (legacy(lhead(degree=5), ONE), "SH degree 5 is not supported"),
    (legacy(lhead(frac_bits=40), ONE), "fractional bits 40"),
    (legacy(lhead(n=MAX_GAUSSIANS + 1)), "at most 67,108,864 are read"),
    (legacy(lhead(n=60_000_000), ONE), "declares 60,000,000 Gaussians, more than a"),
    (legacy(lhead(), ONE + b"\x00" * 100), "inflates past the 36 bytes"),
    (GOOD4[:20], "truncated: the .spz version 4 header needs 32 bytes"),
    (GOOD4[:4] + struct.pack("<I", 3) + GOOD4[8:], "version 3 is not supported with an NGSP header"),
    (ngsp(10, 0, raw_streams(10, 0), count=6), "declares 6 streams; 10 Gaussians at SH degree 0 need 5"),
    (ngsp(10, 0, raw_streams(10, 0), sizes=[90, 10, 30, 30, 400]), "rotations stream declares 400 bytes"),
    (ngsp(10, 0, raw_streams(10, 0)[:4] + [b"\x00" * 41], sizes=[90, 10, 30, 30, 40]), "inflates past the 40"),
    (ngsp(10, 0, raw_streams(10, 0)[:4] + [b"\x00" * 39], sizes=[90, 10, 30, 30, 40]), "truncated: the .spz rotations"),
    (GOOD4[:-3], "truncated: the .spz rotations stream needs"),
    (GOOD4 + b"\x00", "1 unexpected bytes after the last .spz stream"),
    (GOOD4[:LAST] + b"\xff" * 4 + GOOD4[LAST + 4:], "rotations stream is not valid zstd"),
    (ngsp(60_000_000, 0, raw_streams(1, 0)), "declares 60,000,000 Gaussians, more than a"),
    (ngsp(10, 0, raw_streams(10, 0), frac_bits=99), "fractional bits 99"),
]


@pytest.mark.parametrize("data, message", HOSTILE, ids=[m for _, m in HOSTILE])
def test_hostile_files_are_one_error_naming_the_file(tmp_path, data, message):
    path = tmp_path / "bad.spz"
    path.write_bytes(data)
    with pytest.raises(InputError, match=re.escape(message)) as info:
        load(path)
    assert str(path) in str(info.value)


def test_nan_scene_is_refused_before_writing(tmp_path):
    g = scene(n=10, degree=0)
    g.opacities[3] = math.nan
    with pytest.raises(InputError, match="nan.spz: 1 Gaussian\\(s\\) have NaN or infinite opacities"):
        spz.encode(g, "nan.spz")
    with pytest.raises(InputError, match="NaN"):
        save(g, tmp_path / "nan.spz")
    assert not (tmp_path / "nan.spz").exists()
    with pytest.raises(InputError, match="empty.spz: .spz holds 1 to 67,108,864 Gaussians here; the scene has 0"):
        spz.encode(scene(n=10, degree=0)[:0], "empty.spz")


def bomb(kind: str, megabytes: int = 400) -> bytes:
    """A valid one-Gaussian header followed by `megabytes` of zeros, compressed to a few hundred kB."""
    zeros = b"\x00" * (1 << 20)
    if kind == "gzip":
        c = zlib.compressobj(9, zlib.DEFLATED, 31)
        parts = [c.compress(lhead() + ONE)] + [c.compress(zeros) for _ in range(megabytes)] + [c.flush()]
        return b"".join(parts)
    c = zstandard.ZstdCompressor().compressobj()
    big = b"".join([c.compress(zeros) for _ in range(megabytes)] + [c.flush()])
    good = [zstandard.ZstdCompressor().compress(b"\x00" * s) for s in (9, 1, 3, 3)]
    header = struct.pack("<4sIIBBBBI12s", b"NGSP", 4, 1, 0, 12, 0, 5, 32, bytes(12))
    toc = b"".join(struct.pack("<QQ", len(c), u) for c, u in zip(good + [big], (9, 1, 3, 3, 4)))
    return header + toc + b"".join(good) + big


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_a_small_file_that_inflates_to_400_mb_is_refused_without_inflating_it(tmp_path, kind):
    path = tmp_path / "bomb.spz"
    path.write_bytes(bomb(kind))
    assert path.stat().st_size < 500_000  # 400 MB of zeros, inflated in full by the old reader
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match="inflates past") as info:
            load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(path) in str(info.value)
    assert peak < 8 * path.stat().st_size + (4 << 20), f"{peak:,} bytes allocated reading a {kind} bomb"


# --- interop with PlayCanvas splat-transform (Niantic's spz library compiled to WebAssembly) -------------

# Render PSNR floors against the source .ply, from measurements (splat-transform 2.7.1, 160x120 CPU render):
# the motorcycle (SH 0) measured 55.3 dB, bounded by 8-bit colour and opacity; the SH-3 scene 36.5 dB,
# bounded by spz's default 5/4-bit SH rest terms (its DC, positions and rotations alone give > 59 dB).
FLOOR = {"motorcycle": 52.0, "sh3": 35.0}


@pytest.fixture(scope="module")
def sources(tmp_path_factory, motorcycle, sh3_scene):
    from neuralframe.assets import asset

    folder = tmp_path_factory.mktemp("spz_interop")
    return {"motorcycle": (asset("scenes", "motorcycle.ply"), motorcycle),
            "sh3": (save(sh3_scene, folder / "sh3.ply"), sh3_scene)}


@pytest.mark.parametrize("version", [4, 3])
@pytest.mark.parametrize("name", ["motorcycle", "sh3"])
def test_files_splat_transform_writes_open_and_render_the_same(tmp_path, splat_transform, sources, name,
                                                              version):
    ply, source = sources[name]
    out = tmp_path / f"{name}.spz"
    splat_transform("--spz-version", str(version), ply, out)
    assert out.read_bytes()[:2] == (b"NG" if version == 4 else b"\x1f\x8b")
    theirs = load(out)
    assert theirs.n == source.n and theirs.sh_degree == source.sh_degree
    db = psnr(source, theirs)
    print(f"splat-transform {name} -> .spz v{version}: {db:.2f} dB against the .ply")
    assert db >= FLOOR[name]
    # Niantic's packer and ours quantise the same scene to the same steps (float32 ties aside).
    ours = spz.read(spz.encode(source, "ours.spz", version=version), "ours.spz")
    assert (theirs.means - ours.means).abs().max() <= STEP_POS + 1e-6
    assert (theirs.sh - ours.sh).abs().max() <= STEP_SH_REST + 1e-6
    assert (theirs.scales - ours.scales).abs().max() <= STEP_SCALE + 1e-6


@pytest.mark.parametrize("version", [4, 3, 2])
@pytest.mark.parametrize("name", ["motorcycle", "sh3"])
def test_files_we_write_open_in_splat_transform(tmp_path, splat_transform, sources, name, version):
    _, source = sources[name]
    ours = save(source, tmp_path / "ours.spz", version=version)
    splat_transform(ours, tmp_path / "back.ply")
    back = load(tmp_path / "back.ply")
    assert back.n == source.n and back.sh_degree == source.sh_degree
    db = psnr(source, back)
    print(f"neuralframe {name} -> .spz v{version} -> splat-transform .ply: {db:.2f} dB against the source")
    assert db >= FLOOR[name]
    # Both decoders agree on our bytes: splat-transform's .ply is our own reading of the file.
    mine = load(ours)
    assert (back.means - mine.means).abs().max() <= 1e-5
    assert (back.opacities - mine.opacities).abs().max() <= 1e-4
    assert (back.sh - mine.sh).abs().max() <= 1e-5
