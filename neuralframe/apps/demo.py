"""`neuralframe demo`: the bundled defaults, end to end, with a one-screen summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from neuralframe.errors import OutputError


def run(out_dir: str = "out/demo", frames: int = 150, progress: bool = True, window: bool | None = None,
        orbit_frames: int = 48) -> dict[str, Any]:
    """Run every demo part into `out_dir`; returns what each part reported."""
    from neuralframe.console import console, print_pipeline_report
    from neuralframe.streaming import Pipeline
    from neuralframe.streaming.sinks import VideoFileSink
    from neuralframe.streaming.sources import PatternSource
    from neuralframe.streaming.stages import ColorResize
    from neuralframe.console import run_with_progress

    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create output folder '{out}': {error.strerror}") from None
    results: dict[str, Any] = {}

    # 1. the frame pipeline: a moving 720p test pattern -> fused resize + colour grade -> H.264
    pipeline = Pipeline(PatternSource(width=1280, height=720, fps=30.0, frames=frames),
                        [ColorResize((540, 960), "warm")], VideoFileSink(out / "pattern.mp4"))
    report = run_with_progress(pipeline, "pattern", enabled=progress)
    if progress:
        print_pipeline_report(report, "demo 1/5: test pattern -> resize + warm grade (fused) -> H.264")
    results["pattern"] = report.to_dict()

    # 2. matting on bundled media: background blur and replacement
    if progress:
        console.print("demo 2/5: matting a person on bundled media (blur and replace the background)")
    results["matting"] = _matte_part(out, progress)

    # 3. the bundled motorcycle scene: the viewer with a display, else a rendered orbit
    results["scene"] = _scene_part(out, progress, window, orbit_frames)

    # 4. streaming diffusion with the bundled tiny-shapes model: a panning shapes clip restyled to a prompt
    results["diffuse"] = _diffuse_part(out, progress)

    # 5. text to video with the bundled causal video model, with a prompt switch half way
    results["generate"] = _generate_part(out, progress)
    if progress:
        console.print(f"[green]demo done[/]: outputs in [bold]{out}[/]", highlight=False)
    return results


def _matte_part(out: Path, progress: bool, frames: int = 60) -> dict[str, Any]:
    """A clip of a bundled photo of a person over a moving background (made here) -> `blur` and `replace`
    effects into OUT/matte_input.mp4, OUT/matte_blur.mp4, OUT/matte_replace.mp4; returns the reports."""
    from neuralframe.apps.effects import effect_chain
    from neuralframe.console import print_pipeline_report
    from neuralframe.matting.media import make_clip
    from neuralframe.streaming import Pipeline
    from neuralframe.streaming.sinks import VideoFileSink
    from neuralframe.streaming.sources import FrameListSource, VideoFileSource

    clip = make_clip(min(frames, 24), (360, 640), moving=True)
    source_path = out / "matte_input.mp4"
    source = FrameListSource(clip.frames, fps=30.0, frames=frames, bounce=True, name="matting demo clip")
    Pipeline(source, [], VideoFileSink(source_path)).run()
    results: dict[str, Any] = {}
    for name, spec in (("blur", "blur"), ("replace", "replace:#1e90ff")):
        report = Pipeline(VideoFileSource(source_path), effect_chain(spec), VideoFileSink(out / f"matte_{name}.mp4")).run()
        if progress:
            print_pipeline_report(report, f"demo matting: person clip -> {spec} -> H.264")
        results[f"matte_{name}"] = report.to_dict()
    return results


def _scene_part(out: Path, progress: bool, window: bool | None, orbit_frames: int) -> dict[str, Any]:
    from neuralframe.backend.device import has_display
    from neuralframe.console import console, print_pipeline_report
    from neuralframe.render.scene import default_scene_path, open_scene

    path = default_scene_path()
    scene = open_scene(path)
    if window is None:
        window = has_display()
    if window:
        from neuralframe.viewer.app import ViewerApp, ViewerSettings

        if progress:
            console.print(f"demo 3/5: opening the viewer on {path.name} (close the window or press Esc to finish)")
        stats = ViewerApp(scene, ViewerSettings()).run()
        return {"viewer": stats.summary()}
    from neuralframe.apps.render import PathSettings, render_path

    if progress:
        console.print(f"demo 3/5: no display, so rendering an orbit of {path.name} instead of opening the viewer")
    report = render_path(scene, PathSettings(path="arc", frames=orbit_frames, width=640, height=432),
                         out / "motorcycle_orbit.mp4", progress=progress)
    if progress:
        print_pipeline_report(report, f"demo 3/5: {path.name} orbit -> H.264")
    return {"orbit": report.to_dict()}


def _diffuse_part(out: Path, progress: bool, frames: int = 48) -> dict[str, Any]:
    from neuralframe.console import console, print_pipeline_report
    from neuralframe.generate.models.folder import BUNDLED

    if not (BUNDLED / "model_index.json").is_file():
        if progress:
            console.print("demo 4/5: skipped streaming diffusion: the bundled tiny-shapes model is not in this "
                          "checkout (train it with `neuralframe train tiny-shapes`)")
        return {"skipped": "no bundled tiny-shapes model"}
    from neuralframe.console import run_with_progress
    from neuralframe.generate.data.panning import panning_clip
    from neuralframe.apps.restyle import diffuse_stage
    from neuralframe.generate.diffusion.diffuse import DiffuseSettings
    from neuralframe.streaming import Pipeline
    from neuralframe.streaming.sinks import VideoFileSink
    from neuralframe.streaming.sources import FrameListSource

    clip, prompt, _ = panning_clip(frames, 128)
    second = "a large red heart in the centre over a plain yellow background"
    stage = diffuse_stage(DiffuseSettings(prompts=(prompt, f"{second}:{frames // 2}"), bank=True))
    pipeline = Pipeline(FrameListSource(clip, fps=12.0, name="shapes-clip"), [stage],
                        VideoFileSink(out / "restyle.mp4", fps=12.0))
    report = run_with_progress(pipeline, "restyle", enabled=progress)
    if progress:
        print_pipeline_report(report, f"demo 4/5: streaming diffusion, '{prompt}' then '{second}' from frame "
                                      f"{frames // 2} -> restyle.mp4")
    return {"restyle": report.to_dict(), "engine": stage.summary()}


def _generate_part(out: Path, progress: bool, frames: int = 48) -> dict[str, Any]:
    from neuralframe.console import console
    from neuralframe.generate.video.generate import BUNDLED_VIDEO
    from neuralframe.apps.generate import generate_video

    if not (BUNDLED_VIDEO / "transformer.safetensors").is_file():
        if progress:
            console.print("demo 5/5: skipped text to video: the bundled tiny-shapes-video model is not in this "
                          "checkout (train it with `neuralframe train tiny-shapes-video`)")
        return {"skipped": "no bundled tiny-shapes-video model"}
    first = "a large yellow star rotating in the centre over a plain purple background"
    second = "a large white heart rotating in the centre over a plain purple background"
    summary = generate_video([(0, first), (frames // 2, second)], out / "generated.mp4", frames=frames,
                             progress=progress)
    if progress:
        console.print(f"demo 5/5: text to video, '{first}' then '{second}' from frame {frames // 2}: "
                      f"{summary['frames']} frames at {summary['fps']} FPS -> generated.mp4", highlight=False)
    return summary
