"""`neuralframe demo`: the bundled tour (apps/demo.py)."""

from __future__ import annotations

from typing import Optional

import typer

from neuralframe.cli.options import (
    COUNT,
    JsonReport,
    ranged,
)


def demo(
    out: str = typer.Option("out/demo", "--out", "-o", help="Folder for the demo's outputs."),
    frames: int = ranged(150, within=COUNT, help="Frames of the moving test pattern."),
    window: Optional[bool] = typer.Option(None, "--window/--no-window",
                                          help="Open the viewer on the bundled scene (default: when there is a "
                                               "display); without, render an orbit video."),
    as_json: JsonReport = False,
) -> None:
    """Run the bundled demo: a moving test pattern through the frame pipeline into OUT/pattern.mp4, then the
    bundled motorcycle scene in the viewer (or, without a display, an orbit video OUT/motorcycle_orbit.mp4)."""
    from neuralframe.apps import demo as demo_mod
    from neuralframe.console import emit_json

    report = demo_mod.run(out, frames=frames, progress=not as_json, window=window)
    if as_json:
        emit_json(report)
