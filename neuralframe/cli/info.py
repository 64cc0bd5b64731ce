"""`neuralframe info [SCENE]`: versions, threads, devices and optional capabilities (apps/info.py), or,
given a scene file, its format, count, SH degree, bounds and size (apps/convert.py)."""

from __future__ import annotations

from typing import Optional

import typer


def info(
    scene: Optional[str] = typer.Argument(None, help="A splat scene file to describe instead (any format "
                                                     "neuralframe reads)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
) -> None:
    """Versions, threads, devices and which optional capabilities are present; or, given a scene file, its
    format and version, Gaussian count, SH degree, bounds and file size."""
    from neuralframe.console import emit_json

    if scene is not None:
        from neuralframe.apps.convert import describe, print_summary

        summary = describe(scene)
        emit_json(summary) if as_json else print_summary(summary, scene)
        return
    from neuralframe.apps import info as info_mod

    data = info_mod.collect()
    emit_json(data) if as_json else info_mod.print_info(data)
