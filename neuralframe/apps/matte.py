"""The offline matting job behind `neuralframe matte INPUT -o OUT.mp4 [--alpha A.mp4] [--rgba DIR] [--background B]`.

    report = run(MatteJob("in.mp4", out="out.mp4", background="blur:24", matte=MatteSettings(model="rvm.pth")))

Lossless `block` edges: every input frame reaches every output (the report accounts for each). The
composite goes to OUT, the alpha as a grey video to ALPHA, and RGBA PNGs (the foreground with the alpha as
the fourth channel: the original pixels, or with an RVM model its predicted foreground) to DIR. All outputs
are written under temporary names and appear only when the job finished well.

Where a job's fields go: `input` and the outputs are checked by `open_job` before anything opens (the
sinks: `AlphaSink`, `RgbaFolderSink`, `TeeSink` here, the rest `streaming.sinks.parse_sink`); `background`
-> `matting.backgrounds.parse_background`; `matte` (`matting.matters.MatteSettings`: `model` is the bundled
segmenter with refinement, a .tflite, or an RVM .pth; `downsample_ratio` is RVM's) -> one
`matting.stages.MatteStage` (`matte_stage`), its networks on the engines `matte.backend` and `matte.device`
pick (`export.matting.matting_engines`). `neuralframe matte --ray` runs the same stage in chunks on Ray
workers (`distributed.jobs.matte_ray`, through `matte_stage`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from neuralframe.errors import InputError, OutputError
from neuralframe.matting.backgrounds import VideoBackground, parse_background
from neuralframe.matting.matters import MatteSettings, model_kind
from neuralframe.streaming.frame import Frame, StreamInfo
from neuralframe.streaming.pipeline import Sink, Source, Stage
from neuralframe.streaming.sinks import ImageFolderSink

# what Ray's chunked matte (distributed/jobs.py) reads from here, besides the job
__all__ = ["MatteJob", "MatteSettings", "VideoBackground", "build", "matte_stage", "model_kind", "open_job",
           "parse_background", "run"]

DEFAULT_BACKGROUND = "#00b140"  # chroma-key green


@dataclass(frozen=True)
class MatteJob:
    """What `neuralframe matte` runs.

    Args:
        input: a video file or an image folder.
        out: the composite video (.mp4/.mkv/.mov) or a folder for PNGs; None to skip.
        alpha: the alpha as a grey video or PNG folder; None to skip.
        rgba: a new folder for RGBA PNGs; None to skip.
        background: "#RRGGBB", an image, a video or "blur[:STRENGTH]".
        frames: stop after this many frames (None: all).
        fps: output frame rate (default: the input's).
        matte: segmenter and refinement settings, or an RVM model (`model`, `downsample_ratio`).
    """

    input: str
    out: str | None = None
    alpha: str | None = None
    rgba: str | None = None
    background: str = DEFAULT_BACKGROUND
    frames: int | None = None
    fps: float | None = None
    matte: MatteSettings = field(default_factory=MatteSettings)


class AlphaSink(Sink):
    """Writes `frame.metadata["alpha"]` as a grey picture through another sink (video or folder)."""

    def __init__(self, inner: Sink):
        self.inner = inner
        self.name = "alpha"

    @property
    def output(self) -> str | None:
        return self.inner.output

    def open(self, info: StreamInfo) -> None:
        self.inner.open(info)

    def write(self, frame: Frame) -> None:
        from neuralframe.backend import fused

        alpha = _alpha(frame)
        self.inner.write(frame.replace(image=fused.to_uint8(alpha[None].expand(3, -1, -1))))

    def close(self) -> None:
        self.inner.close()

    def abort(self) -> None:
        self.inner.abort()


class RgbaFolderSink(ImageFolderSink):
    """RGBA PNGs `NNNNNN.png`: the foreground that was composited (the frame as it came in, or RVM's
    predicted foreground), with the alpha as its fourth channel."""

    what = "RGBA images"
    folder_label = "RGBA folder"
    writer_label = "RGBA writer"

    def __init__(self, folder: str | os.PathLike):
        super().__init__(folder, ".png")
        self.name = "rgba"

    def write(self, frame: Frame) -> None:
        import cv2
        import numpy as np

        alpha = _alpha(frame)
        rgb = frame.metadata.get("foreground", frame.image).numpy()
        a = np.floor(alpha.clamp(0, 1).numpy() * 255.0 + 0.5).astype(np.uint8)
        bgra = np.dstack([rgb[..., 2], rgb[..., 1], rgb[..., 0], a])
        path = self._tmp / f"{frame.index:06d}.png"
        if not cv2.imwrite(str(path), bgra):
            raise OutputError(f"could not write '{path.name}' (disk full?)")
        self.frames_written += 1


class TeeSink(Sink):
    """Several sinks behind one: opened in order (undone if one fails), each gets every frame."""

    def __init__(self, sinks: list[Sink]):
        self.sinks = sinks
        self.name = "+".join(getattr(s, "name", "sink") for s in sinks)

    @property
    def output(self) -> str | None:
        outs = [s.output for s in self.sinks if s.output]
        return ", ".join(outs) if outs else None

    def open(self, info: StreamInfo) -> None:
        opened = []
        try:
            for sink in self.sinks:
                sink.open(info)
                opened.append(sink)
        except BaseException:
            for sink in opened:
                sink.abort()
            raise

    def write(self, frame: Frame) -> None:
        for sink in self.sinks:
            sink.write(frame)

    def close(self) -> None:
        closed = 0
        try:
            for sink in self.sinks:
                sink.close()
                closed += 1
        except BaseException:
            for sink in self.sinks[closed + 1:]:
                sink.abort()
            raise

    def abort(self) -> None:
        for sink in self.sinks:
            try:
                sink.abort()
            except Exception:  # noqa: BLE001 - abort everything we can
                pass


def _alpha(frame: Frame):
    alpha = frame.metadata.get("alpha")
    if alpha is None:
        raise InputError(f"frame {frame.index} carries no alpha: a matting stage must run before this sink")
    return alpha


def open_job(job: MatteJob) -> tuple[Source, Sink]:
    """The job's checked source and its outputs (one sink, or a tee of them); nothing is opened yet."""
    from neuralframe.streaming.sinks import check_sink_output, parse_sink
    from neuralframe.streaming.sources import VideoFileSource, parse_source

    if not (job.out or job.alpha or job.rgba):
        raise InputError("nothing to write: give -o OUT.mp4, --alpha ALPHA.mp4 or --rgba DIR")
    if job.frames is not None and job.frames <= 0:
        raise InputError(f"--frames must be positive, got {job.frames}")
    text = job.input.strip()
    if text == "pattern" or text.startswith("webcam"):
        raise InputError(f"'{job.input}' is live or synthetic: `matte` takes a video file or an image folder "
                         "(use `neuralframe stream` for a webcam)")
    for out in (job.out, job.alpha):
        check_sink_output(out, text)
    check_sink_output(job.rgba, text, images_only=True)
    source = parse_source(text, frames=job.frames, fps=job.fps)
    if not isinstance(source, VideoFileSource) and not Path(text).is_dir():
        raise InputError(f"input '{job.input}' must be a video file or an image folder")
    sinks: list[Sink] = []
    if job.out:
        sinks.append(parse_sink(job.out, fps=job.fps))
    if job.alpha:
        sinks.append(AlphaSink(parse_sink(job.alpha, fps=job.fps)))
    if job.rgba:
        sinks.append(RgbaFolderSink(job.rgba))
    return source, sinks[0] if len(sinks) == 1 else TeeSink(sinks)


def matte_stage(background: str, settings: MatteSettings) -> Stage:
    """The job's one stage: the alpha over `background`, the networks on engines for `settings.backend`."""
    from neuralframe.export.matting import matting_engines
    from neuralframe.matting.stages import MatteStage

    return MatteStage(parse_background(background, settings.impl), settings, name="matte",
                      engines=matting_engines(settings.backend, settings.device))


def build(job: MatteJob, on_frame: Callable[[Frame], None] | None = None):
    """The pipeline for a job: source -> matte stage -> outputs, all edges `block`."""
    from neuralframe.streaming.pipeline import Pipeline

    source, sink = open_job(job)
    stage = matte_stage(job.background, job.matte)
    return Pipeline(source, [stage], sink, policy="block", max_frames=job.frames, on_frame=on_frame)


def run(job: MatteJob, progress: bool = True):
    """Run a matting job to the end with a progress bar; returns the pipeline report."""
    from neuralframe.console import run_with_progress

    return run_with_progress(build(job), f"matte {Path(job.input).name}", job.frames, progress)
