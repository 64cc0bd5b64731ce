"""What every scene format shares: atomic writes, the Gaussians from numpy columns, logit/sigmoid, rounding
to bytes, and size checks made before anything is allocated or inflated."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from neuralframe.errors import InputError, OutputError
from neuralframe.render.splat.gaussians import Gaussians, sh_degree_for

MAX_GAUSSIANS = 64 * 1024 * 1024  # a count beyond this is a lying header, not a scene (Spark's budget is 16M)


def check_count(n: int, name: str, limit: int = MAX_GAUSSIANS) -> int:
    """A Gaussian count read from a header, checked before anything is allocated for it."""
    if n < 0 or n > limit:
        raise InputError(f"{name}: the header declares {n:,} Gaussians (at most {limit:,} are read)")
    return n


def need(data: bytes | memoryview, size: int, name: str, what: str) -> None:
    """An InputError unless `data` holds at least `size` bytes for `what`."""
    if len(data) < size:
        raise InputError(f"{name}: truncated: {what} needs {size:,} bytes, the file has {len(data):,}")


def write_atomic(path: Path, blob: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise OutputError(f"{path}: cannot write ({error.strerror or error})") from error
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a scene file is an ordinary shared file
        os.replace(tmp, path)
    except BaseException as error:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(error, OSError):
            raise OutputError(f"{path}: cannot write ({error.strerror or error})") from error
        raise


def gaussians(means, quats, scales, logits, sh, antialiased=False) -> Gaussians:
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    return Gaussians(t(means), t(quats), t(scales), t(logits), t(sh), antialiased=antialiased)


def logit(p: np.ndarray) -> np.ndarray:
    p = p.astype(np.float64)
    return np.log(p / (1.0 - p))


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x.astype(np.float64)))


def sh_degree_or_error(k: int, name: str) -> int:
    try:
        return sh_degree_for(k)
    except InputError as error:
        raise InputError(f"{name}: {error}") from None


def u8(x: np.ndarray) -> np.ndarray:
    """Round half away from zero and clamp to 0..255 (as C's std::round would)."""
    return np.clip(np.floor(x + 0.5), 0, 255).astype(np.uint8)
