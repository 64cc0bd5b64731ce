"""`neuralframe generate`: text to video through the frame pipeline, written frame by frame.

    summary = generate_video(["a large red star rotating in the centre over a plain blue background"],
                             "out.mp4", frames=48)

The generator is a pipeline source: each frame goes to the video writer as soon as it is made, so a long
run can be watched (the file is a fragmented MP4 while it grows) and stopped (Ctrl-C once: the file is
finalised with the frames so far; twice: it is removed). `--show` also draws the newest frame in a window.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from neuralframe.backend.memory import check_allocation, pipeline_bytes
from neuralframe.errors import InputError
from neuralframe.streaming.frame import Frame, StreamInfo
from neuralframe.streaming.pipeline import Pipeline, Sink, Source


def rss_mb() -> float:
    """Resident memory of this process now, in MB (Linux /proc; the peak so far elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, IndexError):
        return peak_rss_mb()


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak / 1e3  # bytes on macOS, KB on Linux


UPSCALE_ADVICE = "use a smaller --upscale"


def check_upscaled(height: int, width: int, upscale: int) -> None:
    """An InputError unless frames `upscale` times larger than `height` x `width` fit in memory: one as it
    is resized, and those in the pipeline to the encoder (a source, an edge of 4 frames, a sink)."""
    h, w = height * upscale, width * upscale
    check_allocation(pipeline_bytes(w, h, nodes=2, queued=4) + 3 * h * w, f"--upscale {upscale}: {w}x{h} frames",
                     UPSCALE_ADVICE)


class GeneratorSource(Source):
    """Frames from a generator's iterator, upscaled by `upscale` (bicubic) for viewing. The first frame is
    made when the pipeline opens the source (its size is the stream's)."""

    def __init__(self, frames: Iterator[np.ndarray], n_frames: int, fps: float, upscale: int = 1):
        if upscale < 1:
            raise InputError(f"--upscale must be at least 1, got {upscale}")
        self.frames, self.n_frames, self.fps, self.upscale = frames, int(n_frames), float(fps), int(upscale)
        self.name = "generate"
        self._i = 0
        self._first: np.ndarray | None = None
        self.size = (0, 0)
        self.peak_rss_mb = 0.0

    def _next(self) -> np.ndarray | None:
        try:
            image = next(self.frames)
        except StopIteration:
            return None
        self.peak_rss_mb = max(self.peak_rss_mb, rss_mb())
        if self.upscale > 1:
            import cv2

            h, w = image.shape[:2]
            if self.size == (0, 0):  # the first frame: its size is every frame's
                check_upscaled(h, w, self.upscale)
            image = cv2.resize(image, (w * self.upscale, h * self.upscale), interpolation=cv2.INTER_CUBIC)
        return image

    def open(self) -> StreamInfo:
        self._first = self._next()
        if self._first is None:
            raise InputError("the generator made no frames")
        h, w = self._first.shape[:2]
        self.size = (w, h)
        return StreamInfo(width=w, height=h, fps=self.fps, frames=self.n_frames, name="generate")

    def read(self) -> Frame | None:
        image, self._first = (self._first, None) if self._first is not None else (self._next(), None)
        if image is None:
            return None
        frame = Frame(image=torch.from_numpy(np.ascontiguousarray(image)), index=self._i, timestamp=self._i / self.fps)
        self._i += 1
        return frame


class TeeSink(Sink):
    """Writes every frame to several sinks (a file and a preview window's latest-frame sink)."""

    def __init__(self, *sinks: Sink):
        self.sinks = sinks
        self.name = "+".join(getattr(s, "name", "sink") for s in sinks)

    @property
    def output(self) -> str | None:
        return next((s.output for s in self.sinks if s.output), None)

    def open(self, info: StreamInfo) -> None:
        for s in self.sinks:
            s.open(info)

    def write(self, frame: Frame) -> None:
        for s in self.sinks:
            s.write(frame)

    def close(self) -> None:
        for s in self.sinks:
            s.close()

    def abort(self) -> None:
        for s in self.sinks:
            s.abort()


