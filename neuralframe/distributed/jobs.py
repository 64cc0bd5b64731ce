"""The offline products on Ray: `render`, `restyle`, `matte` and `generate` split into units.

- render: camera-path segments; each frame depends only on its camera, so the video is the same as the
  single-machine one.
- restyle, matte: video chunks. The stages keep state across frames (the stream batch's latents in flight,
  the feature bank, the matte's temporal stabiliser or RVM's recurrent state), so each chunk first runs
  `warmup` frames before its start (not kept) to bring the state to where the single-machine run has it. For
  restyle without the bank the state is only the S - 1 latents in flight, so S - 1 warm-up frames give the
  same frames as one machine; with the bank or a recurrent matte the warm-up makes the seam as smooth as the
  rest of the video (measured by `seam_report`).
- generate: one clip per prompt (a causal clip cannot be split: each frame attends to the ones before).

The driver reads the input and writes the output; workers need neither file. Each worker builds its stage
(loads its model) once and resets its state before every unit.
"""

from __future__ import annotations

import functools
import os
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from neuralframe.errors import InputError
from neuralframe.streaming.frame import Frame, StreamInfo
from neuralframe.streaming.pipeline import Pipeline, Source, Stage

RVM_WARMUP = 16  # frames that bring RVM's recurrent state to its steady state (seam measured in the tests)
STABILISER_WARMUP = 8  # the segmenter's temporal stabiliser


def seam_report(frames: list[np.ndarray], boundaries: list[int]) -> dict:
    """How visible the chunk seams are: the mean absolute difference between consecutive frames at each
    boundary (frame b against b - 1) against the same measure everywhere else."""
    diffs = [float(np.abs(frames[i].astype(np.float32) - frames[i - 1].astype(np.float32)).mean())
             for i in range(1, len(frames))]
    seam = [diffs[b - 1] for b in boundaries if 0 < b < len(frames)]
    other = [d for i, d in enumerate(diffs, start=1) if i not in set(boundaries)]
    if not seam or not other:
        raise InputError("a seam needs frames on both sides of a boundary and other frames to compare with")
    return {"seam_diff_mean": round(float(np.mean(seam)), 4), "seam_diff_max": round(float(np.max(seam)), 4),
            "other_diff_median": round(float(np.median(other)), 4), "other_diff_max": round(float(np.max(other)), 4),
            "seam_ratio": round(float(np.mean(seam) / max(np.median(other), 1e-9)), 4)}


def reset_stage(stage: Stage) -> None:
    """Bring a stage's per-stream state back to the start of a stream (models stay loaded)."""
    reset = getattr(stage, "reset", None)
    if callable(reset):
        reset()


class StageWork:
    """What a worker runs for a frame job: one pipeline stage, reset before each unit; the unit's warm-up
    frames go through the stage and are dropped. Only the metadata in `keep` travels back."""

    def __init__(self, make_stage: Callable[[], Stage], keep: tuple[str, ...] = ()):
        self.make_stage = make_stage
        self.keep = keep
        self.stage: Stage | None = None

    def setup(self, info: StreamInfo) -> StreamInfo:
        self.stage = self.make_stage()
        return self.stage.setup(info)

    def run(self, unit, frames: list[Frame]) -> list[Frame]:
        reset_stage(self.stage)
        out = []
        for frame in frames:
            result = self.stage.process(frame)
            if result is None or frame.index < unit.start:
                continue
            meta = {k: result.metadata[k] for k in self.keep if k in result.metadata}
            out.append(Frame(result.image.contiguous(), result.index, result.timestamp, meta))
        return out


