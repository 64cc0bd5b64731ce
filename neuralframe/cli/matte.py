"""`neuralframe matte`: people cut out of a video, offline and lossless (every frame is matted).

Where each option lands:

- `--model`, `--downsample-ratio`, `--backend` -> `MatteSettings` (`matting/matters.py`): the bundled
  segmenter with refinement, a .tflite segmenter, or an RVM .pth with its recurrent state
  (`--downsample-ratio`: RVM only); onnxruntime and tensorrt run the network on an engine the app builds
  (`export/matting.py`).
- INPUT, `-o` (the composite), `--alpha`, `--rgba`, `--background` (`matting/backgrounds.py`), `--frames`,
  `--fps` -> the `MatteJob` that `apps.matte.run` runs with lossless `block` edges; outputs appear only on
  success.
- `--ray` -> `distributed.jobs.matte_ray`: the same job in chunks on Ray workers, each warmed up on the
  frames before it.
"""

from __future__ import annotations

from typing import Optional

import typer

from neuralframe.cli.options import (
    BACKEND_HELP,
    COUNT,
    FPS,
    MODEL_HELP,
    RATIO,
    RATIO_HELP,
    CpusPerWorker,
    JsonReport,
    Ray,
    UnitFrames,
    Workers,
    matting_backend,
    print_ray_run,
    ranged,
    ray_settings,
)


def matte(
    input: str = typer.Argument(..., help="A video file or an image folder."),
    out: str = typer.Option(..., "--out", "-o", help="The composited video (.mp4/.mkv/.mov)."),
    alpha: Optional[str] = typer.Option(None, help="Also write the alpha matte as a video here."),
    rgba: Optional[str] = typer.Option(None, help="Also write RGBA PNGs (foreground + alpha) into this new folder."),
    background: str = typer.Option("#00b140", help="#RRGGBB, an image, a video (looped) or blur[:STRENGTH]."),
    frames: Optional[int] = ranged(None, within=COUNT, help="Stop after N frames."),
    fps: Optional[float] = ranged(None, within=FPS, help="Frame rate of an image folder, and of the outputs."),
    model: Optional[str] = typer.Option(None, "--model", help=MODEL_HELP),
    downsample_ratio: Optional[float] = ranged(None, "--downsample-ratio", within=RATIO, help=RATIO_HELP),
    backend: str = typer.Option("torch", "--backend", help=BACKEND_HELP),
    ray: Ray = None,
    workers: Workers = None,
    cpus_per_worker: CpusPerWorker = 1,
    unit_frames: UnitFrames = None,
    as_json: JsonReport = False,
) -> None:
    """Separate people from the background in a video, offline and lossless: every frame is matted. With
    --ray, chunks of the video run on Ray workers, each warmed up on the frames before it."""
    from neuralframe.apps.matte import MatteJob, MatteSettings, run
    from neuralframe.console import emit_json, print_pipeline_report

    settings = MatteSettings(model=model, downsample_ratio=downsample_ratio, backend=matting_backend(backend))
    job = MatteJob(input=input, out=out, alpha=alpha, rgba=rgba, background=background, frames=frames, fps=fps,
                   matte=settings)
    if ray is not None:
        from neuralframe.distributed import ray_session
        from neuralframe.apps.matte import open_job
        from neuralframe.distributed.jobs import matte_ray

        open_job(job)  # the input and the outputs, checked before Ray starts
        with ray_session(ray_settings(ray, workers, cpus_per_worker)) as session:
            report, summary = matte_ray(job, session, unit_frames=unit_frames, progress=not as_json)
        print_ray_run(report, summary, f"matte {input} -> {out} on ray", as_json)
        return
    report = run(job, progress=not as_json)
    if as_json:
        emit_json(report.to_dict())
    else:
        print_pipeline_report(report, f"matte {input} -> {out}")
