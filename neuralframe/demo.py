"""`neuralframe demo`: the bundled defaults, end to end, with a one-screen summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from neuralframe.errors import OutputError


def run(out_dir: str = "out/demo", frames: int = 150, progress: bool = True) -> dict[str, Any]:
    """Run every demo part into `out_dir`; returns what each part reported."""
    from neuralframe.console import console, print_pipeline_report
    from neuralframe.streaming import Pipeline
    from neuralframe.streaming.sinks import VideoFileSink
    from neuralframe.streaming.sources import PatternSource
    from neuralframe.streaming.stages import ColorResize
    from neuralframe.console import progress_bar

    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create output folder '{out}': {error.strerror}") from None
    results: dict[str, Any] = {}

    # 1. the frame pipeline: a moving 720p test pattern -> fused resize + colour grade -> H.264
    holder: list = []
    pipeline = Pipeline(PatternSource(width=1280, height=720, fps=30.0, frames=frames),
                        [ColorResize((540, 960), "warm")], VideoFileSink(out / "pattern.mp4"),
                        on_frame=lambda f: holder[0].advance() if holder else None)
    pipeline.start()
    with progress_bar("pattern", frames, enabled=progress) as bar:
        holder.append(bar)
        report = pipeline.wait()
    if progress:
        print_pipeline_report(report, "demo 1/1: test pattern -> resize + warm grade (fused) -> H.264")
    results["pattern"] = report.to_dict()
    if progress:
        console.print(f"[green]demo done[/]: outputs in [bold]{out}[/]", highlight=False)
    return results
