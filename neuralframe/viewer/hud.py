"""The viewer's overlay: what a person wants to read at a glance (frame rate, resolution, what is drawn)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

HUD_UPDATE_S = 0.25  # new figures 4 times a second: as fast as a person reads them


def drawn_line(describe: dict[str, Any], drawn: int, budget: int | None) -> str:
    """'splat 123,456 of 2,000,000 drawn (budget 150,000)'; every Gaussian, or a NeRF: its size."""
    kind = describe.get("kind", "")
    total = describe.get("gaussians") or describe.get("parameters")
    if not isinstance(total, int):
        return kind
    if budget is None or not describe.get("gaussians"):
        what = "every Gaussian" if describe.get("gaussians") else "parameters"
        return f"{kind} {total:,} ({what})"
    return f"{kind} {drawn:,} of {total:,} drawn (budget {budget:,})"


def hud_lines(app: Any) -> list[str]:
    """The overlay of a `ViewerApp` showing a frame (`app._shown`: the frame's metadata)."""
    meta = app._shown
    cam = meta["camera"]
    elapsed = max(time.perf_counter() - app._t_start, 1e-6)
    recent = app.stats.render_ms[-30:]
    fps = 1000.0 / max(float(np.mean(recent)), 1e-3) if recent else 0.0
    return [
        f"{fps:5.1f} FPS   render {meta['render_ms']:6.1f} ms",
        f"{cam.width}x{cam.height}  scale {meta['scale']:.2f}",
        drawn_line(app.scene.describe(), meta["drawn"], meta["budget"]),
        f"impl {app.stats.implementation}   view {app.mode}",
        f"up {elapsed:5.0f} s   H: hide  1/2/3: rgb/depth/alpha",
    ]
