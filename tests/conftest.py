"""Shared test setup: markers defined once, caches kept out of the home folder, no hub access."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))
os.environ.setdefault("HF_HOME", str(ROOT / ".cache" / "hf"))
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(Path(tempfile.gettempdir()) / "nf-inductor"))
# a local Ray in the tests: no token authentication, its session folders inside the work tree
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("NEURALFRAME_RAY_TMPDIR", str(ROOT / ".cache" / "ray") if len(str(ROOT)) <= 22
                      else tempfile.gettempdir())


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        return False


def pytest_collection_modifyitems(config, items):
    skip_cuda = pytest.mark.skip(reason="needs a CUDA GPU")
    skip_display = pytest.mark.skip(reason="needs a display (run under xvfb-run)")
    cuda = _has_cuda()
    display = bool(os.environ.get("DISPLAY"))
    for item in items:
        if "cuda" in item.keywords and not cuda:
            item.add_marker(skip_cuda)
        if "display" in item.keywords and not display:
            item.add_marker(skip_display)
