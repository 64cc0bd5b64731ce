"""Bounded decompression for archives a user hands in: a zip (a torch .pth is one) is checked against a
bound and the memory available, from the sizes its directory declares, before anything is inflated; a
gzip file is inflated no further than its bound.

    check_zip(path, f"RVM weights '{path}'", limit=1 << 30)   # then torch.load (backend.weights does both)
    text = read_gzip(path, "BPE vocabulary", limit=16 << 20)

(The scene formats bound their own streams by what their headers declare: `render/splat/formats`.)
"""

from __future__ import annotations

import os
from pathlib import Path

from neuralframe.backend.memory import check_allocation, human
from neuralframe.errors import InputError

MAX_ZIP_ENTRIES = 1 << 20  # a directory longer than this is a hostile file, not a model
MAX_ARCHIVE_BYTES = 16 << 30  # a torch file inflating past this is not one of the models this project loads


def check_zip(path: str | os.PathLike, what: str, limit: int) -> int | None:
    """The total its entries inflate to, from the zip directory of `path` (a readers' allocations follow
    these sizes: Python's zipfile and torch's reader stop at them), once that is at most `limit` and fits
    in memory; otherwise an InputError naming `what`. None when `path` is not a zip: the loader that
    follows says what it is."""
    import zipfile

    try:
        with zipfile.ZipFile(Path(path)) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        return None
    if len(entries) > MAX_ZIP_ENTRIES:
        raise InputError(f"{what}: the archive lists {len(entries):,} entries (at most {MAX_ZIP_ENTRIES:,} are read)")
    total = sum(info.file_size for info in entries)
    if total > limit:
        raise InputError(f"{what}: the archive inflates to {human(total)}, more than the {human(limit)} such a file "
                         "can hold: it is not the file expected, or it is hostile")
    check_allocation(total, what, "free some memory, or use a machine with more")
    return total


def read_gzip(path: str | os.PathLike, what: str, limit: int) -> bytes:
    """The inflated content of the gzip file at `path`, at most `limit` bytes; more is an InputError
    naming `what`, raised without inflating past the bound."""
    import gzip
    import zlib

    try:
        with gzip.open(Path(path), "rb") as f:
            data = f.read(limit + 1)
    except (OSError, EOFError, zlib.error) as error:  # gzip.BadGzipFile is an OSError
        raise InputError(f"{what} '{path}' is not a readable gzip file ({error})") from None
    if len(data) > limit:
        raise InputError(f"{what} '{path}' inflates past the {human(limit)} such a file can hold: it is not the "
                         "file expected, or it is hostile")
    return data
