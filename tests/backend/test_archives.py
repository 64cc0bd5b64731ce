"""Bounded decompression: a zip (a .pth) is judged by the sizes its directory declares before anything is
inflated; a gzip file is inflated no further than its bound. Bombs are refused quickly, without their
memory."""

from __future__ import annotations

import gzip
import io
import struct
import time
import tracemalloc
import zipfile

import pytest

from neuralframe.backend.archives import check_zip, read_gzip
from neuralframe.backend.memory import LIMIT_ENV
from neuralframe.errors import InputError

ZEROS = b"\x00" * (1 << 20)


def zip_bomb(path, megabytes: int = 100) -> None:
    """One entry of `megabytes` of zeros, deflated to a few hundred kB."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("archive/data/0", "w", force_zip64=True) as f:
            for _ in range(megabytes):
                f.write(ZEROS)


def test_a_zip_within_its_bound_gives_its_inflated_size(tmp_path):
    path = tmp_path / "weights.pth"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a", b"x" * 1000)
        archive.writestr("b", b"y" * 24)
    assert check_zip(path, "weights", limit=1 << 20) == 1024


def test_a_zip_bomb_is_refused_from_its_directory(tmp_path):
    path = tmp_path / "bomb.pth"
    zip_bomb(path)
    assert path.stat().st_size < 1 << 20
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(InputError) as info:
            check_zip(path, f"RVM weights '{path}'", limit=64 << 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(info.value) == (f"RVM weights '{path}': the archive inflates to 100 MB, more than the 64.0 MB such "
                               "a file can hold: it is not the file expected, or it is hostile")
    assert peak < 1 << 20 and time.perf_counter() - start < 1.0


def test_a_zip_that_fits_its_bound_but_not_memory_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "big.pth"
    zip_bomb(path, megabytes=20)
    monkeypatch.setenv(LIMIT_ENV, "8M")
    with pytest.raises(InputError, match="big.pth': about 20.0 MB of memory needed, 8.0 MB available"):
        check_zip(path, f"RVM weights '{path}'", limit=1 << 30)


def test_what_is_not_a_zip_is_left_to_its_loader(tmp_path):
    path = tmp_path / "old.pth"
    path.write_bytes(b"\x80\x02legacy pickle")
    assert check_zip(path, "weights", limit=1 << 20) is None
    assert check_zip(tmp_path / "missing.pth", "weights", limit=1 << 20) is None


def test_gzip_reads_what_fits_and_refuses_a_bomb_without_inflating_it(tmp_path):
    good = tmp_path / "vocab.txt.gz"
    good.write_bytes(gzip.compress(b"hello\nworld\n"))
    assert read_gzip(good, "BPE vocabulary", limit=1 << 20) == b"hello\nworld\n"
    bomb = tmp_path / "bomb.txt.gz"
    bomb.write_bytes(gzip.compress(ZEROS, 9) * 400)  # 400 gzip members of 1 MB of zeros: one gzip file
    assert bomb.stat().st_size < 500_000
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match="bomb.txt.gz' inflates past the 16.0 MB such a file can hold"):
            read_gzip(bomb, "BPE vocabulary", limit=16 << 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20
    bad = tmp_path / "bad.gz"
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(InputError, match="bad.gz' is not a readable gzip file"):
        read_gzip(bad, "BPE vocabulary", limit=1 << 20)


def test_a_truncated_gzip_is_one_error(tmp_path):
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(io.BytesIO(b"x" * 10_000).read())[:-20])
    with pytest.raises(InputError, match="not a readable gzip file"):
        read_gzip(path, "BPE vocabulary", limit=1 << 20)


def test_every_torch_load_is_bounded_first(tmp_path, monkeypatch):
    from neuralframe.backend.weights import load_weights

    path = tmp_path / "checkpoint.pt"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", b"x" * 1000)
        archive.writestr("archive/data/0", b"\x00" * 100_000)
    blob = bytearray(path.read_bytes())
    struct.pack_into("<I", blob, blob.rfind(b"PK\x01\x02") + 24, 3_000_000_000)  # the directory's inflated size
    path.write_bytes(bytes(blob))
    monkeypatch.setenv(LIMIT_ENV, "1G")
    with pytest.raises(InputError, match=r"^checkpoint 'checkpoint.pt': about 2.8 GB of memory needed, 1.0 GB "):
        load_weights(path, "checkpoint 'checkpoint.pt'")
    with pytest.raises(InputError, match=r"^checkpoint: the archive inflates to 2.8 GB, more than the 1.0 GB"):
        load_weights(path, "checkpoint", limit=1 << 30)
