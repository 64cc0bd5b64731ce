"""A stream job from settings: the logic behind `neuralframe stream` and `neuralframe demo`.

    report = run(StreamSettings(source="webcam", effect="blur:24", out="virtualcam"))

`build` makes one pipeline, source -> the effect's stages -> sink:

- `source` -> `streaming.sources.parse_source` (pattern, webcam[:N], a video file, an image folder);
  `size` resizes the pattern at the source, anything else in the effect's stages.
- `out` -> `streaming.sinks.parse_sink` (a video file, a PNG folder, `virtualcam[:DEVICE]`, or None:
  measure only); "window" -> a `LatestFrameSink` shown by `viewer.preview.show`.
- `effect` -> `apps.effects.effect_chain`, the one effect registry: a colour grade, a matting effect or
  `diffuse`. It checks that `model`, `downsample_ratio` and `diffuse.prompts` go with the effect. For the
  matting effects `model`, `downsample_ratio`, `device` and `matte_backend` make the
  `matting.matters.MatteSettings`, and `matte_backend` picks the engines the networks run on
  (`export.matting.matting_engines`); for `diffuse`, `model` is the diffusers folder.
- `policy` -> the pipeline's edges: "auto" is `latest` for a webcam, `block` otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from neuralframe.apps.effects import EFFECT_HELP, EFFECT_OPTION_HELP, effect_chain
from neuralframe.errors import InputError
from neuralframe.streaming.pipeline import POLICIES, Pipeline
from neuralframe.streaming.stats import PipelineReport

if TYPE_CHECKING:
    from neuralframe.generate.diffusion.diffuse import DiffuseSettings

__all__ = ["EFFECT_HELP", "EFFECT_OPTION_HELP", "StreamSettings", "build", "effect_chain", "run"]


@dataclass(frozen=True)
class StreamSettings:
    """What `neuralframe stream` runs.

    Args:
        source: "pattern", "webcam", "webcam:N", a video file or an image folder.
        out: a .mp4/.mkv/.mov file, a folder for images, "window" (a live preview window),
            "virtualcam[:DEVICE]" (a virtual camera, through pyvirtualcam), or None (stats only).
        effect: an effect as typed, from the registry in `apps.effects` (`EFFECT_HELP` lists them).
        size: output (height, width), or None for the source's size.
        frames: stop after this many frames (None: the whole input; the pattern defaults to 150).
        fps: the pattern's rate, or the image folder's, or the output's.
        policy: "block", "latest" or "auto" (latest for live sources, block otherwise).
        impl: kernel implementation for the stages.
        loop: loop a video file.
        matte_backend: "torch", "onnx" or "tensorrt" for the matting effects' networks.
        device: torch device for the matting effects.
        model: the matting effects' model: an RVM state dict (.pth) or a .tflite segmenter (None: the
            bundled segmenter).
        downsample_ratio: RVM only: the scale its network runs at (None: from the frame size).
        diffuse: the `diffuse` effect's engine settings and prompts (`neuralframe.generate.diffusion.diffuse`); its
            model is `model` when that is set.
    """

    source: str = "pattern"
    out: str | None = None
    effect: str = "none"
    size: tuple[int, int] | None = None
    frames: int | None = None
    fps: float | None = None
    policy: str = "auto"
    impl: str = "auto"
    loop: bool = False
    matte_backend: str = "torch"
    device: str = "cpu"
    model: str | None = None
    downsample_ratio: float | None = None
    diffuse: "DiffuseSettings | None" = None


def build(settings: StreamSettings, on_frame=None) -> Pipeline:
    from neuralframe.streaming import sinks, sources

    if settings.policy not in POLICIES + ("auto",):
        raise InputError(f"unknown policy '{settings.policy}': use auto, block or latest")
    if settings.frames is not None and settings.frames <= 0:
        raise InputError(f"--frames must be positive, got {settings.frames}")
    sinks.check_sink_output(settings.out, settings.source)
    source_size = settings.size if settings.source == "pattern" else None
    source = sources.parse_source(settings.source, frames=settings.frames, size=source_size, fps=settings.fps,
                                  loop=settings.loop)
    size = settings.size if settings.source != "pattern" else None
    chain = effect_chain(settings.effect, size, settings.impl, settings.matte_backend, settings.device,
                         model=settings.model, downsample_ratio=settings.downsample_ratio, diffuse=settings.diffuse)
    sink = sinks.LatestFrameSink() if settings.out == "window" else sinks.parse_sink(settings.out, fps=settings.fps)
    live = settings.source.startswith("webcam")
    policy = settings.policy if settings.policy != "auto" else ("latest" if live else "block")
    advice = "use a smaller --size" if settings.size else "use --size to make the frames smaller, or a smaller source"
    return Pipeline(source, chain, sink, policy=policy, max_frames=settings.frames, on_frame=on_frame,
                    memory_advice=advice)


def run(settings: StreamSettings, progress: bool = True) -> PipelineReport:
    """Run a stream job to the end (or Ctrl-C) with a progress bar; returns the report."""
    from neuralframe.console import run_with_progress

    if settings.out == "window":
        from neuralframe.viewer.window import require_display
        from neuralframe.viewer.preview import show

        require_display("write the stream to a file with --out OUT.mp4 instead")  # before opening a camera
        pipeline = build(settings)
        return show(pipeline, pipeline.sink, title=f"{settings.source} [{settings.effect}]")
    return run_with_progress(build(settings), limit=settings.frames, enabled=progress)
