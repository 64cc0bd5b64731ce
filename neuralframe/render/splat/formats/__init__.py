"""Scene file formats, chosen by extension (and by content where an extension is shared).

Each format is a module with `read(data: bytes, name) -> Gaussians` and, where it writes,
`encode(gaussians, name, **options) -> bytes`; a format stored as a folder (`folder=True`) reads from its
path instead of bytes. `load` and `save` are the only entry points the rest of the project uses:

    g = load("scene.spz")            # InputError naming the file and the problem on bad input
    save(g, "scene.ply")             # written under a temporary name, then renamed: no partial files

Sizes are checked against the file and the memory available before anything is allocated, and
decompression is bounded (`common.check_count`, `common.check_memory`, `common.need`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from neuralframe.backend.memory import check_allocation
from neuralframe.errors import InputError
from neuralframe.render.splat.gaussians import Gaussians

MAX_FILE_BYTES = 16 * 1024**3  # a scene file larger than this is refused before it is read


@dataclass(frozen=True)
class Format:
    """One scene format: its name, the extensions that pick it, the module that reads/writes it."""

    name: str
    suffixes: tuple[str, ...]
    module: str
    writes: bool = True
    folder: bool = False
    description: str = ""
    sniff_as: str | None = None  # files of this format may carry that format's extension; `detect(data)` tells


    def impl(self):
        return importlib.import_module(f"neuralframe.render.splat.formats.{self.module}")


# longest suffix first: ".compressed.ply" must win over ".ply"
FORMATS: tuple[Format, ...] = (
    Format("ply", (".ply",), "ply", description="INRIA 3DGS binary PLY (lossless)"),
    Format("splat", (".splat",), "splat", description="the web .splat, 32 bytes a Gaussian, colour only"),
    Format("spz", (".spz",), "spz", description="Niantic .spz, versions 2-4 (quantised; writes 4)"),
    Format("compressed-ply", (".compressed.ply",), "compressed_ply", sniff_as="ply",
           description="PlayCanvas chunked, quantised PLY (SuperSplat, splat-transform)"),
    Format("ksplat", (".ksplat",), "ksplat", writes=False,
           description="GaussianSplats3D .ksplat (compression levels 0-2), read only"),
    Format("sog", (".sog", "meta.json"), "sog", folder=True,
           description="PlayCanvas SOG: a .sog zip, or a folder/its meta.json, of WebP images (quantised)"),
    Format("gltf", (".glb", ".gltf"), "gltf",
           description="glTF 2.0 with KHR_gaussian_splatting (float32, lossless; reads its SPZ compression)"),
)


def suffixes() -> tuple[str, ...]:
    return tuple(s for f in FORMATS for s in f.suffixes)


def format_for(path: Path, writing: bool = False) -> Format:
    """The format a path names, by its (possibly double) extension; an InputError for an unknown one."""
    name = path.name.lower()
    if path.is_dir():  # a folder-form scene: the folder holding its named file (a SOG folder's meta.json)
        for fmt in FORMATS:
            if fmt.folder and any(not s.startswith(".") and (path / s).is_file() for s in fmt.suffixes):
                return fmt
    for fmt in sorted(FORMATS, key=lambda f: -max(len(s) for s in f.suffixes)):
        if any(name.endswith(s) for s in fmt.suffixes) and (fmt.writes or not writing):
            return fmt
    known = [s for f in FORMATS if f.writes or not writing for s in f.suffixes]
    raise InputError(f"{path}: unknown scene format '{path.suffix or '(none)'}' (use {', '.join(known)})")


def sniff(data: bytes, fmt: Format) -> Format:
    """The format a file's content says it is where formats share an extension (a chunked PlayCanvas PLY
    named .ply); `fmt` otherwise."""
    for other in FORMATS:
        if other.sniff_as == fmt.name and other.impl().detect(data):
            return other
    return fmt


def load(path, finite: bool = True) -> Gaussians:
    """Load a scene from any format in `FORMATS` (chosen by extension, then by content). With
    `finite=False` NaN and infinite values are kept (for `neuralframe convert --filter-nan` to drop)."""
    path = Path(path)
    fmt = format_for(path)
    if not path.exists():
        raise InputError(f"{path}: scene file not found")
    if fmt.folder and path.is_dir():
        g = fmt.impl().read_path(path, str(path))
    else:
        if not path.is_file():
            raise InputError(f"{path}: not a file")
        size = path.stat().st_size
        if size == 0:
            raise InputError(f"{path}: the file is empty")
        if size > MAX_FILE_BYTES:
            raise InputError(f"{path}: {size / 1024**3:.1f} GB is larger than any scene this reads "
                             f"({MAX_FILE_BYTES / 1024**3:.0f} GB)")
        check_allocation(size, f"{path}: reading the file", "free some memory, or use a machine with more")
        with open(path, "rb") as f:
            fmt = sniff(f.read(1 << 16), fmt)  # formats that share an extension tell from the header
        impl = fmt.impl()
        if hasattr(impl, "read_file"):  # reads the body block by block: the file is never held whole
            g = impl.read_file(path, str(path))
        else:
            g = impl.read(path.read_bytes(), str(path))
    if finite:
        g.check_finite(str(path))
    return g


def save(gaussians: Gaussians, path, **options) -> Path:
    """Write a scene in the format its extension names; returns the path. `options` go to the format's
    encoder (e.g. `version=` for .spz)."""
    from neuralframe.render.splat.formats.common import write_atomic

    path = Path(path)
    fmt = format_for(path, writing=True)
    gaussians.check_finite("scene to save")
    impl = fmt.impl()
    if fmt.folder and hasattr(impl, "write_path"):
        return impl.write_path(gaussians.detach().cpu(), path, **options)
    write_atomic(path, impl.encode(gaussians.detach().cpu(), str(path), **options))
    return path


def version_of(path) -> int | str | None:
    """The format version a scene file declares (None for formats without one): a format module may
    define `version(data: bytes)` or, for a folder format, `version_path(path)`."""
    path = Path(path)
    fmt = format_for(path)
    impl = fmt.impl()
    if path.is_dir():
        return impl.version_path(path) if hasattr(impl, "version_path") else None
    if not hasattr(impl, "version"):
        return None
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    return impl.version(head)

