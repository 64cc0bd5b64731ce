"""How much memory this process may still take, and the check made before any large allocation that a
user's input sizes (frames from --size or --upscale, scene arrays from a header's count, decoded images
and videos, model archives).

    check_allocation(pipeline_bytes(w, h, nodes=3, queued=8), f"{w}x{h} frames", "use a smaller --size")

The memory available is the least of: the system's (MemAvailable in /proc/meminfo; psutil or sysconf
elsewhere), what the process's cgroup still allows (containers), and what its address-space limit
(`ulimit -v`) leaves. NEURALFRAME_MEMORY_LIMIT (bytes, or with a unit: 512M, 2G) replaces it, for tests
and for users who want a lower ceiling. Where nothing can be read, nothing is refused.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from neuralframe.errors import InputError

LIMIT_ENV = "NEURALFRAME_MEMORY_LIMIT"
# What one pipeline node holds per pixel while it works on a frame, on average: two float32 RGBA images
# (a renderer's colour, alpha and depth and its uint8 conversion; a matte and its composite; an encoder's
# YUV copies count less, a source's nothing): on the safe side of what renders and streams take, without
# refusing frames that would fit.
WORK_BYTES_PER_PIXEL = 32
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_NO_LIMIT = 1 << 60  # cgroup v1 writes "no limit" as a number near 2**63


def parse_bytes(text: str) -> int:
    """'1048576', '512M', '2G', '1.5GB' -> bytes (binary units)."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([kmgt]?)i?b?\s*", text.lower())
    if not match:
        raise InputError(f"{LIMIT_ENV}='{text}' is not a size (bytes, or a number with K, M, G or T, e.g. 2G)")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def human(nbytes: float) -> str:
    """A size as people read it: '512 MB', '1.5 GB', '2.4 TB' (binary units)."""
    for unit, scale in (("TB", 1 << 40), ("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if nbytes >= scale:
            value = nbytes / scale
            return f"{value:.0f} {unit}" if value >= 100 else f"{value:.1f} {unit}"
    return f"{int(nbytes)} bytes"


def _read(path: Path | str) -> str | None:
    try:
        return Path(path).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _system_available() -> int | None:
    text = _read("/proc/meminfo")
    if text:
        for line in text.splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    try:
        import psutil  # optional: only where it is installed
    except ImportError:
        psutil = None
    if psutil is not None:
        return int(psutil.virtual_memory().available)
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_left() -> int | None:
    """What the process's cgroup (v2 or v1) still allows, page cache it can reclaim counted as free."""
    groups = _read("/proc/self/cgroup") or ""
    lefts = []
    for line in groups.splitlines():
        _, controllers, rel = line.split(":", 2)
        if controllers == "":
            folder, files = Path("/sys/fs/cgroup") / rel.lstrip("/"), ("memory.max", "memory.current")
        elif "memory" in controllers.split(","):
            folder = Path("/sys/fs/cgroup/memory") / rel.lstrip("/")
            files = ("memory.limit_in_bytes", "memory.usage_in_bytes")
        else:
            continue
        limit, used = (_read(folder / f) for f in files)
        if not limit or not used or not limit.isdigit() or not used.isdigit() or int(limit) >= _NO_LIMIT:
            continue
        stat = _read(folder / "memory.stat") or ""
        cache = re.search(r"^(?:total_)?inactive_file (\d+)$", stat, re.M)
        lefts.append(max(0, int(limit) - int(used) + (int(cache.group(1)) if cache else 0)))
    return min(lefts) if lefts else None


def _address_space_left() -> int | None:
    """What `ulimit -v` leaves this process, if one is set."""
    try:
        import resource
    except ImportError:
        return None
    soft = resource.getrlimit(resource.RLIMIT_AS)[0]
    statm = _read("/proc/self/statm")
    if soft == resource.RLIM_INFINITY or not statm:
        return None
    return max(0, soft - int(statm.split()[0]) * os.sysconf("SC_PAGE_SIZE"))


def available() -> int | None:
    """Bytes this process may still allocate (see the module docstring); None when nothing says."""
    override = os.environ.get(LIMIT_ENV, "").strip()
    if override:
        return parse_bytes(override)
    known = [v for v in (_system_available(), _cgroup_left(), _address_space_left()) if v is not None]
    return min(known) if known else None


def check_allocation(nbytes: int, what: str, advice: str, have: int | None = None) -> None:
    """An InputError (one line: what, the memory it needs, the memory available, what to do) when `nbytes`
    will not fit in `have` (default: `available()`). Call it before allocating, with an estimate of the
    peak the allocation leads to."""
    have = available() if have is None else have
    if have is not None and nbytes > have:
        raise InputError(f"{what}: about {human(nbytes)} of memory needed, {human(have)} available; {advice}")


def pipeline_bytes(width: int, height: int, nodes: int, queued: int, channels: int = 3) -> int:
    """The memory frames of `width` x `height` take in a frame pipeline: `queued` uint8 frames waiting on its
    edges and `nodes` (source, stages, sink) each working on one (`WORK_BYTES_PER_PIXEL`)."""
    return int(width) * int(height) * (channels * queued + nodes * WORK_BYTES_PER_PIXEL)


def image_pixels(source) -> int | None:
    """The pixel count an image file's header declares (a path or a binary file object; PIL reads no
    pixels), or None when PIL cannot tell: a check to make before an image is decoded."""
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as im:
                return int(im.size[0]) * int(im.size[1])
    except Image.DecompressionBombError as error:  # PIL's own ceiling: the count is in its message
        found = re.search(r"\((\d+) pixels\)", str(error))
        return int(found.group(1)) if found else None
    except Exception:  # not an image PIL knows: the decoder that follows says what is wrong
        return None
    finally:
        if hasattr(source, "seek"):
            source.seek(0)


def check_image(source, what: str, bytes_per_pixel: int, advice: str = "use a smaller image") -> None:
    """`check_allocation` for decoding the image at `source` into `bytes_per_pixel` bytes a pixel."""
    pixels = image_pixels(source)
    if pixels is not None:
        check_allocation(pixels * bytes_per_pixel, what, advice)
