"""A stream job from settings: the logic behind `neuralframe stream` and `neuralframe demo`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from neuralframe.errors import InputError
from neuralframe.streaming.pipeline import POLICIES, Pipeline
from neuralframe.streaming.stats import PipelineReport

if TYPE_CHECKING:
    from neuralframe.generate.diffusion.diffuse import DiffuseSettings


@dataclass(frozen=True)
class StreamSettings:
    """What `neuralframe stream` runs.

    Args:
        source: "pattern", "webcam", "webcam:N", a video file or an image folder.
        out: a .mp4/.mkv/.mov file, a folder for images, "window" (a live preview window),
            "virtualcam[:DEVICE]" (a virtual camera, through pyvirtualcam), or None (stats only).
        effect: a name from `stages.EFFECTS`.
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
    source_size = settings.size if settings.source == "pattern" else None
    source = sources.parse_source(settings.source, frames=settings.frames, size=source_size, fps=settings.fps,
                                  loop=settings.loop)
    size = settings.size if settings.source != "pattern" else None
    chain = effect_chain(settings.effect, size, settings.impl, settings.matte_backend, settings.device,
                         model=settings.model, downsample_ratio=settings.downsample_ratio, diffuse=settings.diffuse)
    sink = sinks.LatestFrameSink() if settings.out == "window" else sinks.parse_sink(settings.out, fps=settings.fps)
    live = settings.source.startswith("webcam")
    policy = settings.policy if settings.policy != "auto" else ("latest" if live else "block")
    return Pipeline(source, chain, sink, policy=policy, max_frames=settings.frames, on_frame=on_frame)


def effect_chain(effect: str, size, impl: str = "auto", matte_backend: str = "torch", device: str = "cpu", *,
                 model: str | None = None, downsample_ratio: float | None = None, diffuse=None) -> list:
    """The stages for `--effect`: a colour grade (one fused stage), a matting effect (segment, then
    refine + composite, or with an RVM model rvm, then composite, on two threads) or streaming diffusion
    (`diffuse`: the engine restyles every frame to a prompt, then the resize to `size`)."""
    from neuralframe.streaming import stages

    if effect == "diffuse":
        import dataclasses

        from neuralframe.generate.diffusion.diffuse import DiffuseStage

        if downsample_ratio is not None:
            raise InputError("--downsample-ratio goes with the matting effects (matte, blur, replace), not diffuse")
        if diffuse is None or not diffuse.prompts:
            raise InputError("--effect diffuse needs a prompt: --prompt \"TEXT\"")
        if model is not None:
            diffuse = dataclasses.replace(diffuse, model=model)
        chain: list = [DiffuseStage(diffuse)]
        if size is not None:
            chain.append(stages.ColorResize(size, "identity", impl=impl))
        return chain
    if diffuse is not None and diffuse.prompts:
        raise InputError(f"--prompt goes with --effect diffuse, not '{effect}'")

    if effect.split(":", 1)[0] in MATTING_EFFECTS:
        from neuralframe.matting.effects import MatteSettings, effect_stages

        return effect_stages(effect, size=size, impl=impl,
                             settings=MatteSettings(backend=matte_backend, device=device, model=model,
                                                    downsample_ratio=downsample_ratio, impl=impl))
    if model is not None or downsample_ratio is not None:
        raise InputError(f"--model and --downsample-ratio go with the matting effects (matte, blur, replace), "
                         f"not '{effect}'")
    stage = stages.effect_stage(effect, size, impl=impl)
    return [stage] if stage is not None else []


MATTING_EFFECTS = ("matte", "replace", "blur")
EFFECT_HELP = "none, warm, cool, sepia, gray, matte, replace:IMAGE|VIDEO|#RRGGBB, blur[:STRENGTH] or diffuse"


def run(settings: StreamSettings, progress: bool = True) -> PipelineReport:
    """Run a stream job to the end (or Ctrl-C) with a progress bar; returns the report."""
    from neuralframe.console import run_with_progress

    if settings.out == "window":
        from neuralframe.viewer.app import require_display
        from neuralframe.viewer.preview import show

        require_display("write the stream to a file with --out OUT.mp4 instead")  # before opening a camera
        pipeline = build(settings)
        return show(pipeline, pipeline.sink, title=f"{settings.source} [{settings.effect}]")
    return run_with_progress(build(settings), limit=settings.frames, enabled=progress)
