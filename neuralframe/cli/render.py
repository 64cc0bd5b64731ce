"""`neuralframe render`: a camera path of a scene to a video, headless.

`apps.render.render_path` renders on this machine (a NeRF scene's field on `--backend`); with `--ray`,
`distributed.jobs.render_path_ray` renders segments of the path on Ray workers into the same video.
"""

from __future__ import annotations

import typer

from neuralframe.cli.options import (
    frame_size,
    COUNT,
    FPS,
    PIXELS,
    SCENE_FORMATS,
    SPLAT_BUDGET,
    CpusPerWorker,
    JsonReport,
    Ray,
    UnitFrames,
    Workers,
    parse_size,
    print_ray_run,
    ranged,
    ray_settings,
)


def render(
    scene: str = typer.Argument(..., help=f"A splat scene ({SCENE_FORMATS}) or a NeRF .safetensors."),
    out: str = typer.Option(..., "--out", "-o", help="The video to write (.mp4, .mkv, .mov) or a folder for PNGs."),
    path: str = typer.Option("orbit", help="orbit (all around), arc (a sweep around the start view, for scenes "
                                            "captured from one side), or a JSON file with a list of cameras "
                                            "(interpolated)."),
    frames: int = ranged(120, within=COUNT, help="Number of frames."),
    size: str = frame_size("960x540", help="Orbit frame size WIDTHxHEIGHT."),
    fps: float = ranged(30.0, within=FPS, help="Video frame rate."),
    impl: str = typer.Option("auto", help="Renderer: auto, cpu, reference or cuda."),
    backend: str = typer.Option("torch", help="NeRF scenes: where the field's network runs: torch, onnxruntime "
                                              "(exported once with parity checks, then cached) or tensorrt."),
    lod: bool = typer.Option(False, "--lod", help="Splat scenes: draw each frame from a level-of-detail tree of the "
                                                  "scene (built once, then cached in ~/.cache/neuralframe/lod, or "
                                                  "$XDG_CACHE_HOME/neuralframe/lod): at most --splat-budget Gaussians, "
                                                  "merged ones where they look at most --lod-error pixels large, none "
                                                  "outside the view. For long camera paths over huge scenes."),
    splat_budget: int = ranged(1_000_000, "--splat-budget", within=SPLAT_BUDGET,
                               help="With --lod: the most Gaussians drawn per frame."),
    lod_error: float = ranged(0.5, "--lod-error", within=PIXELS,
                              help="With --lod: the largest a merged Gaussian may look on screen (its largest "
                                   "standard deviation, in pixels); 0 draws every Gaussian the budget allows."),
    ray: Ray = None,
    workers: Workers = None,
    cpus_per_worker: CpusPerWorker = 1,
    unit_frames: UnitFrames = None,
    as_json: JsonReport = False,
) -> None:
    """Render a camera path of a scene to a video, headless. With --ray, segments of the path render on Ray
    workers (the video is the same as on one machine)."""
    from neuralframe.apps.render import PathSettings, render_path, use_backend
    from neuralframe.backend.runtime import resolve_backend
    from neuralframe.console import emit_json, note, print_pipeline_report
    from neuralframe.render.scene import open_scene
    from neuralframe.streaming.sinks import check_sink_output

    check_sink_output(out, scene, path)  # before the scene loads: nothing is written where it cannot go
    h, w = parse_size(size)
    backend = resolve_backend(backend)
    settings = PathSettings(path=path, frames=frames, width=w, height=h, fps=fps, impl=impl,
                            lod_budget=splat_budget if lod else None, lod_error=lod_error)
    if ray is not None and lod:
        from neuralframe.errors import InputError

        raise InputError("--lod renders on this machine: drop --ray, or --lod to render every Gaussian on Ray")
    if ray is not None:
        from neuralframe.distributed import ray_session
        from neuralframe.distributed.jobs import render_path_ray

        cluster = ray_settings(ray, workers, cpus_per_worker)
        open_scene(scene)  # a missing or corrupt scene fails here, before Ray starts
        with ray_session(cluster) as session:
            report, summary = render_path_ray(scene, settings, out, session, backend=backend,
                                              unit_frames=unit_frames, progress=not as_json)
        print_ray_run(report, summary, f"render {scene} along {path} on ray", as_json)
        return
    opened = open_scene(scene)
    use_backend(opened, backend, say=None if as_json else note)  # a splat scene with --backend: an InputError
    report = render_path(opened, settings, out, progress=not as_json, say=None if as_json else note)
    if as_json:
        emit_json(report.to_dict())
    else:
        print_pipeline_report(report, f"render {opened.name} along {path}")
