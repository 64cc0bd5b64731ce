"""PlayCanvas SOG ("Spatially Ordered Gaussians", meta.json version 2, what splat-transform 2.x writes).

A SOG scene is a `meta.json` and lossless WebP images whose texels are the Gaussians in Morton order (the
first `count` texels, row by row; images are about sqrt(count) wide). It comes as a `.sog` zip bundle
(entries stored, not deflated) or as a folder holding the same files; `load` takes the `.sog`, the folder
or its `meta.json`. Axes are the INRIA .ply ones (no conversion). The images (RGBA bytes):

- `means_l.webp`, `means_u.webp`: the low and high bytes of 16-bit x, y, z. Each axis is stored as
  t = sign(x) ln(1 + |x|), spread linearly over meta `means.mins..maxs` (which are in t).
- `quats.webp`: the three smaller quaternion components times sqrt(2), in 0..255 for -1..1, alpha
  252 + the index (w, x, y, z) of the largest one, which is rebuilt as positive.
- `scales.webp`: per-axis indices into meta `scales.codebook` (256 log scales); `sh0.webp`: indices
  into `sh0.codebook` (256 DC coefficients) and, in alpha, the opacity sigmoid(logit) * 255.
- `shN_labels.webp` (a 16-bit palette index in R, G) and `shN_centroids.webp` (each palette entry
  `(degree+1)^2 - 1` texels wide, 64 entries a row, RGB indices into `shN.codebook`): the higher-order SH.

What is lossy, and by how much (the round-trip tests hold these bounds):
- positions: 16 bits in the log domain: |dx| <= (1 + |x|) (exp(dt / 2) - 1), dt = (maxs - mins) / 65535
  (about 4e-4 at |x| = 10 for a scene 20 units across);
- rotations: 8 bits on the three smaller components: each within 1 / (255 sqrt(2)) ~ 0.0028 after
  normalising (under 1.2 degrees of rotation, the worst case being four components near 0.5);
- log scales, DC colour: nearest of 256 entries from a 1-D k-means: error <= half the gap between adjacent
  entries (~0.01 to 0.05 in log scale over the dense range, more in sparse tails);
- opacity: 8 bits of sigmoid: |d opacity| <= 1/510 (logits near 0 or 1 move further);
- SH degree 1-3: one of <= 65,536 palette vectors from k-means over whole SH vectors (`sog_quant.palette`),
  their values again through a 256-entry codebook: the largest loss (the procedural SH-3 test scene
  renders at ~40 dB against its source, ~55 dB at SH 0; splat-transform's palette does the same within
  0.5 dB).

The reader checks meta.json's types and sizes, every image's size against `count` before decoding it,
refuses zip entries that declare more bytes than `count` could need and reads each with that limit, and
refuses file names that leave the folder. Legacy SOG (no meta `version`) is refused with a message.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np

from neuralframe.errors import InputError, OutputError
from neuralframe.render.splat.formats.common import (
    check_count,
    gaussians,
    sigmoid,
    u8,
    write_atomic,
)
from neuralframe.render.splat.formats.sog_quant import (
    codebook_1d,
    morton_order,
    palette,
    palette_size,
)
from neuralframe.render.splat.gaussians import Gaussians, sh_coeffs

VERSION = 2
MAX_META_BYTES = 16 * 1024**2
MAX_PALETTE = 65536  # labels are 16-bit
FILES = ("means_l.webp", "means_u.webp", "quats.webp", "scales.webp", "sh0.webp", "shN_centroids.webp",
         "shN_labels.webp")
_SQRT2 = math.sqrt(2.0)
_OTHERS = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])  # the stored components per largest one


# ---- reading ----

def read(data: bytes, name: str) -> Gaussians:
    """A `.sog` bundle's bytes, or a meta.json's bytes (its images read from beside `name`)."""
    if data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return _read_bundle(data, name)
    if data.lstrip()[:1] == b"{":
        return _decode(_meta(data, name), _folder_fetch(Path(name).parent, name), name)
    raise InputError(f"{name}: not a SOG scene (neither a .sog zip bundle nor a meta.json)")


def read_path(path: Path, name: str) -> Gaussians:
    """A SOG folder, or the meta.json in it."""
    path = Path(path)
    meta_path = path / "meta.json" if path.is_dir() else path
    if not meta_path.is_file():
        raise InputError(f"{name}: no meta.json in the SOG folder")
    if meta_path.stat().st_size > MAX_META_BYTES:
        raise InputError(f"{meta_path}: {meta_path.stat().st_size:,} bytes is too large for a SOG meta.json")
    return read(meta_path.read_bytes(), str(meta_path))


def _read_bundle(data: bytes, name: str) -> Gaussians:
    try:
        bundle = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError) as error:
        raise InputError(f"{name}: not a valid .sog zip bundle ({error})") from None
    with bundle:
        entries = {info.filename: info for info in bundle.infolist()}

        def fetch(file: str, limit: int, what: str) -> bytes:
            info = entries.get(file)
            if info is None:
                raise InputError(f"{name}: the bundle has no {file} ({what})")
            if info.file_size > limit:
                raise InputError(f"{name}: {file} declares {info.file_size:,} bytes, more than {what} can "
                                 f"need ({limit:,})")
            try:
                with bundle.open(info) as f:
                    blob = f.read(limit + 1)
            except (zipfile.BadZipFile, NotImplementedError, RuntimeError, ValueError, OSError, EOFError) as e:
                raise InputError(f"{name}: cannot read {file} from the bundle ({e})") from None
            if len(blob) > limit:
                raise InputError(f"{name}: {file} inflates past the {limit:,} bytes {what} can need")
            return blob

        return _decode(_meta(fetch("meta.json", MAX_META_BYTES, "meta.json"), name), fetch, name)


def _folder_fetch(folder: Path, name: str):
    def fetch(file: str, limit: int, what: str) -> bytes:
        path = folder / file
        if not path.is_file():
            raise InputError(f"{name}: {path} ({what}) is missing")
        size = path.stat().st_size
        if size > limit:
            raise InputError(f"{path}: {size:,} bytes, more than {what} can need ({limit:,})")
        return path.read_bytes()
    return fetch


def _meta(blob: bytes, name: str) -> dict:
    try:
        meta = json.loads(blob.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise InputError(f"{name}: meta.json is not valid JSON ({error})") from None
    if not isinstance(meta, dict):
        raise InputError(f"{name}: meta.json is not a JSON object")
    if "version" not in meta:
        raise InputError(f"{name}: legacy SOG (meta.json without a version) is not supported; convert it "
                         "with a current splat-transform")
    if meta["version"] != VERSION:
        raise InputError(f"{name}: SOG version {meta['version']!r} is not supported (version {VERSION} is)")
    return meta


def _field(meta: dict, path: str, name: str, kind: str, size: tuple[int, int] | None = None):
    """meta[a][b] checked: kind "int", "numbers" (finite, `size` bounds the length) or "files"."""
    value = meta
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            raise InputError(f"{name}: meta.json has no {path}")
        value = value[key]
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"{name}: meta.json {path} is not an integer ({value!r:.40})")
        return value
    lo, hi = size or (1, 256)
    if not isinstance(value, list) or not lo <= len(value) <= hi:
        raise InputError(f"{name}: meta.json {path} is not a list of {lo} to {hi} entries")
    if kind == "files":
        for file in value:
            parts = PurePosixPath(file).parts if isinstance(file, str) else ()
            if not parts or file.startswith("/") or "\\" in file or ".." in parts:
                raise InputError(f"{name}: meta.json {path} names {file!r:.60}, not a file in the scene")
        return value
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise InputError(f"{name}: meta.json {path} holds something other than numbers")
    array = np.array(value, np.float64)
    if not np.isfinite(array).all() or np.abs(array).max() > 1e30:
        raise InputError(f"{name}: meta.json {path} holds NaN, infinite or absurd values")
    return array


def _image(fetch, file: str, name: str, what: str, min_pixels: int, max_pixels: int,
           width: int | None = None) -> np.ndarray:
    """The RGBA texels of a lossless WebP [H, W, 4], its size checked before it is decoded."""
    from PIL import Image

    blob = fetch(file, 8 * max_pixels + (1 << 20), what)
    if not _lossless(blob):
        raise InputError(f"{name}: {file} ({what}) is not a lossless WebP image")
    try:
        with Image.open(io.BytesIO(blob), formats=["WEBP"]) as im:
            w, h = im.size
            if w * h < min_pixels or w * h > max_pixels or (width is not None and w != width):
                want = f"{width} wide, " if width is not None else ""
                raise InputError(f"{name}: {file} ({what}) is {w}x{h}, which does not fit meta.json (want "
                                 f"{want}{min_pixels:,} to {max_pixels:,} texels)")
            pixels = np.asarray(im.convert("RGBA"))
    except InputError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as error:
        raise InputError(f"{name}: cannot decode {file} ({what}): {error}") from None
    return pixels


def _lossless(blob: bytes) -> bool:
    """Whether a RIFF/WebP blob holds a lossless (VP8L) bitstream."""
    if blob[:4] != b"RIFF" or blob[8:12] != b"WEBP":
        return False
    at = 12
    while at + 8 <= len(blob):
        fourcc, size = blob[at:at + 4], int.from_bytes(blob[at + 4:at + 8], "little")
        if fourcc == b"VP8L":
            return True
        if fourcc == b"VP8 ":
            return False
        at += 8 + size + (size & 1)
    return False


def _texels(fetch, file, name, what, count) -> np.ndarray:
    """The first `count` texels [count, 4] of one of the per-Gaussian images."""
    return _image(fetch, file, name, what, count, 4 * count + 65536).reshape(-1, 4)[:count]


def _lookup(book: np.ndarray, index: np.ndarray, name: str, what: str) -> np.ndarray:
    if index.size and int(index.max()) >= len(book):
        raise InputError(f"{name}: {what} index {int(index.max())} is past its {len(book)}-entry codebook")
    return book[index]


def _decode(meta: dict, fetch, name: str) -> Gaussians:
    bands = meta["shN"].get("bands") if isinstance(meta.get("shN"), dict) else 0
    count = check_count(_field(meta, "count", name, "int"), name,  # and the memory, before any image is decoded
                        sh_degree=bands if type(bands) is int else 0)
    if count == 0:
        raise InputError(f"{name}: the SOG scene has no Gaussians")
    mins = _field(meta, "means.mins", name, "numbers", (3, 3))
    maxs = _field(meta, "means.maxs", name, "numbers", (3, 3))
    mfiles = _field(meta, "means.files", name, "files", (2, 2))
    lo = _texels(fetch, mfiles[0], name, "positions, low bytes", count)[:, :3].astype(np.uint32)
    hi = _texels(fetch, mfiles[1], name, "positions, high bytes", count)[:, :3].astype(np.uint32)
    span = np.where(maxs - mins != 0, maxs - mins, 1.0)
    t = mins + span * ((lo | (hi << 8)) / 65535.0)
    means = np.sign(t) * np.expm1(np.abs(t))
    del lo, hi, t

    q = _texels(fetch, _field(meta, "quats.files", name, "files", (1, 1))[0], name, "rotations", count)
    quats = np.zeros((count, 4))
    quats[:, 0] = 1.0  # an unknown tag is the identity, as splat-transform reads it
    small = (q[:, :3] / 255.0 * 2.0 - 1.0) / _SQRT2
    for largest in range(4):
        sel = q[:, 3] == 252 + largest
        rows = small[sel]
        part = np.zeros((len(rows), 4))
        part[:, _OTHERS[largest]] = rows
        part[:, largest] = np.sqrt(np.maximum(0.0, 1.0 - (rows * rows).sum(axis=1)))
        quats[sel] = part
    del q, small

    book = _field(meta, "scales.codebook", name, "numbers")
    s = _texels(fetch, _field(meta, "scales.files", name, "files", (1, 1))[0], name, "scales", count)
    scales = _lookup(book, s[:, :3], name, "scale")
    book = _field(meta, "sh0.codebook", name, "numbers")
    c = _texels(fetch, _field(meta, "sh0.files", name, "files", (1, 1))[0], name, "colours", count)
    dc = _lookup(book, c[:, :3], name, "colour")
    alpha = np.clip(c[:, 3] / 255.0, 1e-6, 1.0 - 1e-6)
    logits = np.log(alpha / (1.0 - alpha))
    del s, c

    sh = dc[:, None, :]
    if meta.get("shN") is not None:
        bands = _field(meta, "shN.bands", name, "int")
        if not 1 <= bands <= 3:
            raise InputError(f"{name}: meta.json shN.bands is {bands} (1 to 3)")
        entries = _field(meta, "shN.count", name, "int")
        if not 1 <= entries <= MAX_PALETTE:
            raise InputError(f"{name}: meta.json shN.count is {entries:,} (1 to {MAX_PALETTE:,})")
        rest = sh_coeffs(bands) - 1
        book = _field(meta, "shN.codebook", name, "numbers")
        files = _field(meta, "shN.files", name, "files", (2, 2))
        cen = _image(fetch, files[0], name, "SH palette", 1, 64 * rest * math.ceil(MAX_PALETTE / 64),
                     width=64 * rest)
        cen = cen.reshape(cen.shape[0] * 64, rest, 4)[:, :, :3]
        lab = _texels(fetch, files[1], name, "SH palette labels", count)
        label = lab[:, 0].astype(np.int64) | (lab[:, 1].astype(np.int64) << 8)
        valid = min(entries, len(cen))
        if int(label.max()) >= valid:
            raise InputError(f"{name}: SH palette label {int(label.max()):,} is past the palette's "
                             f"{valid:,} entries")
        used, inverse = np.unique(label, return_inverse=True)
        values = _lookup(book, cen[used], name, "SH palette")  # [used, rest, 3]
        sh = np.concatenate([sh, values[inverse]], axis=1)
    return gaussians(means, quats, scales, logits, sh)


# ---- writing ----

def encode(g: Gaussians, name: str, seed: int = 0) -> bytes:
    """The `.sog` zip bundle of `g` (entries stored: WebP is compressed already)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as bundle:
        for file, blob in _files(g, name, seed).items():
            info = zipfile.ZipInfo(file, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            bundle.writestr(info, blob)
    return out.getvalue()


def write_path(g: Gaussians, path: Path, seed: int = 0) -> Path:
    """Write a `.sog` bundle, or the folder form when `path` is a folder or a name ending in meta.json
    (the folder is built under a temporary name and renamed into place)."""
    path = Path(path)
    if path.name.lower().endswith(".sog") and not path.is_dir():
        write_atomic(path, encode(g, str(path), seed))
        return path
    folder, meta_name = (path, "meta.json") if path.is_dir() else (path.parent, path.name)
    files = _files(g, str(path), seed)
    files[meta_name] = files.pop("meta.json")
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    except OSError as error:
        raise OutputError(f"{path}: cannot write ({error.strerror or error})") from error
    try:
        for file, blob in files.items():
            (tmp / file).write_bytes(blob)
        os.chmod(tmp, 0o755)
        _into_place(tmp, folder, files)
    except OSError as error:
        raise OutputError(f"{path}: cannot write ({error.strerror or error})") from error
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder / meta_name


def _into_place(tmp: Path, folder: Path, files: dict) -> None:
    """A new or empty folder: renamed in whole. One holding only a SOG scene: swapped for the new one.
    One holding other files too: each file replaced (atomically), meta.json last."""
    existing = list(folder.iterdir()) if folder.is_dir() else None
    if not existing:
        if existing is not None:
            folder.rmdir()
        os.rename(tmp, folder)
        return
    ours = set(FILES) | set(files)
    if all(p.is_file() and (p.name in ours or p.name.endswith("meta.json")) for p in existing):
        old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".old", dir=folder.parent))
        os.rename(folder, old / "scene")
        os.rename(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
        return
    *images, meta = files
    for file in [*images, meta]:
        os.replace(tmp / file, folder / file)


def _files(g: Gaussians, name: str, seed: int) -> dict[str, bytes]:
    """meta.json and the WebP images of `g`, texels in Morton order."""
    n = g.n
    if n == 0:
        raise OutputError(f"{name}: a SOG scene needs at least one Gaussian")
    order = morton_order(g.means.numpy())
    means = g.means.numpy().astype(np.float64)[order]
    width = math.ceil(math.sqrt(n) / 4) * 4
    height = math.ceil(n / width / 4) * 4
    files: dict[str, bytes] = {}

    t = np.sign(means) * np.log1p(np.abs(means))
    mins, maxs = t.min(axis=0), t.max(axis=0)
    span = maxs - mins
    v = np.where(span > 0, np.rint((t - mins) / np.where(span > 0, span, 1.0) * 65535.0), 0).astype(np.uint16)
    files["means_l.webp"] = _webp(_texture((v & 0xFF).astype(np.uint8), width, height))
    files["means_u.webp"] = _webp(_texture((v >> 8).astype(np.uint8), width, height))
    del t, v, means

    q = g.quats.numpy().astype(np.float64)[order]
    norm = np.linalg.norm(q, axis=1, keepdims=True)
    q = np.where(norm > 0, q / np.where(norm > 0, norm, 1.0), [1.0, 0.0, 0.0, 0.0])
    largest = np.abs(q).argmax(axis=1)
    q *= np.where(q[np.arange(n), largest] < 0, -1.0, 1.0)[:, None]
    small = np.take_along_axis(q, _OTHERS[largest], axis=1) * _SQRT2
    packed = np.concatenate([u8(255.0 * (small * 0.5 + 0.5)), (252 + largest).astype(np.uint8)[:, None]], axis=1)
    files["quats.webp"] = _webp(_texture(packed, width, height))
    del q, small, packed

    scale_book, scale_idx = codebook_1d(g.scales.numpy()[order])
    files["scales.webp"] = _webp(_texture(scale_idx, width, height))
    sh = g.sh.numpy()[order]
    dc_book, dc_idx = codebook_1d(sh[:, 0, :])
    alpha = u8(sigmoid(g.opacities.numpy()[order]) * 255.0)
    files["sh0.webp"] = _webp(_texture(np.concatenate([dc_idx, alpha[:, None]], axis=1), width, height))

    meta = {
        "version": VERSION, "asset": {"generator": "neuralframe"}, "count": n,
        "means": {"mins": mins.tolist(), "maxs": maxs.tolist(), "files": ["means_l.webp", "means_u.webp"]},
        "scales": {"codebook": scale_book.tolist(), "files": ["scales.webp"]},
        "quats": {"files": ["quats.webp"]},
        "sh0": {"codebook": dc_book.tolist(), "files": ["sh0.webp"]},
    }
    if g.sh_degree > 0:
        rest = sh.shape[1] - 1
        centres, labels = palette(sh[:, 1:, :].reshape(n, rest * 3), palette_size(n), seed)
        entries = len(centres)
        book, idx = codebook_1d(centres)
        rows = math.ceil(entries / 64)
        cen = np.zeros((rows * 64, rest, 4), np.uint8)
        cen[..., 3] = 255
        cen[:entries, :, :3] = idx.reshape(entries, rest, 3)
        files["shN_centroids.webp"] = _webp(cen.reshape(rows, 64 * rest, 4))
        lab = np.stack([labels & 0xFF, labels >> 8, np.zeros(n, np.int64)], axis=1).astype(np.uint8)
        files["shN_labels.webp"] = _webp(_texture(lab, width, height))
        meta["shN"] = {"count": entries, "bands": g.sh_degree, "codebook": book.tolist(),
                       "files": ["shN_centroids.webp", "shN_labels.webp"]}
    files["meta.json"] = json.dumps(meta, separators=(",", ":")).encode()
    return files


def _texture(columns: np.ndarray, width: int, height: int) -> np.ndarray:
    """[H, W, 4] texels: the rows of `columns` ([N, 3 or 4] bytes) in order, alpha 255 where not given."""
    tex = np.zeros((width * height, 4), np.uint8)
    tex[:, 3] = 255
    tex[:len(columns), :columns.shape[1]] = columns
    return tex.reshape(height, width, 4)


def _webp(pixels: np.ndarray) -> bytes:
    """Lossless WebP keeping the colour of transparent texels (they hold data)."""
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels), "RGBA").save(out, "WEBP", lossless=True, exact=True,
                                                                 quality=50, method=2)
    return out.getvalue()
