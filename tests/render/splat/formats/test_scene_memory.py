"""Scenes are judged against the memory available before they are read: the file itself, then the
Gaussians a header declares (at its SH degree), after the checks of that count against the file. A small
.spz whose honest header declares millions of zero Gaussians is refused without inflating it."""

from __future__ import annotations

import json
import struct
import time
import tracemalloc
import zlib

import pytest

from neuralframe.backend.memory import LIMIT_ENV
from neuralframe.errors import InputError
from neuralframe.render.splat import load, save
from neuralframe.render.splat.formats.common import scene_bytes
from neuralframe.render.splat.procedural import random_scene


def gzip_spz(n: int, degree: int = 0) -> bytes:
    """A version-3 .spz of `n` all-zero Gaussians: its header is honest, its body compresses ~1000:1."""
    per = 9 + 1 + 3 + 3 + 4 + (0, 9, 24, 45)[degree]
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [c.compress(struct.pack("<4sIIBBBB", b"NGSP", 3, n, degree, 12, 0, 0))]
    block = b"\x00" * (1 << 20)
    left = n * per
    while left:
        parts.append(c.compress(block[:min(left, len(block))]))
        left -= min(left, len(block))
    return b"".join(parts + [c.flush()])


def test_the_estimate_counts_every_float_and_the_readers_working_copies():
    assert scene_bytes(1000, 0) == 1000 * 4 * (11 + 3) * 3
    assert scene_bytes(1000, 3) == 1000 * 4 * (11 + 48) * 3


def test_a_small_spz_declaring_millions_of_gaussians_is_refused_before_inflating(tmp_path, monkeypatch):
    path = tmp_path / "zeros.spz"
    path.write_bytes(gzip_spz(2_000_000))  # 40 MB of zeros inflated; about 1 GB once read
    assert path.stat().st_size < 100_000
    monkeypatch.setenv(LIMIT_ENV, "256M")
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(InputError) as info:
            load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(info.value) == (f"{path}: 2,000,000 Gaussians: about 320 MB of memory needed, 256 MB available; "
                               "free some memory, or open the scene on a machine with more")
    assert peak < 4 << 20 and time.perf_counter() - start < 2.0


def test_a_count_the_file_cannot_hold_is_said_before_the_memory(tmp_path, monkeypatch):
    monkeypatch.setenv(LIMIT_ENV, "1M")
    path = tmp_path / "lying.spz"
    header = struct.pack("<4sIIBBBB", b"NGSP", 3, 60_000_000, 0, 12, 0, 0)
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    path.write_bytes(c.compress(header + b"\x00" * 20) + c.flush())
    with pytest.raises(InputError, match="declares 60,000,000 Gaussians, more than a"):
        load(path)


@pytest.mark.parametrize("suffix, degree", [(".ply", 3), (".splat", 0), (".spz", 1), (".compressed.ply", 2),
                                            (".sog", 1), (".glb", 3)])
def test_every_format_checks_the_memory_for_its_gaussians(tmp_path, monkeypatch, suffix, degree):
    g = random_scene(2000, seed=0, sh_degree=degree)
    g.sh[:, 1:] = g.sh[:, 1:].clamp(-0.9, 0.9)
    path = save(g, tmp_path / f"scene{suffix}")
    assert load(path).n == 2000
    need = scene_bytes(2000, degree)
    monkeypatch.setenv(LIMIT_ENV, str(need - 1))
    with pytest.raises(InputError, match=r": 2,000 Gaussians: about .* of memory needed, .* available; free some"):
        load(path)


def test_a_scene_file_larger_than_memory_is_not_read(tmp_path, monkeypatch):
    path = save(random_scene(2000, seed=0, sh_degree=3), tmp_path / "scene.ply")
    monkeypatch.setenv(LIMIT_ENV, "64K")
    with pytest.raises(InputError, match=r"scene.ply: reading the file: about 486 kB of memory needed, 64.0 kB"):
        load(path)


def test_a_sog_meta_declaring_millions_is_refused_before_an_image_is_read(tmp_path, monkeypatch):
    folder = tmp_path / "scene"
    folder.mkdir()
    (folder / "meta.json").write_text(json.dumps({"version": 2, "count": 10_000_000, "shN": {"bands": 3}}))
    monkeypatch.setenv(LIMIT_ENV, "1G")
    with pytest.raises(InputError, match=r"meta.json: 10,000,000 Gaussians: about 6.6 GB of memory needed"):
        load(folder)
