"""Renderers: Gaussian splats (`neuralframe.render.splat`) and, later, hash-grid NeRFs.

Shared types: `Camera` (OpenCV pinhole camera, `neuralframe.render.camera`) and `RenderOutput`
(`neuralframe.render.output`). Importing this package is cheap: `Camera` (which needs torch) and the
renderers load on first attribute access.
"""

from __future__ import annotations

import importlib

__all__ = ["Camera", "RenderOutput", "camera", "output", "splat", "nerf"]

_LAZY = {
    "Camera": ("neuralframe.render.camera", "Camera"),
    "RenderOutput": ("neuralframe.render.output", "RenderOutput"),
}


def __getattr__(name: str):
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    if name in ("camera", "output", "splat", "nerf"):
        return importlib.import_module(f"neuralframe.render.{name}")
    raise AttributeError(f"module 'neuralframe.render' has no attribute {name!r}")
