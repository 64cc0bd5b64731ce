"""Markers for the render tests: `cuda` tests skip without a CUDA GPU and gsplat."""

import pytest


def _has_cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # pragma: no cover
        return False


def pytest_collection_modifyitems(config, items):
    if _has_cuda():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords and str(item.fspath).startswith(str(config.rootpath / "tests" / "render")):
            item.add_marker(skip)
