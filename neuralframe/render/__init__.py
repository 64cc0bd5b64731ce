"""Renderers: Gaussian splats (`neuralframe.render.splat`) and hash-grid NeRFs (`neuralframe.render.nerf`).

Shared types: `Camera` (OpenCV pinhole camera and its JSON, `neuralframe.render.camera`) and
`RenderOutput` (`neuralframe.render.output`); orbit math (cameras around a target) in
`neuralframe.render.orbit`. Importing this package is cheap: `Camera` (which needs torch) and the
renderers load on first attribute access.
"""

from __future__ import annotations

import importlib

__all__ = ["Camera", "RenderOutput", "camera", "orbit", "output", "splat", "nerf"]

_LAZY = {
    "Camera": ("neuralframe.render.camera", "Camera"),
    "RenderOutput": ("neuralframe.render.output", "RenderOutput"),
}


def __getattr__(name: str):
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    if name in ("camera", "orbit", "output", "splat", "nerf"):
        return importlib.import_module(f"neuralframe.render.{name}")
    raise AttributeError(f"module 'neuralframe.render' has no attribute {name!r}")
