"""Splat hierarchies cached on disk, keyed by the scene's content.

    tree = load_or_build(gaussians, source=Path("scene.ply"))    # built once, loaded in well under a second after

The cache folder is `$XDG_CACHE_HOME/neuralframe/lod` (default `~/.cache/neuralframe/lod`), as the ONNX and
TensorRT caches pick theirs (`neuralframe.export.engines`); `cache_dir` overrides it. A tree is one
uncompressed .npz named after the scene and a key: sha256 over `VERSION` and the CRC-32s of the scene file's
bytes in 8 MB chunks (or, for a scene with no file, of its arrays' bytes), computed on two threads at memory
speed. Writes go to a temporary name in the same folder, then are renamed over the target, so a reader never
sees half a file. Loading maps the file's arrays (no copy) and checks what a damaged or foreign file would
break: every member's CRC, the version, the key, the scene's size, and a node table whose indices are all in
range with each node the child of one node before it (`hierarchy_build.table_ok`); a file that fails is
rebuilt and replaced, not an error. A folder that cannot be written leaves the tree uncached (`say` is told).
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import uuid
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np

from neuralframe.render import interrupt
from neuralframe.render.splat.gaussians import Gaussians
from neuralframe.render.splat.hierarchy import ARRAYS, PARAMS, VERSION, Hierarchy, build

CHUNK = 8 << 20  # bytes per CRC


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "neuralframe" / "lod"


def _digest(buffers: list, head: bytes) -> str:
    """A fingerprint of `head` and the buffers: sha256 over the CRC-32 of each CHUNK (zlib's CRC runs at
    memory speed and releases the GIL: chunks go through two threads), with their lengths."""
    views = [memoryview(b).cast("B") for b in buffers]
    parts = [v[i: i + CHUNK] for v in views for i in range(0, len(v), CHUNK)]
    try:
        sums = []
        with ThreadPoolExecutor(max_workers=2) as pool:
            for start in range(0, len(parts), 16):
                interrupt.check()
                sums += list(pool.map(zlib.crc32, parts[start: start + 16]))
        outer = hashlib.sha256(head)
        for part, s in zip(parts, sums):
            outer.update(len(part).to_bytes(8, "little") + s.to_bytes(4, "little"))
        return outer.hexdigest()[:20]
    finally:  # a memory map closes only once no view of it is left
        for v in parts + views:
            v.release()


def content_key(gaussians: Gaussians, source: str | os.PathLike | None = None) -> str:
    """The cache key: the algorithm's version and the scene file's bytes, or the scene's arrays."""
    head = f"neuralframe-lod-{VERSION}".encode()
    if source is not None:
        with open(source, "rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                return _digest([], head + b"file")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as view:
                return _digest([view], head + b"file")
    arrays = [np.ascontiguousarray(t.detach().cpu().numpy()) for t in gaussians.tensors().values()]
    shapes = json.dumps([list(a.shape) + [str(a.dtype)] for a in arrays]).encode()
    return _digest(arrays, head + b"arrays" + shapes)


def cache_path(gaussians: Gaussians, source: str | os.PathLike | None = None,
               cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the tree of this scene is (or would be) cached."""
    stem = Path(source).name.split(".")[0] if source is not None else "scene"
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return folder / f"{stem}-{content_key(gaussians, source)}.npz"


def save(tree: Hierarchy, path: str | os.PathLike) -> None:
    """Write `tree` to `path` atomically (a temporary file in the same folder, then a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"version": VERSION, "leaves": tree.n_leaves, "sh": int(tree.leaves.sh.shape[1]), "key": path.stem}
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), **tree.arrays())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load(path: str | os.PathLike, gaussians: Gaussians) -> Hierarchy | None:
    """The tree cached at `path` for the scene `gaussians`, or None when the file is missing, damaged, of
    another version or of another scene."""
    try:
        arrays = _read(path)
        meta = json.loads(arrays.pop("meta").tobytes())
        if (meta.get("version") != VERSION or meta.get("leaves") != gaussians.n
                or meta.get("sh") != gaussians.sh.shape[1] or meta.get("key") != Path(path).stem):
            return None
        if not _consistent(arrays, gaussians.n, int(gaussians.sh.shape[1])):
            return None
        return Hierarchy(gaussians.detach(), arrays.pop("nodes"), **arrays)
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile, UnicodeDecodeError,
            AttributeError):
        return None


