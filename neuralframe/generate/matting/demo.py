"""The matting section of `neuralframe demo`: bundled media only, no camera, no download."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def run(out_dir: str | Path = "out/demo", frames: int = 60, progress: bool = True) -> dict[str, Any]:
    """A clip of a bundled photo of a person over a moving background (made here) -> `blur` and
    `replace` effects into OUT/matte_input.mp4, OUT/matte_blur.mp4, OUT/matte_replace.mp4; returns the reports."""
    from neuralframe.console import print_pipeline_report
    from neuralframe.generate.matting.effects import effect_stages
    from neuralframe.generate.matting.media import make_clip
    from neuralframe.streaming import Pipeline
    from neuralframe.streaming.frame import Frame, StreamInfo
    from neuralframe.streaming.pipeline import Source
    from neuralframe.streaming.sinks import VideoFileSink
    from neuralframe.streaming.sources import VideoFileSource

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    clip = make_clip(min(frames, 24), (360, 640), moving=True)
    n = len(clip.frames)

    class _Clip(Source):
        name = "clip"

        def __init__(self):
            self.i = 0

        def open(self):
            return StreamInfo(width=640, height=360, fps=30.0, frames=frames, name="matting demo clip")

        def read(self):
            if self.i >= frames:
                return None
            k = self.i % (2 * n - 2) if n > 1 else 0  # forwards, then back
            image = clip.frames[k if k < n else 2 * n - 2 - k]
            frame = Frame(image=image, index=self.i, timestamp=self.i / 30.0)
            self.i += 1
            return frame

    source_path = out / "matte_input.mp4"
    Pipeline(_Clip(), [], VideoFileSink(source_path)).run()
    results: dict[str, Any] = {}
    for name, spec in (("blur", "blur"), ("replace", "replace:#1e90ff")):
        report = Pipeline(VideoFileSource(source_path), effect_stages(spec), VideoFileSink(out / f"matte_{name}.mp4")).run()
        if progress:
            print_pipeline_report(report, f"demo matting: person clip -> {spec} -> H.264")
        results[f"matte_{name}"] = report.to_dict()
    return results
