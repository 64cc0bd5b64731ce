"""What every scene format shares: atomic writes, the Gaussians from numpy columns, logit/sigmoid, rounding
to bytes, and size checks made before anything is allocated or inflated."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from neuralframe.backend.memory import check_allocation
from neuralframe.errors import InputError, OutputError
from neuralframe.render.splat.gaussians import Gaussians, sh_degree_for

MAX_GAUSSIANS = 64 * 1024 * 1024  # a count beyond this is a lying header, not a scene (Spark's budget is 16M)
# A reader's peak per float32 value of the Gaussians it makes: the float64 working copies and the result.
_DECODE_COPIES = 3


def scene_bytes(n: int, sh_degree: int = 0) -> int:
    """The memory reading `n` Gaussians of `sh_degree` takes at its peak (means 3, quats 4, scales 3,
    opacity 1 and 3 per SH coefficient, float32, times `_DECODE_COPIES`)."""
    return n * 4 * (11 + 3 * (sh_degree + 1) ** 2) * _DECODE_COPIES


def check_count(n: int, name: str, limit: int = MAX_GAUSSIANS, sh_degree: int | None = 0) -> int:
    """A Gaussian count read from a header, checked before anything is allocated for it: against `limit`,
    then against the memory available for `n` Gaussians of `sh_degree` (`check_memory`; None: the caller
    checks the memory itself later, after its own checks of the count against the file)."""
    if n < 0 or n > limit:
        raise InputError(f"{name}: the header declares {n:,} Gaussians (at most {limit:,} are read)")
    if sh_degree is not None:
        check_memory(n, name, sh_degree)
    return n


def check_memory(n: int, name: str, sh_degree: int = 0) -> None:
    """An InputError when reading `n` Gaussians of `sh_degree` will not fit in memory (`backend.memory`)."""
    check_allocation(scene_bytes(n, min(max(sh_degree, 0), 3)), f"{name}: {n:,} Gaussians",
                     "free some memory, or open the scene on a machine with more")


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
