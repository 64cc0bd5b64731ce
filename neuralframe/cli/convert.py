"""`neuralframe convert IN OUT`: a splat scene from any format to any other (apps/convert.py)."""

from __future__ import annotations

from typing import Optional

import typer

from neuralframe.cli.options import (
    COUNT,
    SCENE_FORMATS,
    JsonObject,
    between,
    ranged,
)


def convert(
    input: str = typer.Argument(..., help=f"The scene to read: {SCENE_FORMATS}."),
    output: str = typer.Argument(..., help="The new file; its extension picks the format (any of the input's except .ksplat)."),
    sh_degree: Optional[int] = ranged(None, "--sh-degree", within=between(0, 3),
                                      help="Keep spherical-harmonic bands up to this degree (0 = colour "
                                           "only). Default: all the input has."),
    filter_nan: bool = typer.Option(False, "--filter-nan", help="Drop Gaussians with NaN or infinite values "
                                                                 "instead of refusing the file."),
    max_gaussians: Optional[int] = ranged(None, "--max-gaussians", within=COUNT,
                                          help="Reduce the scene to at most N Gaussians by merging "
                                               "neighbours (moment-matched); the faintest are dropped if "
                                               "merging cannot reach N."),
    spz_version: Optional[int] = ranged(None, "--spz-version", within=between(2, 4),
                                        help=".spz outputs: the version to write, for older readers "
                                             "(default: the current one, 4)."),
    as_json: JsonObject = False,
) -> None:
    """Convert a Gaussian-splat scene between formats, with a one-screen summary: count, SH degree, bounds,
    bytes per Gaussian and time. The output appears only when it is complete."""
    from neuralframe.apps.convert import ConvertJob, convert as run_convert, print_summary
    from neuralframe.console import emit_json

    summary = run_convert(ConvertJob(input, output, sh_degree=sh_degree, filter_nan=filter_nan,
                                     max_gaussians=max_gaussians, spz_version=spz_version),
                          progress=not as_json)
    emit_json(summary) if as_json else print_summary(summary, f"converted {input} -> {output}")
