"""The memory check made before large allocations: how much is available (overridable, so no test depends
on the machine), one clear line when an allocation will not fit, and image sizes read from headers."""

from __future__ import annotations

import struct
import zlib

import pytest

from neuralframe.backend import memory
from neuralframe.backend.memory import (
    LIMIT_ENV,
    available,
    check_allocation,
    check_image,
    human,
    image_pixels,
    parse_bytes,
    pipeline_bytes,
)
from neuralframe.errors import InputError


@pytest.mark.parametrize("text, value", [("1048576", 1 << 20), ("512M", 512 << 20), ("2G", 2 << 30), ("1.5g", 3 << 29),
                                         ("64k", 64 << 10), ("2GB", 2 << 30), ("3 MiB", 3 << 20), ("1T", 1 << 40)])
def test_sizes_parse_with_binary_units(text, value):
    assert parse_bytes(text) == value


def test_the_override_is_the_memory_available(monkeypatch):
    monkeypatch.setenv(LIMIT_ENV, "300M")
    assert available() == 300 << 20
    monkeypatch.setenv(LIMIT_ENV, "lots")
    with pytest.raises(InputError, match=f"{LIMIT_ENV}='lots' is not a size"):
        available()


def test_without_the_override_the_machine_says(monkeypatch):
    monkeypatch.delenv(LIMIT_ENV, raising=False)
    have = available()
    assert have is None or have > 0


def test_the_least_of_system_cgroup_and_address_space_is_available(monkeypatch):
    monkeypatch.delenv(LIMIT_ENV, raising=False)
    monkeypatch.setattr(memory, "_system_available", lambda: 8 << 30)
    monkeypatch.setattr(memory, "_cgroup_left", lambda: 3 << 30)
    monkeypatch.setattr(memory, "_address_space_left", lambda: None)
    assert available() == 3 << 30
    monkeypatch.setattr(memory, "_cgroup_left", lambda: None)
    assert available() == 8 << 30


def test_a_cgroup_limit_counts_its_reclaimable_cache_as_free(monkeypatch):
    files = {"/proc/self/cgroup": "4:memory:/job\n0::/\n",
             "/sys/fs/cgroup/memory/job/memory.limit_in_bytes": str(4 << 30),
             "/sys/fs/cgroup/memory/job/memory.usage_in_bytes": str(3 << 30),
             "/sys/fs/cgroup/memory/job/memory.stat": f"cache 5\ninactive_file {1 << 30}\n",
             "/sys/fs/cgroup/memory.max": "max", "/sys/fs/cgroup/memory.current": "123"}
    monkeypatch.setattr(memory, "_read", lambda path: files.get(str(path)))
    assert memory._cgroup_left() == 2 << 30  # 4 GB limit, 3 GB used of which 1 GB is reclaimable cache
    files["/sys/fs/cgroup/memory/job/memory.limit_in_bytes"] = "9223372036854771712"  # v1's "no limit"
    assert memory._cgroup_left() is None


def test_an_allocation_that_fits_passes_and_one_that_does_not_is_one_line():
    check_allocation(100, "small", "never mind", have=1000)
    with pytest.raises(InputError) as info:
        check_allocation(3 << 30, "16384x16384 frames", "use a smaller --size", have=512 << 20)
    text = str(info.value)
    assert text == ("16384x16384 frames: about 3.0 GB of memory needed, 512 MB available; use a smaller --size")
    assert "\n" not in text


def test_the_check_reads_the_override(monkeypatch):
    monkeypatch.setenv(LIMIT_ENV, "1M")
    with pytest.raises(InputError, match="about 2.0 MB of memory needed, 1.0 MB available"):
        check_allocation(2 << 20, "it", "less")


def test_sizes_read_as_people_write_them():
    assert [human(v) for v in (12, 2048, 5 << 20, 1536 << 20, 300 << 30, 3 << 40)] == [
        "12 bytes", "2.0 kB", "5.0 MB", "1.5 GB", "300 GB", "3.0 TB"]


def test_pipeline_frames_count_the_queued_frames_and_each_nodes_work():
    assert pipeline_bytes(100, 10, nodes=3, queued=8) == 1000 * (3 * 8 + 3 * memory.WORK_BYTES_PER_PIXEL)


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares `width` x `height` (and holds one empty row: its header is all a size check reads)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00")) + chunk(b"IEND", b"")


def test_image_sizes_come_from_the_header_without_decoding(tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(png_header(100_000, 50_000))  # 5 G pixels, beyond PIL's own ceiling
    assert path.stat().st_size < 100
    assert image_pixels(path) == 5_000_000_000
    assert image_pixels(tmp_path / "missing.png") is None
    (tmp_path / "text.png").write_text("not an image")
    assert image_pixels(tmp_path / "text.png") is None
    with pytest.raises(InputError, match="huge.png: about 14.0 GB of memory needed, 1.0 GB available; use smaller"):
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv(LIMIT_ENV, "1G")
            check_image(path, "huge.png", 3, "use smaller images")