class RaySource(Source):
    """A pipeline source that runs a stage on Ray over chunks of another source and yields the stage's
    output frames in order. The inner source is read on the driver, a chunk at a time, as workers need
    input; units are `unit_frames` long and warm up on the `warmup` frames before them."""

    stop_timeout_s = None  # a read waits for a unit, which ends: a stop waits for it (streaming/pipeline.py)

    def __init__(self, inner: Source, session, make_stage: Callable[[], Stage], *, warmup: int = 0,
                 unit_frames: int | None = None, keep: tuple[str, ...] = (), max_frames: int | None = None,
                 can_use_gpu: bool = False, on_submit=None, name: str = "ray"):
        self.inner = inner
        self.session = session
        self.make_stage = make_stage
        self.warmup = max(0, int(warmup))
        self.unit_frames = unit_frames
        self.keep = keep
        self.max_frames = max_frames
        self.can_use_gpu = can_use_gpu
        self.on_submit = on_submit
        self.name = name
        self.runner = None
        self._results: Iterator | None = None
        self._buffer: deque[Frame] = deque()
        self._inner_open = False

    def open(self) -> StreamInfo:
        from neuralframe.distributed.scheduler import UnitRunner

        if self.unit_frames is not None and self.unit_frames < 1:
            raise InputError(f"--unit-frames must be at least 1, got {self.unit_frames}")
        info = self.inner.open()
        self._inner_open = True
        total = info.frames
        if self.max_frames is not None:
            total = min(total, self.max_frames) if total else self.max_frames
        probe = self.session.worker_count(10 ** 6)
        first = self.unit_frames or _unit_length(total, probe, self.warmup)
        n_units = -(-total // first) if total else 10 ** 6
        workers = self.session.worker_count(n_units)
        self.runner = UnitRunner(self.session, functools.partial(StageWork, self.make_stage, self.keep), info,
                                 workers=workers, cpus=self.session.settings.cpus_per_worker,
                                 gpus=self.session.gpus_per_worker(self.can_use_gpu), on_submit=self.on_submit)
        out = self.runner.start(self._units(total, workers))
        self._results = self.runner.results()
        return StreamInfo(width=out.width, height=out.height, fps=out.fps, frames=total, name=info.name)

    def _units(self, total: int | None, workers: int) -> Iterator[tuple[Any, list[Frame]]]:
        from neuralframe.distributed.scheduler import Unit

        tail: deque[Frame] = deque(maxlen=self.warmup or 1)
        start, index = 0, 0
        while total is None or start < total:
            length = self.unit_frames or _unit_length(None if total is None else total - start, workers,
                                                      self.warmup)
            new = []
            while len(new) < length and (total is None or start + len(new) < total):
                frame = self.inner.read()
                if frame is None:
                    break
                new.append(frame)
            if not new:
                return
            warm = list(tail) if self.warmup else []
            yield Unit(index, new[0].index, new[-1].index + 1, warmup=len(warm)), warm + new
            tail.extend(new)
            start += len(new)
            index += 1
            if len(new) < length:
                return

    def read(self) -> Frame | None:
        while not self._buffer:
            try:
                _, frames = next(self._results)
            except StopIteration:
                return None
            self._buffer.extend(frames)
        frame = self._buffer.popleft()
        return frame.replace(born=time.perf_counter())  # the worker's clock is not ours

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()
        if self._inner_open:
            self._inner_open = False
            self.inner.close()

    def summary(self) -> dict:
        return self.runner.report.to_dict() if self.runner is not None else {}


def _unit_length(remaining: int | None, workers: int, warmup: int) -> int:
    """Frames for the next unit (guided scheduling): a quarter of a worker's share of what is left, so units
    start long and shrink towards the end, where no worker then waits long for the last one; at least 4x
    the warm-up (so warming costs <= 25%) and 2 frames, at most 64."""
    if not remaining:
        return max(16, 4 * warmup)
    return max(2, 4 * warmup, min(64, -(-remaining // (4 * workers))))


def run_on_ray(source: Source, make_stage: Callable[[], Stage], sink, session, *, description: str,
               warmup: int = 0, unit_frames: int | None = None, keep: tuple[str, ...] = (),
               max_frames: int | None = None, can_use_gpu: bool = False, progress: bool = True, on_submit=None):
    """Run `make_stage()` on Ray over `source` into `sink`; returns (pipeline report, cluster summary)."""
    from neuralframe.console import run_with_progress

    ray_source = RaySource(source, session, make_stage, warmup=warmup, unit_frames=unit_frames, keep=keep,
                           max_frames=max_frames, can_use_gpu=can_use_gpu, on_submit=on_submit)
    pipeline = Pipeline(ray_source, [], sink, policy="block", max_frames=max_frames)
    try:
        report = run_with_progress(pipeline, description, max_frames, enabled=progress)
    finally:
        ray_source.close()
    return report, ray_source.summary()


# ---- render ----------------------------------------------------------------------------------------

def render_path_ray(scene_path: str | os.PathLike, settings, out: str | os.PathLike, session, *,
                    backend: str = "torch", unit_frames: int | None = None, progress: bool = True,
                    on_submit=None):
    """`neuralframe render --ray`: the path's cameras in segments, one per unit; returns (report, summary)."""
    from neuralframe.apps.render import CameraPathSource, open_path, scene_stage
    from neuralframe.streaming.sinks import parse_sink

    scene, cameras = open_path(scene_path, settings)  # the driver needs the scene's bounds and cameras
    sink = parse_sink(str(out), fps=settings.fps)
    make = functools.partial(scene_stage, str(Path(scene_path).resolve()), settings.impl, backend)
    return run_on_ray(CameraPathSource(cameras, settings.fps), make, sink, session,
                      description=f"render {scene.name} on ray", unit_frames=unit_frames,
                      can_use_gpu=settings.impl in ("auto", "cuda"), progress=progress, on_submit=on_submit)


# ---- restyle ---------------------------------------------------------------------------------------

def restyle_ray(job, session, *, unit_frames: int | None = None, warmup: int | None = None,
                progress: bool = True, on_submit=None):
    """`neuralframe restyle --ray`: chunks of the video, each warmed up (see the module docstring)."""
    from neuralframe.apps.restyle import check_restyle_job, diffuse_stage, restyle_warmup
    from neuralframe.streaming import sinks, sources

    check_restyle_job(job)  # the same checks as on one machine
    job.diffuse.check()  # the prompts and the model folder, before any worker starts
    source = sources.parse_source(job.input, frames=job.frames, fps=job.fps)
    sink = sinks.parse_sink(job.out, fps=job.fps)
    warm = restyle_warmup(job.diffuse) if warmup is None else warmup
    return run_on_ray(source, functools.partial(diffuse_stage, job.diffuse), sink, session,
                      description=f"restyle {Path(job.input).name} on ray", warmup=warm, unit_frames=unit_frames,
                      keep=("prompt",), max_frames=job.frames, can_use_gpu=True, progress=progress,
                      on_submit=on_submit)


# ---- matte -----------------------------------------------------------------------------------------

def _matte_stage(background: str, settings) -> Stage:
    from neuralframe.apps.matte import matte_stage

    return matte_stage(background, settings)


def matte_ray(job, session, *, unit_frames: int | None = None, warmup: int | None = None, progress: bool = True,
              on_submit=None):
    """`neuralframe matte --ray`: chunks of the video, each warmed up on the frames before it."""
    from neuralframe.apps.matte import VideoBackground, model_kind, open_job, parse_background

    source, sink = open_job(job)  # the input and the outputs, checked on the driver
    if isinstance(parse_background(job.background, job.matte.impl), VideoBackground):
        raise InputError("a video background plays along the whole video and cannot be split into chunks: use "
                         "an image, a colour or blur with --ray, or drop --ray")
    keep = ("alpha", "foreground") if job.rgba else ("alpha",) if job.alpha else ()
    if warmup is None:
        warmup = RVM_WARMUP if model_kind(job.matte) == "rvm" else STABILISER_WARMUP
    return run_on_ray(source, functools.partial(_matte_stage, job.background, job.matte), sink, session,
                      description=f"matte {Path(job.input).name} on ray", warmup=warmup, unit_frames=unit_frames,
                      keep=keep, max_frames=job.frames, progress=progress, on_submit=on_submit)


# ---- generate --------------------------------------------------------------------------------------

def generate_ray(schedules: list[list[tuple[int, str]]], out: str | os.PathLike, session, *, frames: int = 48,
                 seed: int = 0, model: str | None = None, device: str = "cpu", upscale: int = 4,
                 fps: float | None = None, tiny_vae: bool = False, steps: int | None = None,
                 folder: bool = False, progress: bool = True, on_submit=None) -> dict:
    """`neuralframe generate --ray`: one unit per clip. With `folder`, `out` is a new folder that gets one
    video per schedule (`clip_0000.mp4`, ...) and `prompts.json`; it appears only when every clip is done.
    Without, the one clip goes to `out`."""
    from neuralframe.apps import clips as clip_files
    from neuralframe.apps.clips import ClipFolder, ClipWork
    from neuralframe.console import progress_bar
    from neuralframe.distributed.scheduler import Unit, UnitRunner
    from neuralframe.streaming.sinks import check_video_output

    if frames < 1:
        raise InputError(f"--frames must be at least 1, got {frames}")
    if upscale < 1:
        raise InputError(f"--upscale must be at least 1, got {upscale}")
    out = Path(out)
    if folder:
        ClipFolder.check(out)
    else:
        if len(schedules) != 1:
            raise InputError("several prompts make several clips: give a folder with -o")
        check_video_output(out)  # before any worker starts
    units = [(Unit(i, 0, frames, label=f"clip {i}: '{s[0][1][:40]}'"), (s, seed)) for i, s in enumerate(schedules)]
    runner = UnitRunner(session, functools.partial(ClipWork, model, device, tiny_vae, frames, steps), None,
                        workers=session.worker_count(len(units)), cpus=session.settings.cpus_per_worker,
                        gpus=session.gpus_per_worker(device != "cpu"), per_worker=1, on_submit=on_submit)
    clips = ClipFolder(out) if folder else None  # the hidden partial folder, removed unless published
    written: list[dict] = []
    try:
        info = runner.start(units)
        rate = fps or info["fps"]
        with progress_bar(f"generate {len(units)} clip(s) on ray", len(units) * frames, enabled=progress) as bar:
            for unit, clip in runner.results():
                path = clips.clip_path(unit.index) if folder else out
                clip_files.write_clip(clip, path, rate, upscale)
                written.append({"file": path.name if folder else str(out), "frames": len(clip),
                                "prompts": [{"frame": f, "prompt": p} for f, p in schedules[unit.index]]})
                bar.advance(len(clip))
        if folder:
            clips.publish({"seed": seed, "frames": frames, "clips": written})
    except BaseException:
        if not folder and written:
            out.unlink(missing_ok=True)
        raise
    finally:
        runner.close()
        if clips is not None:
            clips.discard()
    report = runner.report.to_dict()
    return {"output": str(out), "clips": len(written), "frames": sum(c["frames"] for c in written),
            "seconds": report["wall_s"], "fps": report["fps_total"], "cluster": report, "seed": seed,
            "model": str(model or "bundled tiny-shapes-video"), "files": written}
