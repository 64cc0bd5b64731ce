"""`neuralframe restyle`: offline video-to-video, every frame of a file or folder through the streaming
diffusion stage (`neuralframe.generate.diffusion.diffuse.DiffuseStage`) into a video or a PNG folder."""

from __future__ import annotations

from dataclasses import dataclass

from neuralframe.errors import InputError
from neuralframe.generate.diffusion.diffuse import DiffuseSettings, DiffuseStage


@dataclass(frozen=True)
class RestyleJob:
    """What `neuralframe restyle` runs: every frame of a video file or image folder through the diffusion
    stage (`block` edges: none dropped) into a video (.mp4/.mkv/.mov) or a PNG folder, written under a
    temporary name that appears only when the job finished well.

    Args:
        input: a video file or an image folder.
        out: the output video or folder.
        diffuse: the engine settings and the prompt schedule.
        frames: stop after this many frames (None: all).
        fps: output frame rate (default: the input's).
    """

    input: str
    out: str
    diffuse: DiffuseSettings
    frames: int | None = None
    fps: float | None = None


def check_restyle_job(job: RestyleJob) -> None:
    """The job's own settings (not its files): one clear line for what a restyle cannot take."""
    text = job.input.strip()
    if text == "pattern" or text.startswith("webcam"):
        raise InputError(f"restyle takes a video file or an image folder, not '{job.input}'; for a live source use "
                         "neuralframe stream --effect diffuse")
    if job.frames is not None and job.frames <= 0:
        raise InputError(f"--frames must be positive, got {job.frames}")
    if not job.out:
        raise InputError("give the output video with -o OUT.mp4")
    from neuralframe.streaming.sinks import check_sink_output

    check_sink_output(job.out, text)


def diffuse_stage(settings: DiffuseSettings) -> DiffuseStage:
    """The diffusion stage with its engine builder handed in: `--backend onnxruntime|tensorrt` runs the
    model's exported graphs (`neuralframe.export.engines`)."""
    from neuralframe.export.engines import engine_factory

    return DiffuseStage(settings, engines=engine_factory("tiny-shapes"))


def restyle_warmup(settings) -> int:
    """Warm-up frames of a restyle chunk: the S - 1 latents in flight, plus the bank's frames and the
    similarity filter's longest skip run when those are on."""
    from neuralframe.generate.caches.feature_bank import FeatureBank
    from neuralframe.generate.diffusion.stream import SimilarityFilter

    warm = len(settings.steps) - 1
    if settings.bank:
        bank = FeatureBank()
        warm += 2 * bank.max_frames * bank.interval
    if settings.similarity is not None:
        warm += SimilarityFilter().max_skip
    return warm


def restyle(job: RestyleJob, progress: bool = True):
    """Run a restyle job to the end with a progress bar; returns (report, the stage's summary)."""
    from neuralframe.console import run_with_progress
    from neuralframe.streaming import sinks, sources
    from neuralframe.streaming.pipeline import Pipeline

    check_restyle_job(job)
    probe = sources.parse_source(job.input, frames=job.frames, fps=job.fps)
    probe.open()  # a missing, empty or unreadable input is refused before the model loads
    probe.close()
    stage = diffuse_stage(job.diffuse)  # the prompts and the model folder are checked before anything opens
    source = sources.parse_source(job.input, frames=job.frames, fps=job.fps)
    sink = sinks.parse_sink(job.out, fps=job.fps)
    pipeline = Pipeline(source, [stage], sink, policy="block", max_frames=job.frames)
    report = run_with_progress(pipeline, limit=job.frames, enabled=progress)
    return report, stage.summary() if stage.engine is not None else {}