def load_generator(model: str | None, device: str = "cpu", tiny_vae: bool = False):
    """The bundled causal video model (or a folder of it), or a local diffusers text-to-video folder."""
    if model is not None:
        from neuralframe.generate.video.diffusers_folder import DiffusersVideoGenerator, is_diffusers_video_folder

        path = Path(model)
        if (path / "model_index.json").is_file():
            if not is_diffusers_video_folder(path):
                raise InputError(f"{path}: a diffusers folder, but not a text-to-video pipeline (see its "
                                 "model_index.json); generate needs a text-to-video model")
            return DiffusersVideoGenerator(path, device=device)
    from neuralframe.generate.video.generate import BUNDLED_VIDEO, CausalVideoGenerator

    return CausalVideoGenerator(model or BUNDLED_VIDEO, device=device, tiny_vae=tiny_vae)


def generate_video(schedule: list[tuple[int, str]], out: str | os.PathLike, frames: int = 48, seed: int = 0,
                   model: str | None = None, device: str = "cpu", show: bool = False, upscale: int = 4,
                   fps: float | None = None, tiny_vae: bool = False, steps: int | None = None,
                   progress: bool = True, on_frame: Callable[[int, int], None] | None = None) -> dict:
    """Generate `frames` frames of the prompt schedule into `out`; returns the run's summary."""
    from neuralframe.streaming.sinks import LatestFrameSink, VideoFileSink, check_video_output

    if frames < 1:
        raise InputError(f"--frames must be at least 1, got {frames}")
    out = check_video_output(out)  # before a model loads
    file_sink = VideoFileSink(out, fps=fps, fragmented=True)
    if show:
        from neuralframe.viewer.window import require_display

        require_display("drop --show: the video file is written without a window")
    gen = load_generator(model, device, tiny_vae)
    if isinstance(getattr(gen, "size", None), int):  # the bundled model's square frames, before the first is made
        check_upscaled(gen.size, gen.size, upscale)
    if len(schedule) > 1 and not gen.supports_schedule:
        raise InputError(f"{model}: diffusers' text-to-video pipelines take one prompt; prompt schedules need the "
                         "bundled causal model (drop --model) or a single prompt")
    if gen.supports_schedule:
        iterator = gen.frames(schedule, frames, seed)
    else:
        iterator = gen.frames(schedule[0][1], frames, seed=seed, steps=steps)
    started = time.perf_counter()
    source = GeneratorSource(iterator, frames, fps or gen.fps, upscale)
    latest = LatestFrameSink() if show else None
    sink = TeeSink(file_sink, latest) if show else file_sink
    pipeline = Pipeline(source, [], sink, max_frames=frames, memory_advice=UPSCALE_ADVICE)
    if show:
        from neuralframe.viewer.preview import show as show_window

        report = show_window(pipeline, latest, title="generate")
    else:
        from neuralframe.console import run_with_progress

        if on_frame is not None:
            pipeline.on_frame = lambda f: on_frame(f.index + 1, frames)
            report = pipeline.run()
        else:
            report = run_with_progress(pipeline, description="generate", limit=frames, enabled=progress)
    wall = time.perf_counter() - started
    peak_gpu = torch.cuda.max_memory_allocated() / 1e6 if torch.cuda.is_available() else None
    return {"output": str(out) if report.output else None, "status": report.status, "frames": report.frames_out,
            "seconds": round(wall, 2), "fps": round(report.frames_out / wall, 2) if wall > 0 else None,
            "peak_memory_mb": round(max(source.peak_rss_mb, rss_mb()), 1),
            "peak_gpu_memory_mb": None if peak_gpu is None else round(peak_gpu, 1),
            "size": f"{source.size[0]}x{source.size[1]}", "seed": seed, "model": str(model or "bundled tiny-shapes-video"),
            "prompts": [{"frame": f, "prompt": p} for f, p in schedule],
            "network_evaluations_per_frame": round(gen.evaluations / max(report.frames_out, 1), 2)
            if hasattr(gen, "evaluations") else None}