def _consistent(arrays: dict, n: int, k: int) -> bool:
    """Every array present with its dtype and shape, and a node table `layout` could have made."""
    from neuralframe.render.splat.hierarchy_build import NODE, table_ok

    if set(arrays) != {"nodes", *ARRAYS}:
        return False
    nodes = arrays["nodes"]
    if nodes.dtype != NODE or nodes.ndim != 1:
        return False
    m = int(arrays["params"].shape[0]) if arrays["params"].ndim == 2 else -1
    for name, (dtype, shape) in ARRAYS.items():
        a = arrays[name]
        if a.dtype != dtype or a.shape != (m, *(PARAMS + 3 * k if d == "P" else d for d in shape)):
            return False
    return bool(table_ok(nodes, n, m))


def _read(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The arrays of an uncompressed .npz, memory-mapped (read-only), each member checked against its CRC."""
    arrays, spans = {}, []
    with open(path, "rb") as f, zipfile.ZipFile(f) as z:
        view = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        for info in z.infolist():
            if info.compress_type != zipfile.ZIP_STORED or not info.filename.endswith(".npy"):
                raise ValueError(f"{info.filename}: not an uncompressed array")
            local = view[info.header_offset: info.header_offset + 30]
            if len(local) != 30 or local[:4] != b"PK\x03\x04":
                raise ValueError("damaged zip header")
            start = info.header_offset + 30 + int.from_bytes(local[26:28], "little") + int.from_bytes(local[28:30],
                                                                                                          "little")
            f.seek(start)
            version = np.lib.format.read_magic(f)
            header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            if version not in header:
                raise ValueError(f"{info.filename}: .npy version {version}")
            shape, fortran, dtype = header[version](f)
            offset = f.tell()
            count = int(np.prod(shape, dtype=np.int64))
            if fortran or dtype.hasobject or offset + count * dtype.itemsize != start + info.file_size:
                raise ValueError(f"{info.filename}: not a C-ordered array of its stated size")
            arrays[info.filename[:-4]] = np.frombuffer(view, dtype, count, offset).reshape(shape)
            spans.append((start, info.file_size, info.CRC))
    with ThreadPoolExecutor(max_workers=2) as pool:  # zlib releases the GIL
        crcs = list(pool.map(lambda s: zlib.crc32(memoryview(view)[s[0]: s[0] + s[1]]), spans))
    if any(crc != s[2] for crc, s in zip(crcs, spans)):
        raise ValueError("CRC mismatch")
    return arrays


def load_or_build(gaussians: Gaussians, source: str | os.PathLike | None = None,
                  cache_dir: str | os.PathLike | None = None, progress: Callable[[float], None] | None = None,
                  say: Callable[[str], None] | None = None) -> Hierarchy:
    """The scene's hierarchy: loaded from the cache, or built (interruptibly) and cached.

    Args:
        gaussians: the scene.
        source: the scene's file (its bytes key the cache); None: the arrays do.
        cache_dir: the cache folder (default: `default_cache_dir()`).
        progress: called with the fraction of the build done (1.0 at once when the cache had the tree).
        say: told about a damaged cache file or a folder that cannot be written.
    """
    tell = say or (lambda message: None)
    path = cache_path(gaussians, source, cache_dir)
    if path.is_file():
        tree = load(path, gaussians)
        if tree is not None:
            if progress is not None:
                progress(1.0)
            return tree
        tell(f"{path}: the cached level-of-detail tree is damaged or out of date: rebuilding it")
    tree = build(gaussians, progress)
    try:
        save(tree, path)
    except OSError as error:
        tell(f"{path.parent}: the level-of-detail tree cannot be cached ({error.strerror or error}); set "
             "XDG_CACHE_HOME to a writable folder")
    return tree
